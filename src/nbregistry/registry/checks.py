"""``mon.check()``: evaluate the policy's window, keep the figures, alert, act.

One check computes drift, performance (over matured outcomes) and fairness for the served
version over the policy's window, appends every figure to the metrics table with its
warn/alert status, seals the three monitoring tables in the audit log, records an ``alert``
event per breach, and applies the policy's action: ``retrain_requested`` or an automatic
rollback of production to the previous approved version (which must still pass its gates).
A window with fewer than ``min_rows`` rows is reported as insufficient, never as an alert.
A performance alert while no input feature drifted (not even to warn) is recorded as
``concept_drift``: the relation between inputs and outcome changed, so retrain.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..domain.entities import Event
from ..domain.errors import InvalidInputError, NbRegistryError
from ..domain.monitoring_policy import Band
from ..domain.timefmt import ts_text
from ..store.monitoring import METRICS_SCHEMA
from . import governance

if TYPE_CHECKING:
    from .monitor import Monitor

UNITS = {"h": 1 / 24, "d": 1.0, "w": 7.0}


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
        colors = {"alert": "#cf222e", "warn": "#9a6700", "ok": "#1a7f37"}
        cell = "style='padding:2px 8px;border-bottom:1px solid #eaeef2;text-align:left'"
        rows = "".join(
            f"<tr><td {cell}>{html.escape(r['kind'])}</td><td {cell}>"
            f"{html.escape(r['feature'] or '')}</td><td {cell}>{html.escape(r['metric'])}</td>"
            f"<td {cell}>{r['value']:.4g}</td><td {cell} style='color:"
            f"{colors.get(r['status'], '#57606a')}'><b>{html.escape(r['status'])}</b></td></tr>"
            for r in self.metrics.to_pylist() if r["value"] is not None)
        acts = "".join(f"<li>{html.escape(e.action)} (event {e.seq})</li>" for e in self.actions)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div style='font-family:sans-serif;font-size:12px'><b>Check</b> "
                f"{html.escape(self.model)} v{self.version}, {ts_text(self.window[0])} – "
                f"{ts_text(self.window[1])}: <b style='color:"
                f"{colors['ok' if self.ok else 'alert']}'>{len(self.alerts)} alert(s)</b>"
                f"<ul>{acts}{notes}</ul><table style='border-collapse:collapse'><tr>"
                f"<th {cell}>kind</th><th {cell}>feature</th><th {cell}>metric</th>"
                f"<th {cell}>value</th><th {cell}>status</th></tr>{rows}</table></div>")


def window_length(text: str) -> timedelta:
    match = re.fullmatch(r"([1-9][0-9]*)([hdw])", text)
    if match is None:
        raise InvalidInputError(f"window {text!r} must look like '7d', '12h' or '2w'",
                                field="window")
    return timedelta(days=int(match.group(1)) * UNITS[match.group(2)])


def check(mon: Monitor, *, now: datetime | None = None) -> CheckResult:
    policy = mon.policy
    end = now or datetime.now(UTC)
    start = end - window_length(policy.window)
    mv = mon.version()
    figures: list[dict[str, Any]] = []
    notes: list[str] = []
    _drift(mon, mv.version, start, end, figures, notes)
    _performance(mon, mv.version, start, end, figures, notes)
    _fairness(mon, mv.version, start, end, figures, notes)
    computed = datetime.now(UTC)
    rows = [{"window_start": start, "window_end": end, "version": mv.version,
             "computed_at": computed, **f} for f in figures]
    metrics = pa.Table.from_pylist(rows, schema=METRICS_SCHEMA)
    if rows:
        mon.tables.metrics.append(metrics)
    result = CheckResult(mon.name, mv.version, (start, end), metrics, notes=notes)
    _record(mon, result, figures)
    return result


def _band(mon: Monitor, metric: str) -> Band | None:
    return mon.policy.thresholds.get(metric)


def _figure(mon: Monitor, kind: str, feature: str | None, metric: str, value: Any,
            enough: bool) -> dict[str, Any]:
    band = _band(mon, metric)
    number = None if value is None else float(value)
    status = "insufficient" if not enough else (band.status(number) if band else "info")
    return {"kind": kind, "feature": feature, "metric": metric, "value": number,
            "status": status}


def _drift(mon: Monitor, version: int, start: datetime, end: datetime,
           figures: list[dict[str, Any]], notes: list[str]) -> None:
    from ..monitoring.drift import dataset_drift

    try:
        table = mon.drift(start, end, version=version)
    except InvalidInputError as exc:
        notes.append(f"drift not computed: {exc}")
        return
    n = max(table.column("n").to_pylist() or [0])
    enough = n >= mon.policy.min_rows
    if not enough:
        notes.append(f"only {n} predictions in the window (min_rows {mon.policy.min_rows}): "
                     "figures kept, no alerts")
    for row in table.to_pylist():
        figures.append(_figure(mon, "drift", row["feature"], "psi", row["psi"], enough))
        figures.append(_figure(mon, "drift", row["feature"], "ks", row["ks"], enough))
    share = dataset_drift(table)["share"]
    figures.append(_figure(mon, "drift", None, "dataset_drift", share, enough))


def _performance(mon: Monitor, version: int, start: datetime, end: datetime,
                 figures: list[dict[str, Any]], notes: list[str]) -> None:
    try:
        table = mon.performance(None, start=start, end=end, version=version)
    except InvalidInputError as exc:
        notes.append(f"performance not computed: {exc}")
        return
    row = table.to_pylist()[0]
    enough = (row["n"] or 0) >= mon.policy.min_rows
    skip = {"window_start", "window_end", "n", "positives"}
    for metric, value in row.items():
        if metric not in skip and value is not None:
            figures.append(_figure(mon, "performance", None, metric, value, enough))


def _fairness(mon: Monitor, version: int, start: datetime, end: datetime,
              figures: list[dict[str, Any]], notes: list[str]) -> None:
    group = mon.policy.fairness_group
    if not group:
        return
    try:
        table = mon.fairness(group, mon.policy.fairness_favorable, start=start, end=end,
                             version=version)
    except InvalidInputError as exc:
        notes.append(f"fairness not computed: {exc}")
        return
    for row in table.to_pylist():
        enough = (row["n"] or 0) >= mon.policy.min_rows
        figures.append(_figure(mon, "fairness", str(row["group"]), "air", row["air"], enough))


def _record(mon: Monitor, result: CheckResult, figures: list[dict[str, Any]]) -> None:
    """Seal, then one alert event per breach, then the policy's action."""
    reg, name = mon.registry, mon.name
    window = [ts_text(result.window[0]), ts_text(result.window[1])]
    summary = {"window": window, "version": result.version, "metrics": len(figures),
               "alerts": sum(f["status"] == "alert" for f in figures)}
    result.seal = reg._record("seal", name, lambda s: (None, {**mon.seals(), "check": summary}))
    action = mon.policy.on_alert if mon.policy.on_alert != "none" else None
    inputs_drifted = any(f["status"] in ("warn", "alert") for f in figures
                         if f["kind"] == "drift" and f["feature"] not in (None, "score"))
    for f in (f for f in figures if f["status"] == "alert"):
        band = _band(mon, f["metric"])
        assert band is not None
        # performance falling while every input stays stable: the relation changed
        kind = ("concept_drift" if f["kind"] == "performance" and not inputs_drifted
                else f["kind"])
        payload = {"kind": kind, "metric": f["metric"], "feature": f["feature"],
                   "value": f["value"], "status": "alert", "window": window, "action": action,
                   "band": {"warn": band.warn, "alert": band.alert,
                            "direction": band.direction}}
        result.alerts.append(reg._record("alert", name, _fixed(result.version, payload)))
    if result.alerts and action is not None:
        result.actions.append(_act(mon, result, action))


def _fixed(version: int, payload: dict[str, Any]) -> Any:
    return lambda state: (version, payload)


def _act(mon: Monitor, result: CheckResult, action: str) -> Event:
    reg, name, first = mon.registry, mon.name, result.alerts[0]
    reason = (f"{len(result.alerts)} monitoring alert(s) in {result.window[0]:%Y-%m-%d} .. "
              f"{result.window[1]:%Y-%m-%d}, first: {first.payload['metric']} = "
              f"{first.payload['value']:.4g}")
    if action == "rollback":
        def build(state: Any) -> tuple[int | None, dict[str, Any]]:
            number, payload = governance.rollback(state, reg.user, name=name,
                                                  stage="production", reason=reason,
                                                  automatic=True)
            return number, {**payload, "automatic": True, "alert_seq": first.seq}

        try:
            return reg._record("rollback", name, build)
        except NbRegistryError as exc:
            result.notes.append(f"automatic rollback not possible ({exc}); retraining "
                                "requested instead")
    return reg._record("retrain_requested", name, lambda s: (
        result.version, {"reason": reason, "alert_seq": first.seq}))
