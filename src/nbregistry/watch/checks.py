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

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..domain.canonical import canonical_json
from ..domain.entities import Event
from ..domain.errors import InvalidInputError, NbRegistryError
from ..domain.events import check_payload
from ..domain.html import BAD, FONT, OK, STATUS_COLORS, badge, esc, table_html
from ..domain.monitoring_policy import MonitoringPolicy
from ..domain.timefmt import ts_text
from ..domain.validate import MAX_PAYLOAD_BYTES
from ..store.monitoring import METRICS_SCHEMA

MAX_ALERTS = 20   # alert events per check; the rest are counted on the last one
MAX_LABEL = 120   # characters of a feature or group name carried by an event

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
    """Keep the figures, seal the tables, record the alerts, then act on them. Every event
    is checked first, so a payload that could not be written stops the check before it
    writes anything."""
    for payload in decision.alerts:
        check_payload("alert", payload)
        size = len(canonical_json(payload))
        if size > MAX_PAYLOAD_BYTES // 2:
            raise InvalidInputError(f"an alert of this check would be {size:,} bytes: "
                                    "nothing was recorded", field="payload")
    if result.metrics.num_rows:
        tables.metrics.append(result.metrics)
    window = [ts_text(result.window[0]), ts_text(result.window[1])]
    summary = {"window": window, "version": result.version,
               "metrics": result.metrics.num_rows, "alerts": len(decision.alerts)}
    result.seal = writes.seal(result.model, {**seals, "check": summary})
    for payload in decision.alerts:
        result.alerts.append(writes.alert(result.model, result.version, payload))
    if result.alerts and decision.action is not None:
        result.actions.append(act(writes, result, decision))
    return result


def figures_table(figures: list[Figure], version: int, window: tuple[datetime, datetime]
                  ) -> pa.Table:
    computed = datetime.now(UTC)
    return pa.Table.from_pylist(
        [{"window_start": window[0], "window_end": window[1], "version": version,
          "computed_at": computed, "kind": f.kind, "feature": label(f.feature),
          "metric": f.metric,
          "value": f.value, "status": f.status} for f in figures], schema=METRICS_SCHEMA)


# -- 1. measure -------------------------------------------------------------------------------

def measure(mon: Questions, version: int, start: datetime, end: datetime, *,
            parts: tuple[str, ...] = ("drift", "performance", "fairness")
            ) -> tuple[list[Figure], list[str]]:
    """Every figure of the window, each with its status; notes say what was not computed."""
    figures: list[Figure] = []
    notes: list[str] = []
    chosen = {"drift": _drift, "performance": _performance, "fairness": _fairness}
    for part in (chosen[name] for name in parts):
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
    rows = result.to_pylist()
    broken = _broken_inputs(rows, mon.baseline(version), policy.max_missing) if enough \
        else set()
    out = [Figure("data_quality", name, "missing_rate", _missing(rows, name), "alert")
           for name in sorted(broken)]
    if broken:
        notes.append(f"data quality: {', '.join(sorted(broken))} missing in more than "
                     f"{policy.max_missing:.0%} of the rows; their drift is not judged")
    for row in rows:
        judged = enough and row["feature"] not in broken
        psi = _figure(policy, "drift", row["feature"], "psi", row["psi"], judged)
        if psi.status == "alert" and not row["drifted"]:
            # a large PSI the test cannot tell from chance (a small window): a warning, so
            # an alert always means significant and large, as the reports rate it
            psi = dataclasses.replace(psi, status="warn")
        out.append(psi)
        out.append(_figure(policy, "drift", row["feature"], "ks", row["ks"], judged))
    healthy = [r for r in rows if r["feature"] not in broken and r["feature"] != "score"]
    share = sum(bool(r["drifted"]) for r in healthy) / len(healthy) if healthy else None
    out.append(_figure(policy, "drift", None, "dataset_drift", share, enough))
    return out


def _broken_inputs(rows: list[dict[str, Any]], baseline: dict[str, Any],
                   max_missing: float) -> set[str]:
    """Features missing in more than ``max_missing`` of the window's rows while the
    reference had them: a feed that broke, not a model that drifted."""
    specs = baseline.get("features", {})
    broken = set()
    for row in rows:
        spec = specs.get(row["feature"])
        if spec is None or row["missing_rate"] is None:
            continue
        before = spec["missing"] / spec["n"] if spec.get("n") else 0.0
        if row["missing_rate"] >= max_missing > before:
            broken.add(row["feature"])
    return broken


def _missing(rows: list[dict[str, Any]], name: str) -> float:
    return float(next(r["missing_rate"] for r in rows if r["feature"] == name))


