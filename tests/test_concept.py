"""Change detectors on synthetic error streams with a known change point, and diagnose()."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from nbregistry import InvalidInputError
from nbregistry.monitoring.concept import adwin, ddm, diagnose, page_hinkley

CHANGE = 3000


def _errors(seed: int, before: float = 0.1, after: float = 0.3, n: int = 6000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = np.where(np.arange(n) < CHANGE, before, after)
    return (rng.random(n) < rate).astype(float)


@pytest.mark.parametrize("detector", [page_hinkley, adwin])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detects_the_change_soon_after_it_happens(detector: object, seed: int) -> None:
    result = detector(_errors(seed))  # type: ignore[operator]
    assert result.detected
    assert CHANGE <= result.drifts[0] <= CHANGE + 500, result.drifts


@pytest.mark.parametrize("detector", [page_hinkley, adwin])
def test_no_false_alarm_on_a_stable_stream(detector: object) -> None:
    for seed in range(5):
        stream = (np.random.default_rng(100 + seed).random(6000) < 0.1).astype(float)
        assert detector(stream).drifts == []  # type: ignore[operator]


def test_ddm_detects_the_change_in_most_streams() -> None:
    # DDM restarts after a (false) alarm, so look for a detection soon after the change
    hits = sum(any(CHANGE <= i <= CHANGE + 500 for i in ddm(_errors(seed)).drifts)
               for seed in range(20))
    assert hits >= 17
    # its known weakness: p_min + s_min is a minimum over a noisy start, so stable
    # streams do alarm at times (40% of 6,000-outcome streams here), less with more warm-up
    stable = [(np.random.default_rng(100 + s).random(6000) < 0.1).astype(float)
              for s in range(20)]
    alarms = sum(bool(ddm(stream).drifts) for stream in stable)
    assert alarms <= 12
    assert sum(bool(ddm(stream, min_instances=500).drifts) for stream in stable) <= alarms


def test_ddm_warns_before_it_drifts() -> None:
    result = ddm(_errors(0))
    assert result.warnings and result.warnings[0] <= result.drifts[0]


def test_page_hinkley_and_adwin_on_a_continuous_loss() -> None:
    rng = np.random.default_rng(4)
    loss = np.abs(rng.normal(0, 1.0, 6000))
    loss[CHANGE:] *= 1.5
    for result in (page_hinkley(loss), adwin(loss)):
        assert CHANGE <= result.drifts[0] <= CHANGE + 600, (result.method, result.drifts)


def test_adwin_detects_a_fall_too() -> None:
    result = adwin(_errors(5, before=0.3, after=0.1))
    assert CHANGE <= result.drifts[0] <= CHANGE + 600


def test_bad_streams_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="0/1"):
        ddm([0.5, 1.0])
    with pytest.raises(InvalidInputError, match="NaN"):
        adwin([0.0, float("nan")])


def _drift_table(drifted: dict[str, bool]) -> pa.Table:
    return pa.table({"feature": list(drifted), "drifted": list(drifted.values())})


@pytest.mark.parametrize("auc, inputs, kind", [
    ([0.80, 0.79], {"x": False, "score": False}, "stable"),
    ([0.80, 0.70], {"x": False, "score": True}, "concept_drift"),
    ([0.80, 0.70], {"x": True, "score": True}, "data_drift_with_degradation"),
    ([0.80, 0.80], {"x": True, "score": False}, "data_drift"),
])
def test_diagnose_names_concept_drift(auc: list[float], inputs: dict[str, bool],
                                      kind: str) -> None:
    result = diagnose(_drift_table(inputs), pa.table({"roc_auc": auc}))
    assert result.kind == kind
    assert result.metric == "roc_auc" and result.latest_value == auc[-1]
    if kind == "concept_drift":
        assert "concept drift" in result.message


def test_diagnose_knows_lower_is_better_metrics() -> None:
    stable = _drift_table({"x": False})
    assert diagnose(stable, pa.table({"rmse": [1.0, 1.2]})).kind == "concept_drift"
    assert diagnose(stable, pa.table({"rmse": [1.0, 0.8]})).kind == "stable"
    assert diagnose(stable, pa.table({"rmse": [1.0]}), reference_value=0.5).degraded
    with pytest.raises(InvalidInputError, match="no 'f1'"):
        diagnose(stable, pa.table({"rmse": [1.0]}), metric="f1")
