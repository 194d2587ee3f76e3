"""Promotion gates measured on monitoring data (``[stages.<stage>] monitoring = [...]``).

- ``no_drift_alert``: the model's latest ``check()`` raised no drift alert;
- ``replay``: on the traffic the stage's current holder served, the candidate's AUC (RMSE for
  regressors) is not worse by more than ``monitoring.replay_margin``;
- ``fairness``: on the candidate's own logged predictions (shadow traffic), no group's
  adverse impact ratio for ``monitoring.fairness_group`` is in the policy's ``air`` alert
  band (below 0.8 by default: the four-fifths rule).

Each verdict carries its evidence (figures and the Delta versions read), recorded with the
promotion like every other gate. Evaluating a gate reads; it never writes.
"""

from __future__ import annotations

from collections.abc import Callable

from ..domain.entities import GateResult
from ..domain.errors import InvalidInputError, NotFoundError
from .monitor import Monitor


def wanted(monitor: Monitor, to: str) -> tuple[str, ...]:
    """The monitoring gates the policy sets on stage ``to``."""
    return tuple(monitor.catalog.policy.rules(to).monitoring)


def evaluate(mon: Monitor, number: int, to: str) -> list[GateResult]:
    gates = wanted(mon, to)
    if not gates:
        return []
    checks: dict[str, Callable[[], GateResult]] = {
        "no_drift_alert": lambda: _no_drift_alert(mon),
        "replay": lambda: _replay(mon, number, to),
        "fairness": lambda: _fairness(mon, number)}
    return [checks[gate]() for gate in gates]


def _no_drift_alert(mon: Monitor) -> GateResult:
    latest = mon.catalog.last_check(mon.name)
    if latest is None:
        return GateResult("no_drift_alert", True, "no monitoring check has run yet", {})
    window = latest.payload["check"]["window"]
    open_alerts = [e for e in mon.catalog.alerts(mon.name)
                   if e.payload["window"] == window and e.payload["kind"] == "drift"
                   and e.payload.get("status", "alert") == "alert"]
    detail = (f"the latest check ({window[0][:10]} .. {window[1][:10]}) raised "
              f"{len(open_alerts)} drift alert(s)")
    return GateResult("no_drift_alert", not open_alerts, detail,
                      {"check_seq": latest.seq, "alerts": [e.seq for e in open_alerts]})


def _replay(mon: Monitor, number: int, to: str) -> GateResult:
    try:
        holder: int | None = mon.catalog.get(mon.name, stage=to).version
    except NotFoundError:
        holder = None
    if holder is None or holder == number:
        return GateResult("replay", True, f"no other version in {to} to compare against", {})
    try:
        result = mon.replay(number, served=holder)
    except InvalidInputError as exc:
        return GateResult("replay", False, f"cannot replay v{number} on v{holder}'s traffic: "
                          f"{exc}", {"served": holder})
    margin = mon.policy.replay_margin
    better_when_higher = result.primary != "rmse"
    change = result.diff if better_when_higher else -result.diff
    passed = change >= -margin
    served, challenger = result.metrics[result.primary]
    detail = (f"{result.primary} on {result.n:,} rows of v{holder}'s traffic: v{number} "
              f"{challenger:.4f} vs {served:.4f} (margin {margin})")
    return GateResult("replay", passed, detail, {
        "served": holder, "n": result.n, "metric": result.primary, "served_value": served,
        "candidate_value": challenger, "p_value": result.p_values.get(result.primary),
        "margin": margin, "tables": dict(result.tables)})


def _fairness(mon: Monitor, number: int) -> GateResult:
    group = mon.policy.fairness_group
    if not group:
        return GateResult("fairness", False, "set monitoring.fairness_group in the policy "
                          "to say which attribute to check", {})
    try:
        table = mon.fairness(group, mon.policy.fairness_favorable, version=number)
    except InvalidInputError as exc:
        return GateResult("fairness", False, f"no logged predictions of v{number} to judge: "
                          f"log shadow traffic with mon.log_predictions(..., version={number})"
                          f" ({exc})", {})
    band = mon.policy.thresholds["air"]
    rows = [r for r in table.to_pylist() if r["air"] is not None]
    worst = min(rows, key=lambda r: r["air"]) if rows else None
    passed = worst is not None and band.status(worst["air"]) != "alert"
    detail = ("no group has a selection rate" if worst is None else
              f"lowest adverse impact ratio {worst['air']:.3f} ({group} = {worst['group']}), "
              f"alert below {band.alert}")
    return GateResult("fairness", passed, detail, {
        "group": group, "air": {str(r["group"]): r["air"] for r in rows},
        "tables": table.tables})
