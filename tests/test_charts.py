"""Chart builders as specs (``chart.to_dict()``); one offline SVG render."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from nbregistry import charts
from nbregistry.domain.entities import ModelVersion


def _mv(version: int, stage: str = "development", **metrics: float) -> ModelVersion:
    return ModelVersion(name="credit", version=version, sha256="0" * 64, size=1,
                        flavor="joblib", created_at=datetime(2026, 1, version, tzinfo=UTC),
                        created_by="alice", metrics=metrics, stage=stage)


VERSIONS = [_mv(1, auc=0.78, ks=0.3, rows=1000.0), _mv(2, "production", auc=0.83, ks=0.35),
            _mv(3, "staging", auc=0.81)]


def _values(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The inline rows, wherever altair put them (it moves them to ``datasets``)."""
    data = spec.get("data", {})
    if "values" in data:
        return list(data["values"])
    return list(spec["datasets"][data["name"]])


def test_metric_rows_keep_only_metrics_every_version_has() -> None:
    rows = charts.metric_rows(VERSIONS)
    assert {r["metric"] for r in rows} == {"auc"}
    assert [r["version"] for r in rows] == ["v1", "v2", "v3"]
    named = charts.metric_rows(VERSIONS, ["ks"])
    assert [(r["version"], r["value"]) for r in named] == [("v1", 0.3), ("v2", 0.35)]
    assert charts.metric_rows([]) == []


def test_compare_metrics_is_one_small_chart_per_metric_with_its_own_scale() -> None:
    spec = charts.compare_metrics(VERSIONS[:2]).to_dict()
    assert spec["facet"]["column"]["field"] == "metric"
    assert spec["resolve"]["scale"]["y"] == "independent"
    inner = spec["spec"]
    assert inner["mark"]["type"] == "bar"
    assert inner["encoding"]["x"]["field"] == "version"
    assert inner["encoding"]["y"]["field"] == "value"
    assert inner["encoding"]["x"]["sort"] is None  # v1, v2, … in the order given
    rows = _values(spec)
    assert {(r["metric"], r["version"]) for r in rows} == {
        ("auc", "v1"), ("auc", "v2"), ("ks", "v1"), ("ks", "v2")}
    assert spec["facet"]["column"]["title"] == "credit"


def test_metrics_bars_takes_plain_rows() -> None:
    spec = charts.metrics_bars([{"metric": "auc", "version": "a", "value": 0.5}],
                               title="", width=80, height=60).to_dict()
    assert spec["spec"]["width"] == 80 and spec["spec"]["height"] == 60
    assert spec["facet"]["column"]["title"] is None


def test_metric_trend_orders_versions_and_colours_stages() -> None:
    spec = charts.metric_trend(VERSIONS, "ks").to_dict()
    line, points = spec["layer"]
    assert line["mark"]["type"] == "line" and points["mark"]["type"] == "point"
    assert points["encoding"]["color"]["field"] == "stage"
    assert points["encoding"]["x"] == {"field": "version", "type": "ordinal"}
    rows = _values(spec)
    assert [(r["version"], r["stage"]) for r in rows] == [(1, "development"), (2, "production")]


@pytest.mark.parametrize("build", [lambda: charts.compare_metrics(VERSIONS),
                                   lambda: charts.metric_trend(VERSIONS, "auc")])
def test_to_svg_renders_offline(build: Any) -> None:
    svg = charts.to_svg(build())
    assert svg.lstrip().startswith("<svg") and "</svg>" in svg
    assert "<script" not in svg and 'href="http' not in svg  # nothing fetched when viewed


def test_monitoring_charts_are_specs_with_the_policy_bands() -> None:
    heat = charts.drift_heatmap([{"window": "11-01", "feature": "income", "psi": 0.3},
                                 {"window": "11-02", "feature": "income", "psi": None}],
                                warn=0.1, alert=0.25).to_dict()
    assert heat["mark"]["type"] == "rect"
    assert heat["encoding"]["color"]["scale"]["domain"][:3] == [0, 0.1, 0.25]
    trend = charts.performance_trend([{"window": "w1", "roc_auc": 0.7},
                                      {"window": "w2", "roc_auc": None}], "roc_auc",
                                     warn=0.7, alert=0.65).to_dict()
    rules = [layer for layer in trend["layer"] if layer["mark"]["type"] == "rule"]
    line = trend["datasets"][trend["layer"][0]["data"]["name"]]
    assert len(rules) == 2 and len(line) == 1  # the null is a gap, not a zero
    bars = charts.fairness_bars([{"group": "F", "air": 0.7}, {"group": "M", "air": 1.0}])
    spec = bars.to_dict()
    flags = [v["flag"] for v in spec["datasets"][spec["layer"][0]["data"]["name"]]]
    assert flags == ["below 4/5", "ok"] and "<svg" in charts.to_svg(bars)
