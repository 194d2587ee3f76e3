"""``mon.check()``: measure the policy's window, decide, then record.

A check has three steps, kept apart so that the rule is a pure function a test can read:

1. ``measure`` asks the questions (drift, performance over matured outcomes, fairness) for
   the served version over the policy's window and turns every answer into figures with a
   status from the policy's bands. It reads; it writes nothing.
2. ``decide`` (pure: figures + policy -> ``Decision``) says which figures are alerts, of
   which kind, and which action the policy takes. A window with fewer than ``min_rows``
   rows is reported as insufficient, never as an alert. A performance alert while no input
   feature drifted (not even to warn) is ``concept_drift``: the relation between inputs and
   outcome changed, so retrain.
3. ``record`` appends the figures to the metrics table, seals the monitoring tables in the
   audit log, records one ``alert`` event per breach and applies the action
   (``retrain_requested``, or an automatic rollback of production to the previous approved
   version, which must still pass its gates and still be replaced by the version checked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..domain.entities import Event
from ..domain.errors import InvalidInputError, NbRegistryError
from ..domain.html import BAD, FONT, OK, STATUS_COLORS, badge, esc, table_html
from ..domain.monitoring_policy import MonitoringPolicy
from ..domain.timefmt import ts_text
from ..store.monitoring import METRICS_SCHEMA

if TYPE_CHECKING:
    from ..store import MonitoringTables
    from .ports import MonitoringWrites, Questions


@dataclass
class CheckResult:
    """What one ``check()`` measured, what breached, and what was done about it."""

    model: str
    version: int
    window: tuple[datetime, datetime]
    metrics: pa.Table
    alerts: list[Event] = field(default_factory=list)
    actions: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seal: Event | None = None

    @property
    def ok(self) -> bool:
        return not self.alerts

    def __repr__(self) -> str:
        lines = [f"<CheckResult {self.model} v{self.version} {ts_text(self.window[0])} .. "
                 f"{ts_text(self.window[1])}: {self.metrics.num_rows} figures, "
                 f"{len(self.alerts)} alert(s)>"]
        lines += [f"  ALERT {e.payload['metric']} {e.payload['feature'] or ''} = "
                  f"{e.payload['value']:.4g}" for e in self.alerts]
        lines += [f"  action: {e.action} (seq {e.seq})" for e in self.actions]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [[r["kind"], r["feature"], r["metric"], r["value"],
                 badge(r["status"], STATUS_COLORS.get(r["status"]))]
                for r in self.metrics.to_pylist() if r["value"] is not None]
        items = [*(f"{e.action} (event {e.seq})" for e in self.actions), *self.notes]
        listed = "".join(f"<li>{esc(i)}</li>" for i in items)
        return (f"<div style='{FONT}'><b>Check</b> {esc(self.model)} v{self.version}, "
                f"{ts_text(self.window[0])} – {ts_text(self.window[1])}: <b style='color:"
                f"{OK if self.ok else BAD}'>{len(self.alerts)} alert(s)</b><ul>{listed}</ul>"
                + table_html(["kind", "feature", "metric", "value", "status"], rows,
                             raw=frozenset({4})) + "</div>")


@dataclass(frozen=True)
class Figure:
    kind: str                 # drift | performance | fairness
    feature: str | None       # the feature, the score, or the group; None: the model
    metric: str
    value: float | None
    status: str               # ok | warn | alert (the policy's bands) | insufficient | info


@dataclass(frozen=True)
class Decision:
    """What a check's figures mean under the policy: the alerts and the action."""

    alerts: tuple[dict[str, Any], ...]
    action: str | None        # "retrain" | "rollback" | None
    reason: str


def record(writes: MonitoringWrites, tables: MonitoringTables, result: CheckResult,
           decision: Decision, seals: dict[str, Any]) -> CheckResult:
    """Keep the figures, seal the tables, record the alerts, then act on them."""
    if result.metrics.num_rows:
        tables.metrics.append(result.metrics)
    window = [ts_text(result.window[0]), ts_text(result.window[1])]
    summary = {"window": window, "version": result.version,
               "metrics": result.metrics.num_rows, "alerts": len(decision.alerts)}
    result.seal = writes.seal(result.model, {**seals, "check": summary})
    for payload in decision.alerts:
        result.alerts.append(writes.alert(result.model, result.version, payload))
    if result.alerts and decision.action is not None:
        result.actions.append(_act(writes, result, decision))
    return result


def figures_table(figures: list[Figure], version: int, window: tuple[datetime, datetime]
                  ) -> pa.Table:
    computed = datetime.now(UTC)
    return pa.Table.from_pylist(
        [{"window_start": window[0], "window_end": window[1], "version": version,
          "computed_at": computed, "kind": f.kind, "feature": f.feature, "metric": f.metric,
          "value": f.value, "status": f.status} for f in figures], schema=METRICS_SCHEMA)


