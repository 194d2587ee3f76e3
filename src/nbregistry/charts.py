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


RAG_COLORS = {"ok": "#1a7f37", "warn": "#bf8700", "alert": "#cf222e",
              "insufficient": "#8c959f", "unknown": "#8c959f"}


def roc_curves(rows: Sequence[Mapping[str, Any]]) -> alt.LayerChart:
    """ROC curves (rows ``{fpr, tpr, sample}``), one line per sample, with the diagonal."""
    base = alt.Chart(alt.InlineData(values=[dict(r) for r in rows]), width=320, height=320)
    curves = base.mark_line().encode(
        x=alt.X("fpr:Q", title="false positive rate", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("tpr:Q", title="true positive rate", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("sample:N", scale=alt.Scale(range=PALETTE)), order="fpr:Q")
    diagonal = alt.Chart(alt.InlineData(values=[{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}])
                         ).mark_line(color="#999", strokeDash=[4, 4]).encode(x="fpr:Q",
                                                                              y="tpr:Q")
    chart: alt.LayerChart = diagonal + curves
    return chart


def value_bars(values: Mapping[str, float], *, title: str, width: int = 360) -> alt.Chart:
    """Horizontal bars, largest first (feature importance, sensitivity)."""
    rows = [{"name": k, "value": float(v)} for k, v in values.items()]
    chart: alt.Chart = alt.Chart(alt.InlineData(values=rows), width=width,
                                 height=max(60, 18 * len(rows))).mark_bar(
        color=PALETTE[0]).encode(
        x=alt.X("value:Q", title=title), y=alt.Y("name:N", title=None, sort="-x"),
        tooltip=["name:N", alt.Tooltip("value:Q", format=".4g")])
    return chart


def status_bars(rows: Sequence[Mapping[str, Any]], *, value: str, label: str = "feature",
                thresholds: Sequence[float] = ()) -> alt.LayerChart:
    """Bars coloured red / amber / green by ``status`` (PSI per feature), with the policy's
    thresholds as rules."""
    data = [{label: str(r[label]), value: r[value], "status": r.get("status", "unknown")}
            for r in rows if r.get(value) is not None]
    bars = alt.Chart(alt.InlineData(values=data), width=360,
                     height=max(60, 18 * len(data))).mark_bar().encode(
        x=alt.X(f"{value}:Q", title=value), y=alt.Y(f"{label}:N", title=None, sort="-x"),
        color=alt.Color("status:N", scale=alt.Scale(domain=list(RAG_COLORS),
                                                    range=list(RAG_COLORS.values())),
                        legend=None),
        tooltip=[f"{label}:N", alt.Tooltip(f"{value}:Q", format=".4g"), "status:N"])
    rules = alt.Chart(alt.InlineData(values=[{"t": t} for t in thresholds])).mark_rule(
        color="#57606a", strokeDash=[4, 4]).encode(x="t:Q")
    chart: alt.LayerChart = bars + rules
    return chart


def air_bars(rows: Sequence[Mapping[str, Any]]) -> alt.LayerChart:
    """Adverse impact ratio per group, red below the four-fifths line."""
    data = [{"group": str(r["group"]), "air": r["air"],
             "status": "alert" if r.get("four_fifths") else "ok"}
            for r in rows if r.get("air") is not None]
    return status_bars(data, value="air", label="group", thresholds=[0.8])


def metric_over_time(rows: Sequence[Mapping[str, Any]], *, metric: str,
                     time: str = "window_start") -> alt.Chart:
    """One metric per window (realized performance)."""
    data = [{"t": str(r[time]), metric: r[metric]} for r in rows if r.get(metric) is not None]
    chart: alt.Chart = alt.Chart(alt.InlineData(values=data), width=420, height=180).mark_line(
        point=True, color=PALETTE[0]).encode(
        x=alt.X("t:T", title=None), y=alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False)),
        tooltip=["t:T", alt.Tooltip(f"{metric}:Q", format=".4g")])
    return chart


