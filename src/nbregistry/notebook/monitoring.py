"""What ``%monitor`` shows: drift per feature, performance over time, fairness, open alerts,
as HTML that reads the same in a live kernel and in a saved notebook (charts as SVG)."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..domain.errors import NbRegistryError
from ..domain.html import FONT, STATUS_COLORS, badge, section, table_html
from ..domain.timefmt import parse_window

if TYPE_CHECKING:
    import pyarrow as pa

    from ..watch import Monitor



@dataclass
class MonitoringView:
    """Everything one look at a model's monitoring needs, gathered once."""

    name: str
    version: int
    window: str
    drift: pa.Table | None = None
    heatmap: pa.Table | None = None
    performance: pa.Table | None = None
    fairness: pa.Table | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    last_check: dict[str, Any] | None = None  # seq, ts, actor, window, version, alerts
    episodes: list[dict[str, Any]] = field(default_factory=list)  # open, oldest first
    status: dict[str, Any] = field(default_factory=dict)  # the version's (retrain_requested)

    def __repr__(self) -> str:
        return f"<MonitoringView {self.name} v{self.version}: {self.headline()}>"

    def in_alert(self) -> list[str]:
        """The drift rows (features and the score) whose status is ``alert`` now."""
        return ([r["feature"] for r in self.drift.to_pylist() if r["status"] == "alert"]
                if self.drift is not None else [])

    def headline(self) -> str:
        """One line that agrees with the tabs: what the drift table says now, and what the
        latest recorded check found (alerts are events a check records; drift is live)."""
        hot = self.in_alert()
        if self.drift is None:
            drift = "no drift figures yet"
        elif hot:
            names = ", ".join(hot[:4]) + (", …" if len(hot) > 4 else "")
            drift = f"{len(hot)} feature{'s' * (len(hot) > 1)} in drift alert ({names})"
        else:
            drift = "no feature in drift alert"
        check = self.last_check
        if check is None:
            return f"{drift}, no check recorded yet"
        other = check.get("version") not in (None, self.version)
        found = f"{check['alerts']} alert(s)" + (
            ", retraining requested" if "retrain_requested" in self.status and not other
            else "")
        of = f" of v{check['version']}" if other else ""
        return (f"{drift}; last check{of} {check['ts']:%Y-%m-%d %H:%M} UTC by "
                f"{check['actor']} (event {check['seq']}): {found}")

    def _repr_html_(self) -> str:
        parts = [f"<div style='{FONT}'><b>{html.escape(self.name)}</b> v{self.version} — "
                 f"monitoring, window {html.escape(self.window)}: "
                 f"{html.escape(self.headline())}</div>"]
        parts += [section("Drift", self._drift_html()),
                  section("Performance", self._performance_html()),
                  section("Fairness", self._fairness_html()),
                  section("Open alerts", self._alerts_html())]
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return "".join(parts) + (f"<ul style='{FONT};color:#57606a'>{notes}</ul>" if notes
                                 else "")

    def _drift_html(self) -> str:
        if self.drift is None:
            return "<i>no drift figures</i>"
        rows = [[r["feature"], r["psi"], r["ks"], r["js"], r["wasserstein"],
                 r["chi2_pvalue"], badge(r["status"], STATUS_COLORS.get(r["status"])),
                 "yes" if r["drifted"] else "no"] for r in self.drift.to_pylist()]
        body = table_html(["feature", "psi", "ks", "js", "wasserstein", "chi2 p", "status",
                           "drifted"], rows, raw=frozenset({6}))
        if self.heatmap is not None and self.heatmap.num_rows:
            from .. import charts

            band = self.thresholds.get("psi")
            chart = charts.drift_heatmap(
                [{"window": f"{r['window_start']:%m-%d}", "feature": r["feature"],
                  "psi": r["psi"]} for r in self.heatmap.to_pylist()],
                **({"warn": band.warn, "alert": band.alert} if band else {}))
            body = charts.to_svg(chart) + body
        return body

    def _performance_html(self) -> str:
        if self.performance is None or not self.performance.num_rows:
            return "<i>no matured outcomes yet</i>"
        from .. import charts

        rows = self.performance.to_pylist()
        metric = "roc_auc" if "roc_auc" in self.performance.column_names else "rmse"
        band = self.thresholds.get(metric)
        chart = charts.performance_trend(
            [{"window": f"{r['window_start']:%m-%d}", metric: r[metric]} for r in rows],
            metric, warn=band.warn if band else None, alert=band.alert if band else None)
        shown = [c for c in self.performance.column_names if c != "window_end"]
        return charts.to_svg(chart) + table_html(shown, [[r[c] for c in shown] for r in rows])

    def _fairness_html(self) -> str:
        if self.fairness is None:
            return "<i>set monitoring.fairness_group in the policy to track fairness</i>"
        from .. import charts

        rows = self.fairness.to_pylist()
        shown = [c for c in ("group", "n", "selection_rate", "air", "four_fifths", "p_value")
                 if c in self.fairness.column_names]
        return (charts.to_svg(charts.fairness_bars(rows))
                + table_html(shown, [[r[c] for c in shown] for r in rows]))

    def _alerts_html(self) -> str:
        episodes = ""
        if self.episodes:
            rows = [[a["metric"], a["feature"], a["value"], a["ts"], a["seq"]]
                    for a in self.episodes]
            episodes = section("Open episodes (a watcher or a check opened them; they close "
                               "when the figure leaves its alert band)", table_html(
                                   ["metric", "feature", "value", "since", "event"], rows))
        return episodes + self._alert_list_html()

    def _alert_list_html(self) -> str:
        if not self.alerts:
            return ("<i>none: no check recorded yet (a check records alerts)</i>"
                    if self.last_check is None else
                    f"<i>none (the last check was event {self.last_check['seq']})</i>")
        rows = [[a["seq"], a["ts"], a["metric"], a["feature"], a["value"], a["action"]]
                for a in self.alerts]
        return table_html(["event", "at", "metric", "feature", "value", "action"], rows)