# -- 1. measure -------------------------------------------------------------------------------

def measure(mon: Questions, version: int, start: datetime, end: datetime
            ) -> tuple[list[Figure], list[str]]:
    """Every figure of the window, each with its status; notes say what was not computed."""
    figures: list[Figure] = []
    notes: list[str] = []
    for part in (_drift, _performance, _fairness):
        try:
            figures += part(mon, version, start, end, notes)
        except InvalidInputError as exc:
            notes.append(f"{part.__name__[1:]} not computed: {exc}")
    return figures, notes


def _figure(policy: MonitoringPolicy, kind: str, feature: str | None, metric: str,
            value: Any, enough: bool) -> Figure:
    band = policy.thresholds.get(metric)
    number = None if value is None else float(value)
    status = "insufficient" if not enough else (band.status(number) if band else "info")
    return Figure(kind, feature, metric, number, status)


def _drift(mon: Questions, version: int, start: datetime, end: datetime,
           notes: list[str]) -> list[Figure]:
    result = mon.drift(start, end, version=version)
    policy = mon.policy
    n = result.summary.n if result.summary else 0
    enough = n >= policy.min_rows
    if not enough:
        notes.append(f"only {n} predictions in the window (min_rows {policy.min_rows}): "
                     "figures kept, no alerts")
    out = []
    for row in result.to_pylist():
        out.append(_figure(policy, "drift", row["feature"], "psi", row["psi"], enough))
        out.append(_figure(policy, "drift", row["feature"], "ks", row["ks"], enough))
    share = result.summary.share if result.summary else None
    out.append(_figure(policy, "drift", None, "dataset_drift", share, enough))
    return out


def _performance(mon: Questions, version: int, start: datetime, end: datetime,
                 notes: list[str]) -> list[Figure]:
    row = mon.performance(None, start=start, end=end, version=version).to_pylist()[0]
    enough = (row["n"] or 0) >= mon.policy.min_rows
    skip = {"window_start", "window_end", "n", "positives"}
    return [_figure(mon.policy, "performance", None, metric, value, enough)
            for metric, value in row.items() if metric not in skip and value is not None]


def _fairness(mon: Questions, version: int, start: datetime, end: datetime,
              notes: list[str]) -> list[Figure]:
    policy = mon.policy
    if not policy.fairness_group:
        return []
    table = mon.fairness(policy.fairness_group, policy.fairness_favorable, start=start,
                         end=end, version=version)
    return [_figure(policy, "fairness", str(row["group"]), "air", row["air"],
                    (row["n"] or 0) >= policy.min_rows) for row in table.to_pylist()]


# -- 2. decide (pure) ---------------------------------------------------------------------------

def decide(figures: list[Figure], policy: MonitoringPolicy, *,
           window: tuple[datetime, datetime]) -> Decision:
    """The alerts the figures raise under ``policy`` and the action it takes."""
    action = policy.on_alert if policy.on_alert != "none" else None
    inputs_drifted = any(f.status in ("warn", "alert") for f in figures
                         if f.kind == "drift" and f.feature not in (None, "score"))
    alerts = []
    for f in (f for f in figures if f.status == "alert"):
        band = policy.thresholds[f.metric]
        # performance falling while every input stays stable: the relation changed
        kind = "concept_drift" if f.kind == "performance" and not inputs_drifted else f.kind
        alerts.append({"kind": kind, "metric": f.metric, "feature": f.feature,
                       "value": f.value, "status": "alert",
                       "window": [ts_text(window[0]), ts_text(window[1])], "action": action,
                       "band": {"warn": band.warn, "alert": band.alert,
                                "direction": band.direction}})
    reason = ""
    if alerts:
        first = alerts[0]
        reason = (f"{len(alerts)} monitoring alert(s) in {window[0]:%Y-%m-%d} .. "
                  f"{window[1]:%Y-%m-%d}, first: {first['metric']} = {first['value']:.4g}")
    return Decision(tuple(alerts), action if alerts else None, reason)


# -- 3. act ------------------------------------------------------------------------------------

def _act(writes: MonitoringWrites, result: CheckResult, decision: Decision) -> Event:
    first = result.alerts[0]
    if decision.action == "rollback":
        try:
            return writes.roll_back(result.model, from_version=result.version,
                                    reason=decision.reason, alert_seq=first.seq)
        except NbRegistryError as exc:
            result.notes.append(f"automatic rollback not possible ({exc}); retraining "
                                "requested instead")
    return writes.request_retraining(result.model, result.version, reason=decision.reason,
                                     alert_seq=first.seq)
