"""Monitoring dashboard: drift heatmap, performance over time, fairness, alerts; a button to
run the policy's check. The figures come from ``notebook.monitoring.gather``; the panel only
shows them."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...domain.html import esc
from ...domain.timefmt import parse_window
from ..monitoring import MonitoringView, freshness, gather
from .base import Panel

if TYPE_CHECKING:
    from ...registry import Registry
    from ...watch import CheckResult

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
        # buttons keep their width; the header wraps instead of squeezing them
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             layout={"width": "auto", "flex": "0 0 auto"})
        self.check_button = widgets.Button(description="Run check", icon="heartbeat",
                                           button_style="warning",
                                           layout={"width": "auto", "flex": "0 0 auto"},
                                           tooltip="compute the policy's window, record "
                                                   "alerts and apply the policy's action")
        self.follow_button = widgets.ToggleButton(
            description="Follow", icon="eye", value=False,
            layout={"width": "auto", "flex": "0 0 auto"},
            tooltip="re-read when a watcher records new sketches or alerts (looks once per "
                    "tick of the policy)")
        # the questions' progress bars (tqdm.auto) land here, inside the panel, not above it
        self.progress = widgets.Output()
        super().__init__(registry, [widgets.HBox([self.header, self.refresh_button,
                                                  self.check_button, self.follow_button]),
                                    self.progress, self.tabs])
        self.monitor = registry.monitor(name)
        self.refresh_button.on_click(lambda _: self.refresh())
        self.check_button.on_click(lambda _: self.run_check())
        self.follow_button.observe(self._follow, names="value")
        self._stop = threading.Event()
        self._seen: tuple[Any, ...] | None = None
        self.render()

    def __repr__(self) -> str:
        return f"<MonitoringDashboard {self.name} as {self.registry.user}>"

    @property
    def buttons(self) -> list[widgets.Button]:
        return [self.check_button, self.refresh_button]

    def refresh(self) -> None:
        with self.working("Recomputing from the newest data…", self.buttons[::-1]):
            self.render("Re-read the registry and the monitoring tables.")

    def run_check(self) -> None:
        """Check, then re-read, then show the figures and the outcome together: the message
        never announces alerts that the header and the Alerts tab do not show yet."""
        with self.working("Running the policy's check…", self.buttons):
            result = self.attempt(self.monitor.check)
            if result is not None:
                self.render(check_outcome(result))

    def render(self, outcome: str = "") -> None:
        """Recompute everything and show it; ``outcome`` is said after the figures are."""
        self.reread()
        view = self.attempt(self._gather)
        if view is None:
            return
        self.view = view
        self.header.value = (f"<b>{esc(self.name)}</b> v{view.version}, window "
                             f"{esc(view.window)} — {esc(view.headline())}")
        for page, html in zip(self.pages, (view._drift_html(), view._performance_html(),
                                           view._fairness_html(), view._alerts_html()),
                              strict=True):
            page.value = html
        self.tabs.titles = (*TABS[:-1], f"Alerts ({len(view.alerts)})" if view.alerts
                            else "Alerts")
        said = "; ".join(filter(None, [outcome, *view.notes]))
        if said:
            self.say(said, ok=True)

    def _gather(self) -> MonitoringView:
        try:
            with self.progress:
                return gather(self.monitor, window=self.window, heatmap=self.heatmap)
        finally:
            self.progress.clear_output()

    def _follow(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._stop = threading.Event()
            self._seen = freshness(self.monitor)
            threading.Thread(target=self._watch, args=(self._stop,), daemon=True).start()
        else:
            self._stop.set()

    def _watch(self, stop: threading.Event) -> None:
        """Look once per tick of the policy (never faster); re-read when something new
        was recorded."""
        every = parse_window(self.monitor.policy.tick).total_seconds()
        while not stop.wait(every):
            self.poll()

    def poll(self) -> bool:
        """Re-read if a watcher (or anyone) recorded something since the last look."""
        now = freshness(self.monitor)
        if now == self._seen:
            return False
        self._seen = now
        self.render("new sketches or alerts were recorded: re-read")
        return True

    def snapshot_html(self) -> str:
        return self.view._repr_html_() if self.view is not None else ""


def check_outcome(result: CheckResult) -> str:
    actions = ", ".join(e.action for e in result.actions)
    return f"check recorded {len(result.alerts)} alert(s)" + (f" and {actions}" if actions
                                                               else "")
