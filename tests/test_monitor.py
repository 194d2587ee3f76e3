"""Monitoring end to end: a real model, real Delta tables, real DuckDB, events in the chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import nbregistry as nbr
from nbregistry.demo import credit_data

FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
CARD = {"intended_use": "retail credit", "limitations": "synthetic"}
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def world(registry_uri: str) -> dict[str, Any]:
    data = credit_data(6000, seed=3)
    train, live = data.iloc[:3000], data.iloc[3000:].reset_index(drop=True)
    reg = nbr.open_registry(registry_uri, user="alice")
    model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["default"])
    reg.register(model, "credit", reference_data=train[FEATURES],
                 reference_target=train["default"], card=CARD, metrics={"auc": 0.7})
    return {"reg": reg, "model": model, "live": live, "train": train}


def log(mon: Any, model: Any, frame: pd.DataFrame, *, start: datetime,
        version: int | None = None) -> list[str]:
    ts = [start + timedelta(minutes=i) for i in range(len(frame))]
    receipt = mon.log_predictions(frame, model.predict_proba(frame[FEATURES]), ts=ts,
                                  attributes=["sex"], version=version)
    return list(receipt.ids.to_pylist())


def test_capture_drift_performance_and_fairness(world: dict[str, Any]) -> None:
    reg, model, live = world["reg"], world["model"], world["live"]
    mon = reg.monitor("credit")
    ids = log(mon, model, live, start=NOW - timedelta(days=2))
    receipt = mon.log_outcomes(ids, live["default"], ts=NOW)
    assert receipt.written == len(ids) and receipt.duplicates == 0
    again = mon.log_outcomes(ids[:10], live["default"][:10], ts=NOW)
    assert again.written == 0 and again.already_recorded == 10  # never double-counted

    drift = mon.drift()
    assert set(drift.column("feature").to_pylist()) == {*FEATURES, "score"}
    assert not any(drift.column("drifted").to_pylist())  # same population: stable

    perf = mon.performance(window=None)
    expected = roc_auc_score(live["default"], model.predict_proba(live[FEATURES])[:, 1])
    assert perf.column("roc_auc")[0].as_py() == pytest.approx(expected, rel=1e-9)
    assert set(perf.tables) == {"monitoring/credit/predictions", "monitoring/credit/outcomes"}

    fair = mon.fairness("sex", favorable=0)
    assert set(fair.column("group").to_pylist()) == {"F", "M"}

    shifted = live.assign(debt_ratio=live["debt_ratio"] + 0.3)
    log(mon, model, shifted, start=NOW + timedelta(days=1))
    later = mon.drift(start=NOW + timedelta(days=1))
    flagged = {r["feature"] for r in later.to_pylist() if r["drifted"]}
    assert "debt_ratio" in flagged and "income" not in flagged


def test_bad_input_changes_nothing(world: dict[str, Any]) -> None:
    reg, live = world["reg"], world["live"]
    mon = reg.monitor("credit")
    with pytest.raises(nbr.InvalidInputError, match="no predictions yet"):
        mon.log_outcomes(["x"], [1])
    with pytest.raises(nbr.InvalidInputError, match="no predictions yet"):
        mon.drift()
    with pytest.raises(nbr.InvalidInputError, match="debt_ratio"):
        mon.log_predictions(live.drop(columns=["debt_ratio"]), np.zeros(len(live)))
    with pytest.raises(nbr.InvalidInputError, match="income"):
        mon.log_predictions(live.assign(income="high"), np.zeros(len(live)))
    assert not mon.tables.predictions.exists()
    with pytest.raises(nbr.NotFoundError):
        reg.monitor("nope")


def test_replay_scores_the_challenger_on_logged_traffic(world: dict[str, Any]) -> None:
    reg, model, live, train = world["reg"], world["model"], world["live"], world["train"]
    mon = reg.monitor("credit")
    ids = log(mon, model, live, start=NOW - timedelta(days=2), version=1)
    mon.log_outcomes(ids, live["default"], ts=NOW)
    weak = LogisticRegression().fit(train[["income"]].assign(**{
        f: 0.0 for f in FEATURES[1:]})[FEATURES], train["default"])
    reg.register(weak, "credit", reference_data=train[FEATURES],
                 reference_target=train["default"])
    result = mon.replay(2, served=1)
    assert result.n == len(live) and result.task == "classification"
    assert result.diff < 0 and result.p_values["roc_auc"] < 0.05  # the weak one is worse
    low, high = result.intervals["roc_auc"]  # DeLong's interval of the difference
    assert low < result.diff < high < 0
    assert "Replay" in result._repr_html_()


def test_check_alerts_seals_and_requests_retraining(world: dict[str, Any]) -> None:
    reg, model, live = world["reg"], world["model"], world["live"]
    reg.set_policy({**reg.policy.source, "monitoring": {
        "window": "7d", "min_rows": 100, "on_alert": "retrain"}})
    mon = reg.monitor("credit")
    shifted = live.assign(debt_ratio=live["debt_ratio"] + 0.3)
    log(mon, model, shifted, start=NOW - timedelta(days=3))
    result = mon.check(now=NOW)
    assert not result.ok and result.seal is not None
    assert any(e.payload["feature"] == "debt_ratio" for e in result.alerts)
    assert [e.action for e in result.actions] == ["retrain_requested"]
    assert reg.get("credit", 1).status["retrain_requested"].startswith(
        f"{len(result.alerts)} monitoring alert")
    assert mon.tables.metrics.read().num_rows == result.metrics.num_rows
    report = reg.verify()
    assert report.ok and any(c.name == "seals" for c in report.checks)


def test_a_sealed_prediction_log_rewritten_later_fails_verify(world: dict[str, Any]) -> None:
    reg, model, live = world["reg"], world["model"], world["live"]
    mon = reg.monitor("credit")
    log(mon, model, live.iloc[:500], start=NOW)
    mon.seal()
    data = next(Path(reg.uri, "monitoring", "credit", "predictions").rglob("*.parquet"))
    data.write_bytes(data.read_bytes()[:-100] + b"x" * 50)
    report = reg.verify()
    assert not report.ok and {p.kind for p in report.problems} == {"seal"}


def test_check_rolls_production_back_when_the_policy_says_so(world: dict[str, Any]) -> None:
    reg, model, live, train = world["reg"], world["model"], world["live"], world["train"]
    source = reg.policy.source
    reg.set_policy({**source, "stages": {**source["stages"], "production": {"approvals": 0}},
                    "monitoring": {"min_rows": 100, "on_alert": "rollback"}})
    reg.request_promotion("credit", 1, to="staging")
    reg.request_promotion("credit", 1, to="production")
    reg.register(model, "credit", reference_data=train[FEATURES],
                 reference_target=train["default"], card=CARD)
    reg.request_promotion("credit", 2, to="staging")
    reg.request_promotion("credit", 2, to="production")
    mon = reg.monitor("credit")
    log(mon, model, live.assign(debt_ratio=live["debt_ratio"] + 0.3),
        start=NOW - timedelta(days=3), version=2)
    result = mon.check(now=NOW)
    [rollback] = result.actions
    assert rollback.action == "rollback" and rollback.payload["automatic"]
    assert rollback.payload["alert_seq"] == result.alerts[0].seq
    assert reg.get("credit", stage="production").version == 1
    assert reg.verify().ok


def test_monitoring_gates_decide_promotions(world: dict[str, Any]) -> None:
    reg, model, live, train = world["reg"], world["model"], world["live"], world["train"]
    source = reg.policy.source
    reg.set_policy({**source, "monitoring": {"fairness_group": "sex", "fairness_favorable": 0,
                                             "min_rows": 100},
                    "stages": {**source["stages"], "production": {
                        "approvals": 0, "monitoring": ["no_drift_alert", "replay", "fairness"]}}})
    reg.request_promotion("credit", 1, to="staging")
    with pytest.raises(nbr.PolicyViolationError, match="no logged predictions of v1"):
        reg.request_promotion("credit", 1, to="production")
    mon = reg.monitor("credit")
    ids = log(mon, model, live, start=NOW - timedelta(days=2), version=1)  # shadow traffic
    mon.log_outcomes(ids, live["default"], ts=NOW)
    promoted = reg.request_promotion("credit", 1, to="production")
    gates = {g.gate: g for g in promoted.gates}
    assert gates["fairness"].passed and set(gates["fairness"].evidence["air"]) == {"F", "M"}
    assert gates["replay"].detail == "no other version in production to compare against"
    weak = LogisticRegression().fit(train[["income"]].assign(**{
        f: 0.0 for f in FEATURES[1:]})[FEATURES], train["default"])
    reg.register(weak, "credit", reference_data=train[FEATURES],
                 reference_target=train["default"], card=CARD)
    log(mon, weak, live, start=NOW - timedelta(days=2), version=2)
    reg.request_promotion("credit", 2, to="staging")
    checklist = {g.gate: g for g in reg.check_gates("credit", 2, "production")}
    assert not checklist["replay"].passed and checklist["replay"].evidence["served"] == 1
    with pytest.raises(nbr.PolicyViolationError, match="gate 'replay' failed"):
        reg.request_promotion("credit", 2, to="production")


def test_importance_is_frozen_with_the_baseline_and_ranks_drift(world: dict[str, Any]) -> None:
    from nbregistry.notebook.comparison import Comparison

    reg, model, live = world["reg"], world["model"], world["live"]
    mon = reg.monitor("credit")
    importance = mon.importance(1)
    assert set(importance) == set(FEATURES) and sum(importance.values()) == pytest.approx(1)
    assert reg.monitor("credit").baseline(1)["importance"]["method"] == "coef"
    log(mon, model, live.assign(debt_ratio=live["debt_ratio"] + 0.3), start=NOW)
    drift = mon.drift()
    assert drift.column("feature")[0].as_py() == "debt_ratio"  # drifted features first
    assert "importance" in drift.column_names
    html = Comparison([reg.get("credit", 1), reg.get("credit", 1)],
                      importance=[importance, importance]).html(chart=False)
    assert "Feature importance" in html and "debt_ratio" in html


def test_falling_performance_with_stable_inputs_is_named_concept_drift(
        world: dict[str, Any]) -> None:
    reg, model, live = world["reg"], world["model"], world["live"]
    reg.set_policy({**reg.policy.source, "monitoring": {
        "window": "7d", "min_rows": 100, "maturity_days": 0, "thresholds": {
            "roc_auc": {"warn": 0.7, "alert": 0.65, "direction": "below"}}}})
    mon = reg.monitor("credit")
    ids = log(mon, model, live, start=NOW - timedelta(days=3))
    flipped = 1 - live["default"]  # same inputs, the outcome's relation to them reversed
    mon.log_outcomes(ids, flipped, ts=NOW - timedelta(hours=1))
    result = mon.check(now=NOW)
    kinds = {e.payload["kind"] for e in result.alerts}
    assert kinds == {"concept_drift"}


def test_predict_scores_logs_and_returns_and_the_logger_buffers(world: dict[str, Any]
                                                                ) -> None:
    reg, model, live = world["reg"], world["model"], world["live"]
    mon = reg.monitor("credit")
    scored = mon.predict(live.iloc[:50], attributes=["sex"])
    assert np.allclose(scored, model.predict_proba(live.iloc[:50][FEATURES]))
    logged = mon.tables.predictions.read()
    assert logged.num_rows == 50 and set(logged.column("sex").to_pylist()) <= {"F", "M"}
    with mon.logger(flush_rows=10) as logger:
        for row in live.iloc[:25][FEATURES].to_dict("records"):
            logger.log(row, 0.3)
    assert mon.tables.predictions.read().num_rows == 75
