"""Comparison panel: pick a model and 2+ versions; tabs show metrics (with a chart) and the
differences in params, feature schema, model card and lineage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..comparison import Comparison
from .base import Panel

if TYPE_CHECKING:
    from ...registry import RegistryView

TABS = ("Metrics", "Parameters", "Features", "Model card", "Lineage")


class ComparisonPanel(Panel):
    def __init__(self, registry: RegistryView, name: str, versions: Sequence[int] = (), *,
                 chart: bool = True) -> None:
        self.comparison: Comparison | None = None
        self._quiet = False
        self.model = widgets.Dropdown(description="model", options=registry.models())
        self.versions = widgets.SelectMultiple(description="versions", rows=6)
        self.chart = widgets.Checkbox(value=chart, description="chart", indent=False)
        self.pages = [widgets.HTML() for _ in TABS]
        self.tabs = widgets.Tab(children=self.pages, titles=TABS)
        super().__init__(registry, [widgets.HBox([self.model, self.versions, self.chart]),
                                    self.tabs])
        self.attempt(lambda: self._pick(name, versions), lambda _: "")
        self.model.observe(lambda _: self._pick(self.model.value, ()), names="value")
        self.versions.observe(lambda _: self.render(), names="value")
        self.chart.observe(lambda _: self.render(), names="value")

    def __repr__(self) -> str:
        picked = ", ".join(f"v{v}" for v in self.versions.value)
        return f"<ComparisonPanel {self.model.value} {picked}>"

    def _pick(self, name: str, versions: Sequence[int]) -> None:
        """Offer the model's versions; preselect the asked ones, else the latest two."""
        available = self.registry.stages(name)  # raises NotFoundError for an unknown model
        numbers = sorted(v for held in available.values() for v in held)
        self._quiet = True
        try:
            self.model.value = name
            self.versions.options = [(f"v{v}", v) for v in numbers]
            self.versions.value = tuple(v for v in versions if v in numbers) or tuple(
                numbers[-2:])
        finally:
            self._quiet = False
        self.render()

    def render(self) -> None:
        if self._quiet:
            return
        chosen = sorted(self.versions.value)
        if len(chosen) < 2:
            self.say("pick at least two versions to compare (ctrl/cmd-click)", ok=False)
            return
        name = self.model.value
        found = self.attempt(lambda: [self.registry.get(name, v) for v in chosen], lambda _: "")
        if found is None:
            return
        self.comparison = cmp = Comparison(found)
        with self.hold_sync():
            self.pages[0].value = cmp.metrics_html(chart=self.chart.value)
            for page, (_, get) in zip(self.pages[1:], cmp.sections(), strict=True):
                page.value = cmp.diff_html(get())

    def snapshot_html(self) -> str:
        return self.comparison.html(chart=self.chart.value) if self.comparison else ""
