"""The report chart builders as specs (``chart.to_dict()``), and one offline render."""

from __future__ import annotations

from typing import Any

from nbregistry import charts


def _layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("layer", [spec])


def _values(spec: dict[str, Any], layer: dict[str, Any]) -> list[dict[str, Any]]:
    data = layer.get("data", spec.get("data", {}))
    return list(data["values"]) if "values" in data else list(spec["datasets"][data["name"]])


def test_roc_curves_draw_one_line_per_sample_and_the_diagonal() -> None:
    rows = [{"fpr": 0.0, "tpr": 0.0, "sample": "train"}, {"fpr": 1.0, "tpr": 1.0,
                                                          "sample": "train"},
            {"fpr": 0.0, "tpr": 0.0, "sample": "test"}]
    spec = charts.roc_curves(rows).to_dict()
    diagonal, curves = _layers(spec)
    assert curves["encoding"]["color"]["field"] == "sample"
    assert curves["encoding"]["x"]["scale"]["domain"] == [0, 1]
    assert _values(spec, curves) == rows
    assert diagonal["mark"]["strokeDash"] == [4, 4]


def test_status_bars_colour_by_rag_and_draw_the_thresholds() -> None:
    rows = [{"feature": "income", "psi": 0.3, "status": "alert"},
            {"feature": "age", "psi": 0.01, "status": "ok"}, {"feature": "x", "psi": None}]
    spec = charts.status_bars(rows, value="psi", thresholds=[0.1, 0.25]).to_dict()
    bars, rules = _layers(spec)
    assert [r["feature"] for r in _values(spec, bars)] == ["income", "age"]  # no null bar
    scale = bars["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True))["alert"] == "#cf222e"
    assert [r["t"] for r in _values(spec, rules)] == [0.1, 0.25]


def test_air_bars_mark_groups_below_four_fifths() -> None:
    rows = [{"group": "F", "air": 0.7, "four_fifths": True},
            {"group": "M", "air": 1.0, "four_fifths": False}]
    spec = charts.air_bars(rows).to_dict()
    bars, rules = _layers(spec)
    assert [(r["group"], r["status"]) for r in _values(spec, bars)] == [("F", "alert"),
                                                                         ("M", "ok")]
    assert _values(spec, rules) == [{"t": 0.8}]


def test_value_bars_and_metric_over_time() -> None:
    spec = charts.value_bars({"income": 0.6, "debt": 0.4}, title="importance").to_dict()
    assert spec["encoding"]["y"]["sort"] == "-x" and spec["encoding"]["x"]["title"] == \
        "importance"
    trend = charts.metric_over_time([{"window_start": "2026-01-01", "roc_auc": 0.7},
                                     {"window_start": "2026-01-02", "roc_auc": None}],
                                    metric="roc_auc").to_dict()
    assert _values(trend, trend) == [{"t": "2026-01-01", "roc_auc": 0.7}]


def test_report_charts_render_offline_to_svg() -> None:
    svg = charts.to_svg(charts.air_bars([{"group": "F", "air": 0.7, "four_fifths": True}]))
    assert svg.lstrip().startswith("<svg") and "http://" not in svg.replace(
        "http://www.w3.org", "")
