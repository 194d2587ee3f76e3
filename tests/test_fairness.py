"""fairness() in DuckDB equals fairlearn's MetricFrame on the same rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)
from scipy.stats import chi2_contingency, fisher_exact

from nbregistry import InvalidInputError
from nbregistry.monitoring import duck
from nbregistry.monitoring.fairness import METADATA_KEY, fairness

N = 20_000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    group = rng.choice(["f", "m", "x"], N, p=[0.45, 0.5, 0.05])
    rate = np.where(group == "f", 0.32, np.where(group == "m", 0.45, 0.40))
    label = (rng.random(N) < rate).astype(np.int64)
    actual = np.where(rng.random(N) < 0.8, label, 1 - label)
    table = pa.table({"sex": group, "label": label, "actual": actual,
                      "approved": label.astype(bool),
                      "decision": np.where(label == 1, "approve", "decline")})
    path = tmp_path_factory.mktemp("fair") / "p.parquet"
    pq.write_table(table, path)
    return {"table": table, "source": f"read_parquet('{path}')"}


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duck.connect(threads=2)
    yield connection
    connection.close()


def test_equals_fairlearn(data: dict[str, Any], con: duckdb.DuckDBPyConnection) -> None:
    result = fairness(con, data["source"], group="sex")
    table = data["table"]
    y_pred, y_true = table["label"].to_numpy(), table["actual"].to_numpy()
    sex = table["sex"].to_numpy(zero_copy_only=False)
    frame = MetricFrame(metrics={"sr": selection_rate, "fpr": false_positive_rate,
                                 "fnr": false_negative_rate},
                        y_true=y_true, y_pred=y_pred, sensitive_features=sex)
    rows = {row["group"]: row for row in result.to_pylist()}
    assert list(rows) == ["f", "m", "x"]
    for group, expected in frame.by_group.iterrows():
        assert rows[group]["selection_rate"] == pytest.approx(expected["sr"], rel=1e-12)
        assert rows[group]["fpr"] == pytest.approx(expected["fpr"], rel=1e-12)
        assert rows[group]["fnr"] == pytest.approx(expected["fnr"], rel=1e-12)
        assert rows[group]["n"] == int((sex == group).sum())
    ratio = demographic_parity_ratio(y_true, y_pred, sensitive_features=sex)
    assert min(row["air"] for row in rows.values()) == pytest.approx(ratio, rel=1e-12)
    summary = json.loads(result.schema.metadata[METADATA_KEY])
    assert summary["reference"] == "m"   # the highest selection rate by default
    assert summary["demographic_parity_ratio"] == pytest.approx(ratio, rel=1e-12)
    assert rows["m"]["air"] == 1.0 and rows["m"]["p_value"] is None
    assert rows["f"]["four_fifths"] is True and rows["x"]["four_fifths"] is False


def test_z_test_equals_pearson_chi_square(data: dict[str, Any],
                                          con: duckdb.DuckDBPyConnection) -> None:
    rows = {r["group"]: r for r in fairness(con, data["source"], group="sex").to_pylist()}
    for group in ("f", "x"):
        row, ref = rows[group], rows["m"]
        table = [[row["favorable"], row["n"] - row["favorable"]],
                 [ref["favorable"], ref["n"] - ref["favorable"]]]
        assert row["test"] == "z"
        assert row["p_value"] == pytest.approx(
            chi2_contingency(table, correction=False).pvalue, rel=1e-9)


def test_fisher_for_small_groups(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    table = pa.table({"g": ["a"] * 40 + ["b"] * 6, "label": [1] * 20 + [0] * 20 + [1, 0, 0, 0,
                                                                                 0, 0]})
    pq.write_table(table, tmp_path / "small.parquet")
    rows = fairness(con, f"read_parquet('{tmp_path / 'small.parquet'}')", group="g").to_pylist()
    assert rows[1]["test"] == "fisher"
    assert rows[1]["p_value"] == pytest.approx(fisher_exact([[1, 5], [20, 20]]).pvalue,
                                               rel=1e-12)


def test_explicit_reference_and_other_outcome_types(data: dict[str, Any],
                                                    con: duckdb.DuckDBPyConnection) -> None:
    by_label = fairness(con, data["source"], group="sex", reference="f").to_pylist()
    by_bool = fairness(con, data["source"], group="sex", outcome="approved",
                       reference="f").to_pylist()
    by_text = fairness(con, data["source"], group="sex", outcome="decision",
                       favorable="approve", reference="f").to_pylist()
    for rows in (by_bool, by_text):
        assert [r["selection_rate"] for r in rows] == [r["selection_rate"] for r in by_label]
    assert by_label[0]["air"] == 1.0 and by_label[1]["air"] > 1


def test_null_outcomes_are_left_out_and_null_groups_kept(con: duckdb.DuckDBPyConnection,
                                                         tmp_path: Path) -> None:
    table = pa.table({"g": ["a", "a", None, "b"], "label": pa.array([1, None, 1, 0])})
    pq.write_table(table, tmp_path / "n.parquet")
    rows = fairness(con, f"read_parquet('{tmp_path / 'n.parquet'}')", group="g").to_pylist()
    assert [(r["group"], r["n"], r["favorable"]) for r in rows] == [
        ("a", 1, 1), ("b", 1, 0), (None, 1, 1)]
    assert "fpr" not in rows[0]


def test_a_nan_outcome_is_no_outcome_in_the_error_rates(con: duckdb.DuckDBPyConnection,
                                                       tmp_path: Path) -> None:
    """NaN is not an unfavourable outcome: error rates leave it out, as they leave out null
    (fairlearn on the rows with a real outcome)."""
    nan = float("nan")
    table = pa.table({"g": ["a"] * 4 + ["b"] * 4, "label": [1, 1, 0, 0, 1, 0, 0, 1],
                      "actual": [1.0, nan, 0.0, nan, 0.0, 1.0, nan, None]})
    pq.write_table(table, tmp_path / "nan.parquet")
    rows = fairness(con, f"read_parquet('{tmp_path / 'nan.parquet'}')", group="g",
                    favorable=1).to_pylist()
    known = table.filter(pa.compute.is_finite(table["actual"]))
    frame = MetricFrame(metrics={"fpr": false_positive_rate, "fnr": false_negative_rate},
                        y_true=known["actual"].to_numpy(), y_pred=known["label"].to_numpy(),
                        sensitive_features=known["g"].to_numpy(zero_copy_only=False))
    for row in rows:
        assert row["fpr"] == pytest.approx(frame.by_group["fpr"][row["group"]])
        assert row["fnr"] == pytest.approx(frame.by_group["fnr"][row["group"]])


@pytest.mark.parametrize("kwargs, message", [
    ({"group": "nope"}, "no column 'nope'"),
    ({"group": "sex", "reference": "z"}, "reference group 'z'"),
    ({"group": "sex", "where": "false"}, "no rows"),
    ({"group": "sex", "outcome": "approved", "favorable": "yes"}, "cannot be compared"),
])
def test_bad_input_is_a_clear_error(data: dict[str, Any], con: duckdb.DuckDBPyConnection,
                                    kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fairness(con, data["source"], **kwargs)
