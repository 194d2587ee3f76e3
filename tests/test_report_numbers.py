"""The numbers behind the monitoring and validation reports, without a kernel: the rating
rule, windows, maturity, breaches, intervals, sample order, findings, and the fixes an
examiner asked for (log loss, PSI of constants, p-values at their resolution)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import log_loss

import nbregistry as nbr
from nbregistry.domain.monitoring_policy import DEFAULT_BANDS, Band
from nbregistry.monitoring.drift import psi
from nbregistry.reports import findings as fx
from nbregistry.reports import helpers as h
from nbregistry.reports import monitoring as mr
from nbregistry.reports import validation as val

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PSI = DEFAULT_BANDS["psi"]


# -- validation numbers ------------------------------------------------------------------------
def test_log_loss_clips_like_scikit_learn() -> None:
    """Probabilities of exactly 0 and 1 are clipped at float64's epsilon, as scikit-learn
    does (1e-15 gave up to 0.01 more on a few confident mistakes)."""
    y = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    score = np.array([0.0, 1.0, 1.0, 0.0, 0.7, 0.2, 0.4, 1e-17])
    ours = val.classification_metrics(y, score)["log_loss"]
    assert ours == pytest.approx(log_loss(y, score), rel=1e-15)


def test_psi_between_two_constants_is_not_zero() -> None:
    """A constant 5 becoming a constant 6 is the largest shift there is, not no shift."""
    found = val.psi_between(np.full(100, 5.0), np.full(100, 6.0))
    assert found == pytest.approx(psi([100, 0], [0, 100]))
    assert found > PSI.alert
    assert val.psi_between(np.full(100, 5.0), np.full(50, 5.0)) == 0.0


def test_psi_between_uses_the_baselines_bins() -> None:
    """Each bin holds its upper decile, as the monitoring baseline's do: the same PSI as the
    library's drift on data whose deciles fall on its grid edges (whole numbers)."""
    rng = np.random.default_rng(1)
    ref, cur = rng.integers(0, 20, 5000).astype(float), rng.integers(2, 22, 3000).astype(float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11))[1:-1])
    expected = psi(np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1),
                   np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1))
    assert val.psi_between(ref, cur) == pytest.approx(expected, rel=1e-12)


def test_samples_are_ordered_train_holdout_out_of_time() -> None:
    assert val.order_samples(["oot", "test", "train"]) == ["train", "test", "oot"]
    assert val.order_samples(["zeta", "OOT", "holdout", "Train"]) == ["Train", "holdout",
                                                                      "OOT", "zeta"]
    assert [val.sample_role(s) for s in ("train", "test", "oot", "x")] == [
        "in-sample", "hold-out", "out-of-time", "other"]


def test_auc_and_ks_carry_intervals() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1500)
    score = np.round(1 / (1 + np.exp(-(y + rng.normal(size=1500)))), 2)  # ties
    metrics = val.classification_metrics(y, score, intervals=True)
    ks = ks_2samp(score[y == 1], score[y == 0]).statistic
    assert metrics["ks"] == pytest.approx(ks, rel=1e-12)
    assert metrics["ks_low"] < ks < metrics["ks_high"] < ks + 0.1
    assert metrics["auc_low"] < metrics["auc"] < metrics["auc_high"]
    # with no resampling noise (every weight 1) the bootstrap's statistic is ks_2samp's
    low, high = val.ks_interval(np.r_[y, y], np.r_[score, score], n_resamples=50)
    assert low <= ks <= high


def test_p_values_at_the_resolution_floor_are_not_printed_as_exact() -> None:
    floor = h.bootstrap_floor(500)
    assert h.p_text(floor, floor=floor) == "< 0.004"
    assert h.p_text(0.0123, floor=floor) == "0.0123"
    assert h.p_text(1.5e-48) == "< 0.0001" and h.p_text(None) == "—"
    assert h.ci_text(-0.01, 0.02, digits=4, signed=True) == "[-0.0100, +0.0200]"


