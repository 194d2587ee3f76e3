"""Promotion gates measured on monitoring data (``[stages.<stage>] monitoring = [...]``).

- ``no_drift_alert``: the model's latest ``check()`` raised no drift alert;
- ``replay``: on the traffic the stage's current holder served, the candidate's AUC (RMSE for
  regressors) is not worse by more than ``monitoring.replay_margin``;
- ``fairness``: on the candidate's own logged predictions (shadow traffic), every group's
  adverse impact ratio for ``monitoring.fairness_group`` is at least 0.8.

Each verdict carries its evidence (figures and the Delta versions read), recorded with the
promotion like every other gate.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..domain.entities import GateResult
from ..domain.errors import InvalidInputError
from .governance import find_request
from .state import RegistryState

if TYPE_CHECKING:
    from .monitor import Monitor
    from .registry import Registry

AIR_FLOOR = 0.8


def evaluate(reg: Registry, name: str, number: int, to: str) -> list[GateResult]:
    wanted = reg.policy.rules(to).monitoring
    if not wanted:
        return []
    mon = reg.monitor(name)
    checks = {"no_drift_alert": lambda: _no_drift_alert(reg._current(), name),
              "replay": lambda: _replay(mon, number, to),
              "fairness": lambda: _fairness(mon, number)}
    return [checks[gate]() for gate in wanted]


def for_approval(reg: Registry, name: str, number: int, to: str | None) -> list[GateResult]:
    """The measured gates of the request being approved (none to measure: no lookup)."""
    if not any(rules.monitoring for rules in reg.policy.stage_rules.values()):
        return []
    pending = find_request(reg._current(), name, number, to, for_approval=True)
    return evaluate(reg, name, number, pending.to)


def _no_drift_alert(state: RegistryState, name: str) -> GateResult:
    latest = state.checks.get(name)
    if latest is None:
        return GateResult("no_drift_alert", True, "no monitoring check has run yet", {})
    window = latest.payload["check"]["window"]
    open_alerts = [e for e in state.alerts if e.model == name
                   and e.payload["window"] == window and e.payload["kind"] == "drift"]
    detail = (f"the latest check ({window[0][:10]} .. {window[1][:10]}) raised "
              f"{len(open_alerts)} drift alert(s)")
    return GateResult("no_drift_alert", not open_alerts, detail,
                      {"check_seq": latest.seq, "alerts": [e.seq for e in open_alerts]})


def _replay(mon: Monitor, number: int, to: str) -> GateResult:
    holder = mon.registry._current().model(mon.name).holder(to)
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
        "margin": margin, "tables": result.tables})


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
    rows = [r for r in table.to_pylist() if r["air"] is not None]
    worst = min(rows, key=lambda r: r["air"]) if rows else None
    passed = worst is not None and worst["air"] >= AIR_FLOOR
    detail = ("no group has a selection rate" if worst is None else
              f"lowest adverse impact ratio {worst['air']:.3f} ({group} = {worst['group']}), "
              f"floor {AIR_FLOOR}")
    tables: Any = json.loads((table.schema.metadata or {}).get(b"nbregistry.tables", b"{}"))
    return GateResult("fairness", passed, detail, {
        "group": group, "air": {str(r["group"]): r["air"] for r in rows}, "tables": tables})
