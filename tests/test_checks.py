"""Monitoring evidence that can't be weaponised: who may make a check move production, what
a broken feed does, racing and cascading rollbacks, checks dated in the future, and logged
values that would overflow an event."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import nbregistry as nbr
from nbregistry.demo import credit_data
from nbregistry.watch.checks import MAX_ALERTS, MAX_LABEL, Figure, decide

FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
CARD = {"intended_use": "retail credit", "limitations": "synthetic"}
NOW = datetime.now(UTC).replace(microsecond=0)


def _stack(uri: str, *, versions: int = 3, policy: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """v1..v3 each promoted to production in turn (no approvals needed), v3 serving
    traffic whose debt ratio shifted."""
    data = credit_data(5000, seed=4)
    train, live = data.iloc[:2000], data.iloc[2000:].reset_index(drop=True)
    reg = nbr.open_registry(uri, user="alice", create=True)
    source = reg.policy.source
    reg.set_policy({**source, "stages": {**source["stages"], "production": {"approvals": 0}},
                    "monitoring": {"min_rows": 100, "on_alert": "rollback", **(policy or {})}})
    model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["default"])
    for version in range(1, versions + 1):
        reg.register(model, "credit", reference_data=train[FEATURES],
                     reference_target=train["default"], card=CARD)
        reg.request_promotion("credit", version, to="staging")
        reg.request_promotion("credit", version, to="production")
    return {"reg": reg, "model": model, "live": live}


def _traffic(world: dict[str, Any], frame: pd.DataFrame | None = None, **extra: Any) -> None:
    reg, model, live = world["reg"], world["model"], world["live"]
    frame = live.assign(debt_ratio=live["debt_ratio"] + 0.3) if frame is None else frame
    ts = [NOW - timedelta(days=2) + timedelta(seconds=20 * i) for i in range(len(frame))]
    scores = model.predict_proba(frame[FEATURES].fillna(0.0))
    reg.monitor("credit").log_predictions(frame, scores, ts=ts, attributes=["sex"], **extra)


def _production(reg: nbr.Registry) -> int:
    return reg.refresh().get("credit", stage="production").version


def test_an_automatic_rollback_needs_a_role_the_policy_names(registry_uri: str) -> None:
    world = _stack(registry_uri)
    _traffic(world)
    world["reg"].grant_role("dave", "data_scientist")
    dave = nbr.open_registry(registry_uri, user="dave")
    result = dave.monitor("credit").check(now=NOW)
    assert result.alerts and [e.action for e in result.actions] == ["retrain_requested"]
    assert any("action_roles" in n for n in result.notes)
    assert _production(dave) == 3
    admin = world["reg"].monitor("credit").check(now=NOW)  # alice is an admin
    assert [e.action for e in admin.actions] == ["rollback"] and _production(dave) == 2


def test_one_automatic_rollback_per_episode_never_cascades(registry_uri: str) -> None:
    world = _stack(registry_uri)
    _traffic(world)
    mon = world["reg"].monitor("credit")
    assert [e.action for e in mon.check(now=NOW).actions] == ["rollback"]
    assert _production(world["reg"]) == 2
    _traffic(world, version=2)  # the restored version drifts too
    again = mon.check(now=NOW)
    assert [e.action for e in again.actions] == ["retrain_requested"]
    assert any("same episode" in n for n in again.notes) and _production(world["reg"]) == 2


def test_a_version_moved_on_purpose_is_never_restored(registry_uri: str) -> None:
    world = _stack(registry_uri)
    reg = world["reg"]
    reg.request_promotion("credit", 2, to="development", comment="retired: known defect")
    _traffic(world)
    result = reg.monitor("credit").check(now=NOW)
    assert [e.action for e in result.actions] == ["retrain_requested"]
    assert any("moved on purpose" in n for n in result.notes) and _production(reg) == 3


def test_a_rollback_from_a_version_production_no_longer_holds_is_refused(
        registry_uri: str) -> None:
    world = _stack(registry_uri)
    reg = world["reg"]
    reg.rollback("credit", stage="production", reason="by hand")
    writes = reg.monitor("credit").writes
    assert writes is not None
    with pytest.raises(nbr.ConflictError, match="no longer holds v3"):
        writes.roll_back("credit", from_version=3, reason="stale", alert_seq=1)
    assert _production(reg) == 2


def _check(uri: str, barrier: Any) -> list[str]:
    reg = nbr.open_registry(uri, user="alice", create=False)
    barrier.wait()
    return [e.action for e in reg.monitor("credit").check(now=NOW).actions]


def test_two_racing_checks_roll_production_back_once(registry_uri: str) -> None:
    world = _stack(registry_uri)
    _traffic(world)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            done = pool.starmap(_check, [(registry_uri, barrier)] * 2)
    assert [a for actions in done for a in actions].count("rollback") == 1
    reg = world["reg"].refresh()
    assert _production(reg) == 2
    assert reg.history("credit").column("action").to_pylist().count("rollback") == 1


def test_a_broken_feed_is_a_data_quality_alert_and_moves_nothing(registry_uri: str) -> None:
    world = _stack(registry_uri)
    broken = world["live"].iloc[:400].assign(income=np.nan, debt_ratio=np.nan)
    _traffic(world, broken)
    result = world["reg"].monitor("credit").check(now=NOW)
    kinds = {e.payload["kind"] for e in result.alerts}
    assert kinds == {"data_quality"}
    assert {e.payload["feature"] for e in result.alerts} == {"income", "debt_ratio"}
    assert result.actions == [] and _production(world["reg"]) == 3


def test_a_check_dated_in_the_future_is_refused(registry_uri: str) -> None:
    world = _stack(registry_uri, versions=1)
    head = world["reg"].head
    with pytest.raises(nbr.InvalidInputError, match="future"):
        world["reg"].monitor("credit").check(now=NOW + timedelta(days=60))
    assert world["reg"].refresh().head == head


def test_a_backfilled_check_does_not_clear_the_drift_gate(registry_uri: str) -> None:
    world = _stack(registry_uri, policy={"on_alert": "none"})
    reg = world["reg"]
    _traffic(world)
    mon = reg.monitor("credit")
    assert mon.check(now=NOW).alerts
    mon.check(now=NOW - timedelta(days=30))  # an old, quiet window, recorded later
    assert reg.last_check("credit").payload["check"]["window"][1].startswith(
        f"{NOW:%Y-%m-%d}")


def test_a_poisoned_attribute_value_cannot_stop_the_action(registry_uri: str) -> None:
    world = _stack(registry_uri, policy={"fairness_group": "sex", "fairness_favorable": 0,
                                         "on_alert": "retrain"})
    frame = world["live"].iloc[:600].copy()
    frame["sex"] = ["X" * 300_000 if i < 200 else s for i, s in enumerate(frame["sex"])]
    frame["debt_ratio"] = frame["debt_ratio"] + 0.3
    _traffic(world, frame)
    result = world["reg"].monitor("credit").check(now=NOW)
    assert [e.action for e in result.actions] == ["retrain_requested"]
    assert all(len(e.payload["feature"] or "") <= MAX_LABEL for e in result.alerts)
    assert world["reg"].verify().ok


def test_many_invented_groups_write_a_bounded_number_of_alerts() -> None:
    from nbregistry.domain.monitoring_policy import MonitoringPolicy

    figures = [Figure("fairness", f"group-{i}", "air", 0.1, "alert") for i in range(60)]
    decision = decide(figures, MonitoringPolicy(), window=(NOW - timedelta(days=7), NOW))
    assert len(decision.alerts) == MAX_ALERTS
    assert decision.alerts[-1]["more"] == 60 - MAX_ALERTS


def test_the_check_judges_fairness_from_the_predictions_alone(registry_uri: str) -> None:
    world = _stack(registry_uri, versions=1, policy={"fairness_group": "sex",
                                                     "fairness_favorable": 0,
                                                     "on_alert": "none"})
    _traffic(world)
    mon = world["reg"].monitor("credit")
    ids = mon.sql("SELECT prediction_id FROM {predictions} LIMIT 700")["prediction_id"]
    mon.log_outcomes(ids.to_pylist(), [1.0] * 700)   # outcomes must not change selection
    full = mon.fairness("sex", 0, start=NOW - timedelta(days=7), end=NOW, version=1)
    alone = mon.fairness("sex", 0, start=NOW - timedelta(days=7), end=NOW, version=1,
                         error_rates=False)
    assert "fpr" in full.column_names and "fpr" not in alone.column_names
    for name in ("group", "n", "favorable", "air", "p_value"):
        assert alone[name].to_pylist() == full[name].to_pylist()
    figures = {r["feature"]: r["value"] for r in mon.check(now=NOW).metrics.to_pylist()
               if r["kind"] == "fairness"}
    assert figures == dict(zip(full["group"].to_pylist(), full["air"].to_pylist(),
                               strict=True))