def _performance(mon: Questions, version: int, start: datetime, end: datetime,
                 notes: list[str]) -> list[Figure]:
    """Over the predictions whose outcomes are due by now (``maturity_days`` old): the
    window, shifted back by the maturity (earlier outcomes would bias it), as whole days
    when it spans a day or more. From the performance sketches when they can answer; from
    the raw rows when not, or when a band's edge lies within the sketched AUC's bound."""
    due = timedelta(days=mon.policy.maturity_days)
    begin, stop = start - due, end - due
    if due:
        if end - start >= timedelta(days=1):
            begin, stop = _midnight(begin), _midnight(stop)
        notes.append(f"performance over predictions made {ts_text(begin)[:16]} .. "
                     f"{ts_text(stop)[:16]}, whose outcomes are due "
                     f"({mon.policy.maturity_days:g} days)")
    quick = mon.sketched_performance(begin, stop, version=version)
    row: dict[str, Any] | None = None
    if quick is not None and not _near_edge(mon.policy, quick[0].get("roc_auc"), quick[1]):
        row = quick[0]
        if quick[1]:
            notes.append(f"roc_auc from the performance sketches: within {quick[1]:.1e} of "
                         "the raw figure")
    if row is None:
        row = mon.performance(None, start=begin, end=stop, version=version).to_pylist()[0]
    enough = (row["n"] or 0) >= mon.policy.min_rows
    skip = {"window_start", "window_end", "n", "positives"}
    return [_figure(mon.policy, "performance", None, metric, value, enough)
            for metric, value in row.items() if metric not in skip and value is not None]


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _near_edge(policy: MonitoringPolicy, auc: float | None, bound: float) -> bool:
    """Whether the AUC's bound holds an edge of its band (its status could differ)."""
    band = policy.thresholds.get("roc_auc")
    if auc is None or band is None or not bound:
        return False
    return any(edge is not None and abs(auc - edge) <= bound for edge in (band.warn, band.alert))


def _fairness(mon: Questions, version: int, start: datetime, end: datetime,
              notes: list[str]) -> list[Figure]:
    policy = mon.policy
    if not policy.fairness_group:
        return []
    table = mon.fairness(policy.fairness_group, policy.fairness_favorable, start=start,
                         end=end, version=version, error_rates=False)  # air needs no outcome
    return [_figure(policy, "fairness", str(row["group"]), "air", row["air"],
                    (row["n"] or 0) >= policy.min_rows) for row in table.to_pylist()]


# -- 2. decide (pure) ---------------------------------------------------------------------------

def decide(figures: list[Figure], policy: MonitoringPolicy, *,
           window: tuple[datetime, datetime]) -> Decision:
    """The alerts the figures raise under ``policy`` and the action it takes.

    A window with a data-quality breach (a feature missing far more than in the reference:
    a broken feed) raises only data-quality alerts and no action: what it says about the
    model cannot be told apart from what the broken feed did. At most ``MAX_ALERTS`` alert
    events are recorded per check (the worst first); the last says how many more breached
    (every figure is in the metrics table)."""
    action = policy.on_alert if policy.on_alert != "none" else None
    inputs_drifted = any(f.status in ("warn", "alert") for f in figures
                         if f.kind == "drift" and f.feature not in (None, "score"))
    span = [ts_text(window[0]), ts_text(window[1])]
    breaches = sorted((f for f in figures if f.status == "alert"),
                      key=lambda f: -_severity(f, policy))
    if any(f.kind == "data_quality" for f in breaches):
        # a window whose feed broke says nothing about the model: its other figures are kept
        # in the metrics table, but only the data-quality breaches are alerts
        breaches = [f for f in breaches if f.kind == "data_quality"]
    alerts: list[dict[str, Any]] = []
    for f in breaches[:MAX_ALERTS]:
        if f.kind == "data_quality":
            band = {"warn": policy.max_missing, "alert": policy.max_missing,
                    "direction": "above"}
            kind = "data_quality"
        else:
            b = policy.thresholds[f.metric]
            band = {"warn": b.warn, "alert": b.alert, "direction": b.direction}
            # performance falling while every input stays stable: the relation changed
            kind = ("concept_drift" if f.kind == "performance" and not inputs_drifted
                    else f.kind)
        alerts.append({"kind": kind, "metric": f.metric, "feature": label(f.feature),
                       "value": f.value, "status": "alert", "window": span,
                       "action": None if kind == "data_quality" else action, "band": band})
    if len(breaches) > MAX_ALERTS:
        alerts[-1]["more"] = len(breaches) - MAX_ALERTS
    about_model = [a for a in alerts if a["kind"] != "data_quality"]
    reason = ""
    if alerts:
        first = (about_model or alerts)[0]
        reason = (f"{len(breaches)} monitoring alert(s) in {window[0]:%Y-%m-%d} .. "
                  f"{window[1]:%Y-%m-%d}, first: {first['metric']} = {first['value']:.4g}")
    return Decision(tuple(alerts), action if about_model else None, reason)


def _severity(f: Figure, policy: MonitoringPolicy) -> float:
    """How far past its alert threshold a figure is, relative (comparable across metrics)."""
    band = policy.thresholds.get(f.metric)
    if f.value is None or band is None or not band.alert:
        return float(f.value or 0.0)
    gap = (f.value - band.alert) if band.direction == "above" else (band.alert - f.value)
    return gap / abs(band.alert)


def label(text: str | None) -> str | None:
    """A feature or group name as an event may carry it: long ones (a poisoned attribute
    value) are cut and named by their hash, so no logged value can overflow an event."""
    if text is None or len(text) <= MAX_LABEL:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[:MAX_LABEL - 30]}… (sha256 {digest})"


# -- 3. act ------------------------------------------------------------------------------------

def act(writes: MonitoringWrites, result: CheckResult, decision: Decision) -> Event:
    """The policy's action on the first of ``result``'s alerts."""
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
