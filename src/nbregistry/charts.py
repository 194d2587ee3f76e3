"""Altair chart builders: pure functions, data in, chart out (no registry calls, no I/O).

Panels, magics and report templates share them. ``to_svg`` renders offline with
``vl-convert`` so saved notebooks and reports never reference a CDN. Importing this module
imports altair (≈1 s), so callers import it only when they draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .domain.entities import ModelVersion
from .domain.extras import require

if TYPE_CHECKING:
    import altair as alt
else:
    alt = require("notebook", "altair")

PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d"]


def metric_rows(versions: Sequence[ModelVersion],
                metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Long-form rows ``{metric, version, value}``; only metrics every version has unless
    ``metrics`` names them (a missing value would draw as a misleading zero)."""
    if metrics is None:
        shared = set.intersection(*(set(mv.metrics) for mv in versions)) if versions else set()
        metrics = sorted(shared)
    return [{"metric": m, "version": f"v{mv.version}", "value": float(mv.metrics[m])}
            for m in metrics for mv in versions if m in mv.metrics]


def metrics_bars(rows: Sequence[Mapping[str, Any]], *, title: str = "",
                 width: int = 110, height: int = 160) -> alt.FacetChart:
    """One small bar chart per metric, versions side by side. Each metric keeps its own
    y scale (an AUC of 0.8 and a row count of 10,000 must not share an axis); bars start at
    zero so their lengths stay honest."""
    base = alt.Chart(alt.InlineData(values=[dict(r) for r in rows]), width=width,
                     height=height)
    bars = base.mark_bar().encode(
        x=alt.X("version:N", title=None, sort=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", title=None),
        color=alt.Color("version:N", legend=None, sort=None,
                        scale=alt.Scale(range=PALETTE)),
        tooltip=["metric:N", "version:N", alt.Tooltip("value:Q", format=".4g")],
    )
    chart: alt.FacetChart = bars.facet(
        column=alt.Column("metric:N", title=title or None)).resolve_scale(y="independent")
    return chart


def compare_metrics(versions: Sequence[ModelVersion],
                    metrics: Sequence[str] | None = None) -> alt.FacetChart:
    """Metrics of several versions of one model, side by side."""
    names = sorted({mv.name for mv in versions})
    return metrics_bars(metric_rows(versions, metrics), title=", ".join(names))


def metric_trend(versions: Sequence[ModelVersion], metric: str) -> alt.LayerChart:
    """One metric across a model's versions, coloured by stage: did the model improve?"""
    rows = [{"version": mv.version, "value": float(mv.metrics[metric]), "stage": mv.stage}
            for mv in versions if metric in mv.metrics]
    base = alt.Chart(alt.InlineData(values=rows), width=360, height=180)
    line = base.mark_line(color="#999").encode(x=alt.X("version:O", title="version"),
                                                y=alt.Y("value:Q", title=metric,
                                                        scale=alt.Scale(zero=False)))
    points = base.mark_point(filled=True, size=60).encode(
        x="version:O", y="value:Q", color=alt.Color("stage:N", scale=alt.Scale(range=PALETTE)),
        tooltip=["version:O", "stage:N", alt.Tooltip("value:Q", format=".4g")])
    chart: alt.LayerChart = line + points
    return chart


def to_svg(chart: alt.TopLevelMixin) -> str:
    """Render offline (no browser, no CDN) to an SVG string for static HTML."""
    import vl_convert as vlc

    svg: str = vlc.vegalite_to_svg(chart.to_json())
    return svg
