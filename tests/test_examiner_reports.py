"""The monitoring and validation reports read as an examiner reads them (issue 17): on a
registry whose last two days drifted, whose check() raised alerts, whose outcomes matured
only in part, the reports rate the period by its worst window, never contradict an alert,
judge performance on matured outcomes only, validate out of sample with a benchmark,
intervals and findings, and say who ran them with what. Each test starts a kernel (slow)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nbregistry as nbr
from nbregistry.monitoring.significance import auc_interval, delong
from nbregistry.reports import validation as val
from nbregistry.reports.templates import template_path
from reportworld import CARD, FEATURES, NOW, monitored

MATURITY_DAYS = 3
POLICY = {"window": "2d", "maturity_days": MATURITY_DAYS, "min_rows": 100,
          "fairness_group": "sex", "fairness_favorable": 0,
          # strict bands, so that fairness alerts and performance warns appear
          "thresholds": {"air": {"warn": 1.01, "alert": 0.999, "direction": "below"},
                         "roc_auc": {"warn": 0.9, "alert": 0.6, "direction": "below"}}}


def provenance(notebook: Path) -> dict[str, Any]:
    """What a report showed as its provenance (who, when, nbregistry, template, baseline)."""
    from nbregistry.reports.helpers import PROVENANCE_MIME

    nb = nbformat.read(str(notebook), as_version=4)
    found = [o["data"][PROVENANCE_MIME] for cell in nb.cells
             for o in cell.get("outputs", []) if PROVENANCE_MIME in o.get("data", {})]
    assert len(found) == 1, found
    return dict(found[0])


def shown(notebook: Path, caption: str) -> list[dict[str, str]]:
    """The rows of the table a report showed under ``caption`` (from its text form)."""
    nb = nbformat.read(str(notebook), as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            if text.startswith(caption):
                lines = text.splitlines()
                table = next(o for o in cell["outputs"] if o.get("data", {}).get(
                    "text/plain", "") == text)["data"]["text/html"]
                head = [h.split(">")[-1] for h in table.split("</th>")[:-1]]
                return [dict(zip(head, line.split(" | "), strict=True)) for line in lines[1:]]
    raise AssertionError(f"no table {caption!r} in {notebook}")


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("examiner")
    uri = str(root / "registry")
    (root / "data").mkdir()
    world = monitored(uri, root / "data")
    alice, mon, model = world["alice"], world["mon"], world["model"]
    alice.set_policy({**alice.policy.source, "monitoring": POLICY})
    shifted = world["live"].iloc[:1000].assign(
        debt_ratio=lambda f: f["debt_ratio"] + 0.3).reset_index(drop=True)
    ts = [NOW - timedelta(days=2) + timedelta(seconds=150 * i) for i in range(len(shifted))]
    mon.log_predictions(shifted, model.predict_proba(shifted[FEATURES]), ts=ts,
                        attributes=["sex"], version=1)
    check = mon.check(now=NOW)
    assert any(e.payload["feature"] == "debt_ratio" for e in check.alerts)
    pack = nbr.run_pack("credit", 1, output_dir=root / "out", uri=uri, user="carol",
                        templates=("validation", "monitoring"), progress=False, pdf=False,
                        parameters={"validation": {
                            "conclusion": "Fit for use with conditions: retrain on recent data",
                            "effective_challenge": "Asked why debt_ratio drifts; answered"}})
    return {**world, "uri": uri, "root": root, "pack": pack, "check": check,
            "shifted": shifted.assign(ts=ts)}


@pytest.mark.slow
def test_the_monitoring_report_rates_the_period_by_its_worst_window(
        drifted: dict[str, Any]) -> None:
    report = drifted["pack"].reports["monitoring"]
    figures = report.figures
    # pooled over the period the shift is diluted; the last window is red
    assert figures["psi_max"] >= 0.25 > figures["psi_max_pooled"]
    assert figures["drift_rating"] == "alert" and figures["rating"] == "alert"
    assert figures["alerts"] == len(drifted["check"].alerts) > 0
    breaches = shown(report.files["notebook"], "Breaches")
    assert any(b["area"] == "drift" and b["item"] == "debt_ratio" and b["rag"] == "RED"
               for b in breaches)
    logged = [b for b in breaches if b["source"].startswith("audit log")]
    assert len(logged) == figures["alerts"] and {b["rag"] for b in logged} == {"RED"}
    # the threshold is the level crossed: the alert level on red rows, the warn level on amber
    levels = {"drift": ("0.1", "0.25"), "fairness": ("1.01", "0.999"),
              "performance": ("0.9", "0.6")}
    for b in breaches:
        area = b["area"].removeprefix("alert (").rstrip(")")
        area = "drift" if area == "drift" else area if area in levels else "fairness"
        warn, alert = levels[area]
        assert b["threshold"] == (alert if b["rag"] == "RED" else warn), b
    assert any(b["rag"] == "AMBER" and b["area"] == "performance" for b in breaches)
    page = report.files["html"].read_text()
    assert "Period rated RED" in page and "All green" not in page


@pytest.mark.slow
def test_drift_is_shown_per_window_with_its_test_and_adjusted_p_value(
        drifted: dict[str, Any]) -> None:
    notebook = drifted["pack"].reports["monitoring"].files["notebook"]
    windows = shown(notebook, "Drift per 2d window")
    assert {"test", "p_value", "p_adjusted", "drifted", "rag"} <= set(windows[0])
    last = [r for r in windows if r["window"] == windows[-1]["window"]]
    debt = next(r for r in last if r["feature"] == "debt_ratio")
    assert debt["test"] == "KS" and debt["drifted"] == "yes" and debt["rag"] == "RED"
    pooled = shown(notebook, "The whole period pooled")
    assert {"ks_pvalue", "chi2_pvalue", "p_adjusted", "drifted"} <= set(pooled[0])
    assert all(r["rag"] in ("GREEN", "N/A") for r in windows if r["drifted"] == "no")


@pytest.mark.slow
def test_realized_performance_covers_matured_predictions_only(
        drifted: dict[str, Any]) -> None:
    figures = drifted["pack"].reports["monitoring"].figures
    live, model = drifted["live"], drifted["model"]
    ts = np.array([drifted["start"] + timedelta(seconds=200 * i) for i in range(len(live))])
    matured = ts <= NOW - timedelta(days=MATURITY_DAYS)  # the outcomes, at NOW, are newest
    score = model.predict_proba(live[FEATURES])[:, 1]
    expected = roc_auc_score(live["default"][matured], score[matured])
    assert figures["roc_auc"] == pytest.approx(expected, rel=1e-9)
    assert figures["matured_predictions"] == int(matured.sum())
    low, high = auc_interval(live["default"][matured], score[matured])[1:]
    assert (figures["roc_auc_low"], figures["roc_auc_high"]) == pytest.approx((low, high))
    first, last = ts[matured].min(), ts[matured].max()
    assert figures["performance_days"] == f"{first.date()} .. {last.date()}"
    trend = shown(drifted["pack"].reports["monitoring"].files["notebook"], "Per 2d window")
    assert trend[-1]["matured"] == "no" and trend[-1]["rag"] == "N/A"


@pytest.mark.slow
def test_validation_is_out_of_sample_with_a_benchmark_and_intervals(
        drifted: dict[str, Any]) -> None:
    report = drifted["pack"].reports["validation"]
    figures = report.figures
    frame, model = drifted["frame"], drifted["model"]
    train, test = frame[frame.split == "train"], frame[frame.split == "test"]
    assert figures["in_sample_only"] is False
    # train is the reference of every comparison (alphabetical order made it "test")
    score = {n: model.predict_proba(p[FEATURES])[:, 1] for n, p in (("train", train),
                                                                    ("test", test))}
    expected = max([val.psi_between(train[f], test[f]) for f in FEATURES]
                   + [val.psi_between(score["train"], score["test"])])
    assert figures["psi_max_samples"] == pytest.approx(expected, rel=1e-12)
    low, high = auc_interval(test["default"], score["test"])[1:]
    assert (figures["auc_test_low"], figures["auc_test_high"]) == pytest.approx((low, high))
    assert figures["ks_test_low"] < figures["ks_test"] < figures["ks_test_high"]
    # v1 is in production and replaced nothing: a logistic-regression benchmark, on test
    bench = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegression(max_iter=1000)).fit(train[FEATURES],
                                                                 train["default"])
    test_ = delong(test["default"], bench.predict_proba(test[FEATURES])[:, 1], score["test"])
    assert figures["benchmark_auc_diff"] == pytest.approx(test_.diff, rel=1e-9)
    assert figures["benchmark_p_value"] == pytest.approx(test_.p_value, rel=1e-9)
    # production on matured outcomes only, with the drifted rows (no outcome) left out
    live = drifted["live"]
    ts = np.array([drifted["start"] + timedelta(seconds=200 * i) for i in range(len(live))])
    matured = ts <= NOW - timedelta(days=MATURITY_DAYS)
    assert figures["auc_production"] == pytest.approx(roc_auc_score(
        live["default"][matured], model.predict_proba(live[FEATURES])[:, 1][matured]),
        rel=1e-9)


@pytest.mark.slow
def test_validation_findings_conclusion_and_provenance(drifted: dict[str, Any]) -> None:
    report = drifted["pack"].reports["validation"]
    findings = shown(report.files["notebook"], "Findings")
    assert findings[0]["severity"] == "HIGH"
    assert any("debt_ratio" in f["finding"] and f["section"] == "5. Stability"
               for f in findings)
    assert report.figures["findings_high"] == sum(f["severity"] == "HIGH" for f in findings)
    page = report.files["html"].read_text()
    assert "Fit for use with conditions: retrain on recent data" in page
    assert "Asked why debt_ratio drifts; answered" in page
    mv = nbr.open_registry(drifted["uri"]).get("credit", 1)
    for name, found in drifted["pack"].reports.items():
        shown_as = provenance(found.files["notebook"])
        assert shown_as["by"] == "carol" and shown_as["nbregistry"] == nbr.__version__
        assert shown_as["template_sha256"] == hashlib.sha256(
            template_path(name).read_bytes()).hexdigest()
        assert shown_as["baseline"]["reference"] == mv.reference["sha256"]
        assert found.provenance == shown_as  # what the event records is what it showed


@pytest.mark.slow
def test_a_challenger_replay_shows_intervals_and_p_values_at_their_resolution(
        drifted: dict[str, Any], tmp_path: Path) -> None:
    report = nbr.run_report("validation", output_dir=tmp_path, uri=drifted["uri"],
                            model="credit", version=2, progress=False, pdf=False)
    replay = drifted["mon"].replay(2, served=1)
    rows = {r["metric"]: r for r in shown(report.files["notebook"], "Replay on")}
    assert set(rows) == set(replay.metrics)
    for metric, (low, high) in replay.intervals.items():
        assert rows[metric]["95% interval"] == f"[{low:+.4f}, {high:+.4f}]"
    floor = 2 / 501
    for metric, p in replay.p_values.items():
        if metric != "roc_auc" and p <= floor:
            assert rows[metric]["p_value"] == "< 0.004"
    assert report.figures["challenger_auc_diff"] == pytest.approx(replay.diff, rel=1e-9)


@pytest.mark.slow
def test_a_version_with_only_a_reference_sample_is_validated_on_it(
        registry_uri: str, tmp_path: Path) -> None:
    from nbregistry.demo import credit_data

    data = credit_data(1500, seed=8)
    alice = nbr.open_registry(registry_uri, user="alice", create=True)
    model = LogisticRegression(max_iter=500).fit(data[FEATURES], data["default"])
    alice.register(model, "credit", reference_data=data[FEATURES],
                   reference_target=data["default"], card=CARD)
    report = nbr.run_report("validation", output_dir=tmp_path, uri=registry_uri,
                            model="credit", version=1, progress=False, pdf=False)
    figures = report.figures
    assert figures["data_source"] == "reference" and figures["in_sample_only"] is True
    assert figures["auc_reference"] == pytest.approx(
        roc_auc_score(data["default"], model.predict_proba(data[FEATURES])[:, 1]), rel=1e-12)
    assert figures["rows"] == 1500 and figures["findings_high"] >= 2
    page = report.files["html"].read_text()
    assert "IN-SAMPLE ONLY" in page and "the reference sample registered with v1" in page