# -- findings ------------------------------------------------------------------------------------
def test_in_sample_only_is_a_high_finding() -> None:
    samples = [{"sample": "train", "role": "in-sample", "n": 3000, "auc": 0.77}]
    found = fx.performance_findings(samples, {})
    assert found[0]["severity"] == "high" and "In-sample only" in found[0]["finding"]
    outside = [*samples, {"sample": "test", "role": "hold-out", "n": 900, "auc": 0.62,
                          "auc_low": 0.58, "auc_high": 0.66}]
    rated = fx.performance_findings(outside, {"roc_auc": Band(0.7, 0.65, "below")})
    assert [(f["severity"], "test" in f["finding"]) for f in rated] == [("high", True)]


def test_findings_follow_the_policys_bands_and_sort_by_severity() -> None:
    rows = [{"feature": "income", "compared": "train vs oot", "psi": 0.15},
            {"feature": "debt", "compared": "train vs oot", "psi": 0.3}]
    found = fx.ordered([*fx.stability_findings(rows, PSI), *fx.card_findings(["limitations"]),
                        *fx.benchmark_findings({"name": "v1", "sample": "oot", "diff": -0.03,
                                                "low": -0.05, "high": -0.01,
                                                "p_value": 0.001})])
    assert [f["severity"] for f in found] == ["high", "high", "medium", "medium"]
    assert "debt" in found[0]["finding"] and "v1 outperforms" in found[1]["finding"]


# -- monitoring numbers --------------------------------------------------------------------------
def test_windows_are_counted_back_from_the_end_like_check() -> None:
    spans = mr.windows(NOW - timedelta(days=5), NOW, timedelta(days=2))
    assert spans == [(NOW - timedelta(days=5), NOW - timedelta(days=4)),
                     (NOW - timedelta(days=4), NOW - timedelta(days=2)),
                     (NOW - timedelta(days=2), NOW)]
    with pytest.raises(nbr.InvalidInputError):
        mr.windows(NOW, NOW, timedelta(0))


def test_breach_thresholds_are_the_level_crossed() -> None:
    air = Band(0.9, 0.8, "below")
    assert mr.breach("fairness", "sex=F", 0.7, air, "alert")["threshold"] == 0.8
    assert mr.breach("fairness", "sex=F", 0.85, air, "warn")["threshold"] == 0.9
    assert mr.breach("drift", "x", 0.3, PSI, "alert")["threshold"] == 0.25


def test_an_air_of_exactly_four_fifths_passes_in_both_rules() -> None:
    """One rule: the fairness flag and the report's rating agree at AIR = 0.8."""
    air = DEFAULT_BANDS["air"]
    assert mr.metric_rating(0.8, air, 1000, 200) == "warn"
    assert mr.metric_rating(0.7999, air, 1000, 200) == "alert"
    assert mr.metric_rating(0.7, air, 10, 200) == "insufficient"


def test_the_period_is_rated_by_its_worst_window_and_never_better_than_an_alert() -> None:
    alert = SimpleNamespace(seq=13, payload={
        "kind": "drift", "metric": "psi", "feature": "debt_ratio", "value": 3.9,
        "window": ["2026-11-18T12:00:00Z", "2026-11-20T12:00:00Z"],
        "band": {"warn": 0.1, "alert": 0.25}})
    breaches = mr.alert_breaches([alert])
    assert breaches[0]["status"] == "alert" and breaches[0]["threshold"] == 0.25
    assert mr.period_rating(breaches, ["ok", "ok"]) == "alert"
    assert mr.period_rating([], ["ok", "warn", "insufficient"]) == "warn"
    assert mr.period_rating([], ["insufficient"]) == "insufficient"
    text = mr.headline("alert", breaches)
    assert text.startswith("Period rated RED") and "1 alert(s) recorded by check()" in text


@pytest.fixture
def categorical(registry_uri: str) -> Any:
    """A version whose reference has a categorical feature, with a day of traffic, a
    shifted last hour and one lone row a week earlier."""
    from conftest import TinyModel

    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"x": rng.normal(size=2000),
                              "region": rng.choice(["north", "south"], 2000)})
    reg = nbr.open_registry(registry_uri, user="alice", create=True)
    reg.register(TinyModel(), "m", reference_data=reference)
    mon = reg.monitor("m")
    traffic = pd.DataFrame({"x": rng.normal(size=500),
                            "region": rng.choice(["north", "south"], 500, p=[0.5, 0.5])})
    traffic.loc[400:, "region"] = "south"
    ts = [NOW - timedelta(hours=10) + timedelta(minutes=i) for i in range(500)]
    ids = mon.log_predictions(traffic, rng.random(500), ts=ts).ids.to_pylist()
    mon.log_predictions(traffic.iloc[:1], [0.5], ts=[NOW - timedelta(days=7)])
    mon.log_outcomes(ids[:300], rng.integers(0, 2, 300), ts=NOW)
    return mon