def gather(mon: Monitor, *, window: str | None = None, version: int | None = None,
           heatmap: bool = True, progress: bool | None = None) -> MonitoringView:
    """Compute what the view shows; a part that can't be computed yet says why.
    ``progress``: the heatmap's bar (None: tqdm's choice, a widget in a kernel)."""
    policy = mon.policy
    span = window or policy.window
    mv = mon.version(version)
    view = MonitoringView(mon.name, mv.version, span, thresholds=dict(policy.thresholds))
    end = datetime.now(UTC)
    start = end - parse_window(span)
    parts: dict[str, Callable[[], Any]] = {
             "drift": lambda: mon.drift(start, end, version=mv.version).table,
             "heatmap": lambda: mon.drift_windows("1d", version=mv.version,
                                                  progress=progress).table if heatmap
             else None,
             "performance": lambda: mon.performance("1d", version=mv.version).table,
             "fairness": lambda: mon.fairness(policy.fairness_group,
                                              policy.fairness_favorable, start=start, end=end,
                                              version=mv.version).table
             if policy.fairness_group else None}
    for part, compute in parts.items():
        try:
            setattr(view, part, compute())
        except NbRegistryError as exc:
            view.notes.append(f"{part}: {exc}")
    events = mon.catalog.alerts(mon.name)
    view.alerts = [{"seq": e.seq, "ts": e.ts, **e.payload} for e in events][-20:]
    view.episodes = open_episodes(events)
    check = mon.catalog.last_check(mon.name)
    if check is not None and "check" in check.payload:
        view.last_check = {"seq": check.seq, "ts": check.ts, "actor": check.actor,
                           **check.payload["check"]}
    view.status = dict(mv.status)
    return view


def open_episodes(events: list[Any]) -> list[dict[str, Any]]:
    """The alerts still open: the newest alert about each figure (metric and feature) whose
    status is ``alert``, with the event that opened it."""
    latest: dict[tuple[Any, Any], Any] = {}
    for event in events:
        latest[(event.payload.get("metric"), event.payload.get("feature"))] = event
    return [{"seq": e.seq, "ts": e.ts, **e.payload} for e in latest.values()
            if e.payload.get("status") == "alert"]


def freshness(mon: Monitor) -> tuple[Any, ...]:
    """What changes when a watcher (or anyone) records something new for this model: the
    audit log's head and the sketches table's version (a panel following a watcher re-reads
    when this changes)."""
    registry = mon.catalog
    head = registry.refresh().head if hasattr(registry, "refresh") else None
    return head, mon.sketches.table.version()
