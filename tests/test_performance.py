"""performance() and calibration() in DuckDB equal scikit-learn on the same rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from nbregistry import InvalidInputError
from nbregistry.monitoring import duck
from nbregistry.monitoring.performance import (
    ECE_KEY,
    calibration,
    expected_calibration_error,
    performance,
)

N = 6000
START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)   # a Monday


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    actual = rng.integers(0, 2, N)
    # rounded scores: many ties, which the AUC must count half
    score = np.round(np.clip(actual * 0.25 + rng.random(N) * 0.75, 0, 1), 2)
    score[:3] = [0.0, 1.0, 1.0]      # log loss must clip these
    target = rng.normal(100, 15, N)
    table = pa.table({
        "ts": pa.array([START + dt.timedelta(minutes=int(m)) for m in
                        rng.integers(0, 3 * 24 * 60, N)], pa.timestamp("us", tz="UTC")),
        "segment": rng.choice(["retail", "sme"], N),
        "score": score, "actual": actual,
        "prediction": target + rng.normal(0, 5, N), "target": target,
    })
    # rows whose outcome has not matured: left out
    table = pa.concat_tables([table, pa.table({
        "ts": pa.array([START] * 5, pa.timestamp("us", tz="UTC")),
        "segment": ["retail"] * 5, "score": [0.5] * 5,
        "actual": pa.array([None] * 5, pa.int64()),
        "prediction": [1.0] * 5, "target": [1.0] * 5})])
    path = tmp_path_factory.mktemp("perf") / "joined.parquet"
    pq.write_table(table, path)
    return {"table": table.slice(0, N), "source": f"read_parquet('{path}')", "path": path}


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duck.connect(threads=2)
    yield connection
    connection.close()


def _sklearn_classification(actual: np.ndarray, score: np.ndarray,
                            threshold: float = 0.5) -> dict[str, float]:
    predicted = (score >= threshold).astype(int)
    return {"accuracy": accuracy_score(actual, predicted),
            "precision": precision_score(actual, predicted),
            "recall": recall_score(actual, predicted), "f1": f1_score(actual, predicted),
            "roc_auc": roc_auc_score(actual, score), "log_loss": log_loss(actual, score),
            "brier": brier_score_loss(actual, score)}


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_classification_equals_sklearn(rows: dict[str, Any], con: duckdb.DuckDBPyConnection,
                                       threshold: float) -> None:
    result = performance(con, rows["source"], task="classification",
                         threshold=threshold).to_pylist()
    assert len(result) == 1
    actual, score = rows["table"]["actual"].to_numpy(), rows["table"]["score"].to_numpy()
    assert result[0]["n"] == N and result[0]["positives"] == actual.sum()
    assert result[0]["window_start"] is None
    for metric, expected in _sklearn_classification(actual, score, threshold).items():
        assert result[0][metric] == pytest.approx(expected, rel=1e-9), metric


def test_daily_windows_by_segment(rows: dict[str, Any], con: duckdb.DuckDBPyConnection) -> None:
    result = performance(con, rows["source"], task="classification", window="1d",
                         by=["segment"])
    assert result.column_names[:4] == ["window_start", "window_end", "segment", "n"]
    records = result.to_pylist()
    assert len(records) == 6   # 3 days x 2 segments
    frame = rows["table"].to_pandas()
    for record in records:
        day = record["window_start"]
        assert record["window_end"] - day == dt.timedelta(days=1)
        part = frame[(frame.ts >= day) & (frame.ts < day + dt.timedelta(days=1))
                     & (frame.segment == record["segment"])]
        expected = _sklearn_classification(part.actual.to_numpy(), part.score.to_numpy())
        assert record["n"] == len(part)
        for metric, value in expected.items():
            assert record[metric] == pytest.approx(value, rel=1e-9), metric


def test_regression_equals_sklearn(rows: dict[str, Any], con: duckdb.DuckDBPyConnection,
                                   tmp_path: Path) -> None:
    path = tmp_path / "reg.parquet"
    table = rows["table"]
    pq.write_table(pa.table({"ts": table["ts"], "score": table["prediction"],
                             "actual": table["target"]}), path)
    result = performance(con, f"read_parquet('{path}')", task="regression",
                         window="12h").to_pylist()
    assert len(result) == 6
    frame = table.to_pandas()
    for record in result:
        start = record["window_start"]
        part = frame[(frame.ts >= start) & (frame.ts < start + dt.timedelta(hours=12))]
        y, p = part.target.to_numpy(), part.prediction.to_numpy()
        assert record["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)), rel=1e-9)
        assert record["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-9)
        assert record["r2"] == pytest.approx(r2_score(y, p), rel=1e-9)


def test_r2_keeps_its_precision_on_large_offsets(con: duckdb.DuckDBPyConnection,
                                                  tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    y = 1e7 + rng.normal(0, 1, 50_000)
    p = y + rng.normal(0, 0.5, 50_000)
    pq.write_table(pa.table({"score": p, "actual": y}), tmp_path / "big.parquet")
    record = performance(con, f"read_parquet('{tmp_path / 'big.parquet'}')",
                         task="regression").to_pylist()[0]
    assert record["r2"] == pytest.approx(r2_score(y, p), rel=1e-9)


def test_weekly_windows_start_on_monday(rows: dict[str, Any],
                                        con: duckdb.DuckDBPyConnection) -> None:
    record = performance(con, rows["source"], task="classification",
                         window="7d").to_pylist()
    assert [r["window_start"] for r in record] == [START]


def test_undefined_ratios_are_null(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    pq.write_table(pa.table({"score": [0.1, 0.2, 0.3], "actual": [0, 0, 0]}),
                   tmp_path / "neg.parquet")
    record = performance(con, f"read_parquet('{tmp_path / 'neg.parquet'}')",
                         task="classification").to_pylist()[0]
    assert record["precision"] is None and record["recall"] is None
    assert record["roc_auc"] is None and record["accuracy"] == 1.0


def test_calibration_equals_sklearn(rows: dict[str, Any],
                                    con: duckdb.DuckDBPyConnection) -> None:
    table = calibration(con, rows["source"], n_bins=10)
    actual, score = rows["table"]["actual"].to_numpy(), rows["table"]["score"].to_numpy()
    prob_true, prob_pred = calibration_curve(actual, score, n_bins=10)
    assert table.column("fraction_positive").to_pylist() == pytest.approx(prob_true, rel=1e-9)
    assert table.column("mean_score").to_pylist() == pytest.approx(prob_pred, rel=1e-9)
    counts = table.column("n").to_numpy()
    expected_ece = np.sum(counts * np.abs(prob_true - prob_pred)) / counts.sum()
    assert expected_calibration_error(table) == pytest.approx(expected_ece, rel=1e-9)
    assert float(table.schema.metadata[ECE_KEY]) == pytest.approx(expected_ece, rel=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"task": "classification", "where": "false"}, "no rows with both"),
    ({"task": "classification", "window": "1 fortnight"}, "must be a positive length"),
    ({"task": "classification", "by": ["nope"]}, "no column 'nope'"),
    ({"task": "ranking"}, "task must be"),
    ({"task": "classification", "threshold": 2.0}, "threshold"),
])
def test_bad_input_is_a_clear_error(rows: dict[str, Any], con: duckdb.DuckDBPyConnection,
                                    kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        performance(con, rows["source"], **kwargs)


def test_non_binary_outcomes_are_refused(con: duckdb.DuckDBPyConnection,
                                         tmp_path: Path) -> None:
    pq.write_table(pa.table({"score": [0.1, 0.9], "actual": [0, 2]}), tmp_path / "x.parquet")
    with pytest.raises(InvalidInputError, match="0/1"):
        performance(con, f"read_parquet('{tmp_path / 'x.parquet'}')", task="classification")
