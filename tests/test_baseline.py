"""The frozen baseline: deterministic, canonical-JSON safe, and true to the reference data."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

from nbregistry import InvalidInputError
from nbregistry.domain.canonical import canonical_json
from nbregistry.monitoring.baseline import build_baseline, check_baseline


def _reference(n: int = 5000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 1, n)
    income[:7] = [np.nan, np.inf, -np.inf, np.nan, np.nan, np.inf, np.nan]
    age = pa.array(rng.integers(18, 90, n), pa.int64())
    mask = np.zeros(n, bool)
    mask[10:15] = True
    return pa.table({
        "income": income,
        "age": pa.array(age.to_numpy(), mask=mask),
        "region": pa.array(rng.choice(["north", "south", "east"], n)),
        "owner": pa.array(rng.random(n) < 0.3),
        "code": pa.array(rng.integers(0, 4, n), pa.int32()),
    })


def test_baseline_is_deterministic_and_canonical_json_safe() -> None:
    table = _reference()
    first = build_baseline(table, scores=np.linspace(0, 1, table.num_rows))
    second = build_baseline(table, scores=np.linspace(0, 1, table.num_rows))
    assert first == second
    text = canonical_json(first)   # raises on NaN/inf
    assert json.loads(text) == first
    assert first["format"] == 1 and first["n"] == table.num_rows


def test_numeric_spec_matches_numpy() -> None:
    table = _reference()
    spec = build_baseline(table)["features"]["income"]
    values = table["income"].to_numpy()
    finite = values[np.isfinite(values)]
    assert spec["kind"] == "numeric"
    assert spec["missing"] == 7 and spec["n"] == table.num_rows
    assert spec["mean"] == pytest.approx(np.mean(finite), rel=1e-12)
    assert spec["std"] == pytest.approx(np.std(finite), rel=1e-12)
    assert (spec["min"], spec["max"]) == (finite.min(), finite.max())
    grid = spec["grid"]
    assert grid["transform"] == "log"   # lognormal: log cells are far finer
    assert sum(grid["counts"]) == len(finite)
    keys = np.floor(np.clip((np.log(finite) - grid["origin"]) * grid["scale"],
                            -grid["far"] - 1, grid["cells"] + grid["far"])).astype(int)
    found, counts = np.unique(keys, return_counts=True)
    assert grid["keys"] == found.tolist() and grid["counts"] == counts.tolist()
    deciles = spec["deciles"]
    assert len(deciles["counts"]) == 10 and sum(deciles["counts"]) == len(finite)
    # each decile bin holds 10% of the reference, give or take one cell's mass
    largest_cell = max(grid["counts"]) / len(finite)
    for count in deciles["counts"]:
        assert abs(count / len(finite) - 0.1) <= largest_cell + 1e-12
    bins = np.searchsorted(deciles["keys"], keys, side="right")
    assert np.bincount(bins, minlength=10).tolist() == deciles["counts"]


def test_null_counts_as_missing_and_integers_keep_their_atoms() -> None:
    spec = build_baseline(_reference())["features"]["age"]
    assert spec["missing"] == 5
    assert spec["grid"]["transform"] == "identity"
    # ages are integers: no cell holds two distinct ages, so cell edges separate them all
    assert spec["grid"]["scale"] >= 1


def test_categorical_levels_booleans_and_forced_codes() -> None:
    table = _reference()
    features = build_baseline(table, categorical=["code"])["features"]
    region = features["region"]
    values, counts = np.unique(table["region"].to_numpy(zero_copy_only=False),
                               return_counts=True)
    assert region == {"kind": "categorical", "n": table.num_rows, "missing": 0,
                      "levels": dict(zip(values.tolist(), counts.tolist(), strict=True))}
    assert set(features["owner"]["levels"]) == {"true", "false"}
    assert set(features["code"]["levels"]) == {"0", "1", "2", "3"}
    assert features["code"]["kind"] == "categorical"


def test_constant_and_all_missing_features() -> None:
    table = pa.table({"flat": [3.0] * 50, "empty": pa.array([None] * 50, pa.float64())})
    features = build_baseline(table)["features"]
    assert features["flat"]["std"] == 0.0
    assert features["flat"]["grid"]["keys"] == [0]
    assert features["empty"]["missing"] == 50 and features["empty"]["grid"] is None
    canonical_json(features)


def test_score_and_classification_performance_baseline() -> None:
    rng = np.random.default_rng(1)
    table = _reference()
    target = rng.integers(0, 2, table.num_rows)
    scores = np.clip(target * 0.3 + rng.random(table.num_rows) * 0.7, 0, 1)
    baseline = build_baseline(table, target=target, scores=scores)
    assert baseline["task"] == "classification"
    assert baseline["score"]["n"] == table.num_rows
    perf = baseline["performance"]
    assert perf["roc_auc"] == pytest.approx(roc_auc_score(target, scores), rel=1e-9)
    assert perf["accuracy"] == pytest.approx(accuracy_score(target, scores >= 0.5), rel=1e-9)
    canonical_json(baseline)


def test_regression_task_is_inferred() -> None:
    rng = np.random.default_rng(2)
    table = _reference(500)
    target = rng.normal(size=500)
    scores = target + rng.normal(scale=0.1, size=500)
    baseline = build_baseline(table, target=target, scores=scores)
    assert baseline["task"] == "regression"
    assert baseline["performance"]["mae"] == pytest.approx(
        mean_absolute_error(target, scores), rel=1e-9)


@pytest.mark.parametrize("call, message", [
    (lambda t: build_baseline(t.slice(0, 0)), "empty"),
    (lambda t: build_baseline(t, target=[0, 1]), "target has 2 values"),
    (lambda t: build_baseline(t, sketch_size=3), "sketch_size"),
    (lambda t: build_baseline(t, categorical=["nope"]), "unknown columns"),
    (lambda t: build_baseline(t, categorical="region"), "list of column names"),
    (lambda t: build_baseline(t.append_column("score", pa.array([1.0] * t.num_rows)),
                              scores=[0.5] * t.num_rows), "reserved"),
    (lambda t: build_baseline(t.append_column(
        "when", pa.array([0] * t.num_rows, pa.timestamp("s")))), "cannot profile"),
    (lambda t: build_baseline(t, task="ranking"), "task"),
])
def test_bad_input_is_a_clear_error(call: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call(_reference(100))  # type: ignore[operator]


def test_check_baseline_refuses_other_formats() -> None:
    with pytest.raises(InvalidInputError, match="format"):
        check_baseline({"format": 99})
    with pytest.raises(InvalidInputError, match="format"):
        check_baseline(None)
    assert math.isfinite(check_baseline(build_baseline(_reference(100)))["n"])