def to_svg(chart: alt.TopLevelMixin) -> str:
    """Render offline (no browser, no CDN) to an SVG string for static HTML."""
    import vl_convert as vlc

    svg: str = vlc.vegalite_to_svg(chart.to_json())
    return svg


# -- monitoring ---------------------------------------------------------------------------
STATUS_COLORS = {"domain": ["ok", "warn", "alert"],
                 "range": ["#2da44e", "#d4a72c", "#cf222e"]}


def drift_heatmap(rows: Sequence[Mapping[str, Any]], *, warn: float = 0.1,
                  alert: float = 0.25) -> alt.Chart:
    """PSI per feature (rows) and window (columns); cells coloured by the policy's bands so
    a drifting feature reads as a red streak. Rows: ``{window, feature, psi}``."""
    data = [{"window": str(r["window"]), "feature": r["feature"],
             "psi": None if r["psi"] is None else float(r["psi"])} for r in rows]
    chart: alt.Chart = alt.Chart(alt.InlineData(values=data), width=alt.Step(28),
                                 height=alt.Step(18)).mark_rect().encode(
        x=alt.X("window:O", title="window", axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("feature:N", title=None),
        color=alt.Color("psi:Q", title="PSI", scale=alt.Scale(
            domain=[0, warn, alert, max(alert * 2, 0.5)],
            range=["#f6f8fa", "#fff1c1", "#ff8182", "#a40e26"], clamp=True)),
        tooltip=["feature:N", "window:O", alt.Tooltip("psi:Q", format=".3f")])
    return chart


def performance_trend(rows: Sequence[Mapping[str, Any]], metric: str, *,
                      warn: float | None = None, alert: float | None = None) -> alt.LayerChart:
    """One metric per window, with the policy's warn and alert thresholds as rules.
    Rows: ``{window, <metric>}`` (null values are gaps, not zeros)."""
    data = [{"window": str(r["window"]), "value": r[metric]} for r in rows
            if r.get(metric) is not None]
    base = alt.Chart(alt.InlineData(values=data), width=360, height=180)
    line = base.mark_line(point=True, color=PALETTE[0]).encode(
        x=alt.X("window:O", title="window", axis=alt.Axis(labelAngle=-45)),
        y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        tooltip=["window:O", alt.Tooltip("value:Q", format=".4f")])
    layers: list[Any] = [line]
    for level, value, color in (("warn", warn, "#d4a72c"), ("alert", alert, "#cf222e")):
        if value is not None:
            rule = alt.Chart(alt.InlineData(values=[{"y": value, "level": level}])).mark_rule(
                color=color, strokeDash=[4, 3]).encode(y="y:Q", tooltip=["level:N", "y:Q"])
            layers.append(rule)
    chart: alt.LayerChart = alt.LayerChart(layer=layers)
    return chart


def fairness_bars(rows: Sequence[Mapping[str, Any]], *, floor: float = 0.8) -> alt.LayerChart:
    """Adverse impact ratio per group, with the four-fifths floor. Rows: ``{group, air}``."""
    data = [{"group": str(r["group"]), "air": r["air"],
             "flag": "below 4/5" if r["air"] is not None and r["air"] < floor else "ok"}
            for r in rows]
    base = alt.Chart(alt.InlineData(values=data), width=alt.Step(40), height=160)
    bars = base.mark_bar().encode(
        x=alt.X("group:N", title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("air:Q", title="adverse impact ratio", scale=alt.Scale(domain=[0, 1.05])),
        color=alt.Color("flag:N", legend=None, scale=alt.Scale(
            domain=["ok", "below 4/5"], range=["#4c78a8", "#cf222e"])),
        tooltip=["group:N", alt.Tooltip("air:Q", format=".3f")])
    rule = alt.Chart(alt.InlineData(values=[{"y": floor}])).mark_rule(
        color="#cf222e", strokeDash=[4, 3]).encode(y="y:Q")
    chart: alt.LayerChart = bars + rule
    return chart