def test_a_categorical_feature_shows_its_test_and_the_rating_uses_drifted(
        categorical: Any) -> None:
    mon = categorical
    lone = mon.drift(NOW - timedelta(days=8), NOW - timedelta(days=6))
    row = {r["feature"]: r for r in lone.to_pylist()}["x"]
    assert row["n"] == 1 and PSI.status(row["psi"]) == "alert"  # PSI alone said RED
    assert mr.drift_rating(row, PSI, 200) == "insufficient"
    assert mr.drift_rating(row, PSI, 0) == "ok"  # not significant: not drifted
    shown = {r["feature"]: r for r in mr.drift_rows(
        mon.drift(NOW - timedelta(hours=10), NOW).table, PSI, 200)}
    region = shown["region"]
    assert region["test"] == "chi-square" and region["p_value"] == region["chi2_pvalue"]
    assert region["p_adjusted"] is not None and shown["x"]["test"] == "KS"
    shifted = NOW - timedelta(hours=10) + timedelta(minutes=400)  # the last 100 rows
    late = mr.drift_by_window(mon, [(shifted, NOW)], 1, PSI, 50)
    region = {r["feature"]: r for r in late}["region"]
    assert region["drifted"] and region["rating"] == PSI.status(region["psi"]) == "alert"


def test_maturity_is_judged_on_the_newest_data_read(categorical: Any) -> None:
    mon = categorical
    rule = mr.maturity(mon, 0.25)
    assert rule is not None and rule.as_of == NOW  # the outcomes' time, the newest
    assert rule.cutoff == NOW - timedelta(hours=6)
    rows = mon.rows().to_pandas()
    days = mr.daily_volumes(rows, rule)
    assert sum(d["predictions"] for d in days) == 501
    assert sum(d["matured predictions"] for d in days) == int((rows["ts"] <= rule.cutoff).sum())
    assert sum(d["matured with outcome"] for d in days) == 241  # minutes 0..240 of the 300
    assert mr.maturity(mon, 30).cutoff < rows["ts"].min()


def test_air_interval_is_katz_log_interval() -> None:
    low, high = mr.air_interval(60, 100, 80, 100)  # type: ignore[misc]
    se = np.sqrt(1 / 60 - 1 / 100 + 1 / 80 - 1 / 100)
    assert (low, high) == pytest.approx((0.75 * np.exp(-1.959964 * se),
                                         0.75 * np.exp(1.959964 * se)), rel=1e-6)
    assert mr.air_interval(0, 100, 80, 100) is None


def test_performance_per_window_uses_matured_predictions_only(categorical: Any) -> None:
    from sklearn.metrics import roc_auc_score

    mon = categorical
    rows = mon.rows().to_pandas()
    rule = mr.maturity(mon, 0.25)  # matured: up to NOW - 6h, minutes 0..240 of the traffic
    spans = mr.windows(NOW - timedelta(hours=10), NOW, timedelta(hours=3))
    found = mr.performance_by_window(mon, spans, rows, rule, version=1, metric="roc_auc",
                                     band=Band(0.7, 0.6, "below"), min_rows=10)
    assert [(r["matured"], r.get("n")) for r in found] == [
        ("yes", 60), ("yes", 180), (f"to {mr.when(rule.cutoff)}", 1), ("no", None)]
    assert [r["rating"] for r in found][2:] == ["insufficient", "insufficient"]
    second = rows[(rows["ts"] >= spans[1][0]) & (rows["ts"] < spans[1][1])]
    assert found[1]["roc_auc"] == pytest.approx(roc_auc_score(second["actual"],
                                                              second["score"]), rel=1e-12)
    assert found[1]["auc_low"] < found[1]["roc_auc"] < found[1]["auc_high"]
    assert found[3]["note"] == f"all matured by {mr.when(NOW + timedelta(hours=6))}"
