"""Monitoring dashboard: drift heatmap, performance over time, fairness, alerts; a button to
run the policy's check. The figures come from the registry; the panel only shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from ...domain.html import esc
from ..monitoring import MonitoringView, gather
from .base import Panel

if TYPE_CHECKING:
    from ...registry import Registry

TABS = ("Drift", "Performance", "Fairness", "Alerts")


class MonitoringDashboard(Panel):
    registry: Registry  # check() writes alerts and seals

    def __init__(self, registry: Registry, name: str, *, window: str | None = None,
                 heatmap: bool = True) -> None:
        self.name, self.window, self.heatmap = name, window, heatmap
        self.view: MonitoringView | None = None
        self.pages = [widgets.HTML() for _ in TABS]
        self.tabs = widgets.Tab(children=self.pages, titles=TABS)
        self.header = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             layout={"width": "auto"})
        self.check_button = widgets.Button(description="Run check", icon="heartbeat",
                                           button_style="warning", layout={"width": "auto"},
                                           tooltip="compute the policy's window, record "
                                                   "alerts and apply the policy's action")
        super().__init__(registry, [widgets.HBox([self.header, self.refresh_button,
                                                  self.check_button]), self.tabs])
        self.monitor = registry.monitor(name)
        self.refresh_button.on_click(lambda _: self.render())
        self.check_button.on_click(lambda _: self.run_check())
        self.render()

    def __repr__(self) -> str:
        return f"<MonitoringDashboard {self.name} as {self.registry.user}>"

    def render(self) -> None:
        self.reread()
        view = self.attempt(lambda: gather(self.monitor, window=self.window,
                                           heatmap=self.heatmap), lambda _: "")
        if view is None:
            return
        self.view = view
        with self.hold_sync():
            self.header.value = (f"<b>{esc(self.name)}</b> v{view.version}, window "
                                 f"{esc(view.window)}"
                                 f" — {len(view.alerts)} alert(s)")
            for page, html in zip(self.pages, (view._drift_html(), view._performance_html(),
                                               view._fairness_html(), view._alerts_html()),
                                  strict=True):
                page.value = html
        if view.notes:
            self.say("; ".join(view.notes), ok=True)

    def run_check(self) -> None:
        result = self.attempt(self.monitor.check,
                              lambda r: f"check recorded {len(r.alerts)} alert(s)"
                              + (f" and {', '.join(e.action for e in r.actions)}"
                                 if r.actions else ""))
        if result is not None:
            status, failed = self.status, self.failed
            self.render()
            self.status, self.failed = status, failed

    def snapshot_html(self) -> str:
        return self.view._repr_html_() if self.view is not None else ""
