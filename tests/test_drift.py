"""drift() over real parquet files in DuckDB, checked against scipy/numpy on the same rows."""

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
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp, kstwo
from scipy.stats import wasserstein_distance as scipy_wasserstein

from nbregistry import InvalidInputError
from nbregistry.monitoring import duck
from nbregistry.monitoring.baseline import build_baseline
from nbregistry.monitoring.drift import METADATA_KEY, dataset_drift, drift
from nbregistry.monitoring.sketch import cell_index

N_REF, N_CUR = 20_000, 40_000


def _frame(n: int, seed: int, *, shift: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    region_p = [0.2, 0.3, 0.5] if shift else [0.5, 0.3, 0.2]
    return {
        "normal": rng.normal(0.4 if shift else 0.0, 1.0, n),
        "wide": rng.normal(0.0, 1.6 if shift else 1.0, n),
        "skewed": rng.lognormal(10, 1, n),
        "stable": rng.normal(5.0, 2.0, n),
        "age": rng.integers(18, 90 if not shift else 95, n).astype(np.int64),
        "region": np.array(["north", "south", "east"])[rng.choice(3, n, p=region_p)],
        "channel": np.array(["web", "app", "branch", "phone"])[rng.choice(4, n)],
        "score": rng.beta(2, 5, n),
    }


def _table(columns: dict[str, Any]) -> pa.Table:
    return pa.table({name: pa.array(values) for name, values in columns.items()})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("drift")
    ref = _frame(N_REF, 1, shift=False)
    cur = _frame(N_CUR, 2, shift=True)
    # broken values in the window: counted as missing, left out of the statistics
    cur["stable"][:6] = [np.nan, np.inf, -np.inf, np.nan, np.inf, np.nan]
    cur["normal"][:3] = [1e9, -1e9, 5e8]          # far beyond the grid: the second pass
    cur["skewed"][200:204] = [0.0, -5.0, np.nan, -np.inf]   # log grid: <= 0 is far-low
    table = _table(cur)
    nulls = np.zeros(N_CUR, bool)
    nulls[100:110] = True
    table = table.set_column(table.schema.get_field_index("skewed"), "skewed",
                             pa.array(cur["skewed"], mask=nulls))
    pq.write_table(table.slice(0, N_CUR // 2), folder / "a.parquet")
    pq.write_table(table.slice(N_CUR // 2), folder / "b.parquet")
    baseline = build_baseline(_table({k: v for k, v in ref.items() if k != "score"}),
                              scores=ref["score"])
    source = (f"read_parquet(['{folder / 'a.parquet'}', '{folder / 'b.parquet'}'], "
              f"union_by_name=true)")
    return {"ref": ref, "cur": table, "baseline": baseline, "source": source,
            "folder": folder}


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duck.connect(threads=2)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def result(data: dict[str, Any], con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    table = drift(con, data["source"], data["baseline"])
    return {row["feature"]: row for row in table.to_pylist()}


def _valid(values: Any) -> np.ndarray:
    array = np.asarray(pa.array(values).to_numpy(zero_copy_only=False), dtype=float)
    return array[np.isfinite(array)]


def _decile_counts(spec: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """The reference-decile bins of ``values``, computed straight from the raw values."""
    grid = spec["grid"]
    # a log grid puts zero and negative values in its far-low cell
    values = np.log(np.maximum(values, 1e-300)) if grid["transform"] == "log" else values
    keys = np.floor(np.clip((values - grid["origin"]) * grid["scale"],
                            -grid["far"] - 1, grid["cells"] + grid["far"]))
    bins = np.searchsorted(spec["deciles"]["keys"], keys, side="right")
    return np.bincount(bins, minlength=len(spec["deciles"]["keys"]) + 1)


NUMERIC = ["normal", "wide", "skewed", "stable", "age", "score"]


def test_one_row_per_feature_and_score(result: dict[str, dict[str, Any]]) -> None:
    assert list(result) == ["normal", "wide", "skewed", "stable", "age", "region", "channel",
                            "score"]
    assert {r["kind"] for n, r in result.items() if n in NUMERIC} == {"numeric"}
    assert result["region"]["kind"] == "categorical"


@pytest.mark.parametrize("feature", NUMERIC)
def test_ks_is_bracketed_around_scipy(feature: str, data: dict[str, Any],
                                      result: dict[str, dict[str, Any]]) -> None:
    row = result[feature]
    ref, cur = _valid(data["ref"][feature]), _valid(data["cur"][feature])
    exact = ks_2samp(ref, cur).statistic
    assert row["ks"] - 1e-12 <= exact <= row["ks"] + row["ks_error"] + 1e-12
    # the bound is at most the fullest cell of each side: tight (< 0.01 with 1,000 cells)
    # for continuous features; on integers (age) it is an atom's mass, yet ks is exact
    grid = (data["baseline"]["score"] if feature == "score"
            else data["baseline"]["features"][feature])["grid"]
    fullest = max(grid["counts"]) / len(ref) + np.unique(
        cell_index(cur, grid), return_counts=True)[1].max() / len(cur)
    assert row["ks_error"] <= fullest + 1e-12
    if feature != "age":
        assert row["ks_error"] <= 0.01
    en = round(len(ref) * len(cur) / (len(ref) + len(cur)))
    assert row["ks_pvalue"] == pytest.approx(kstwo.sf(row["ks"], en), rel=1e-9, abs=1e-300)


def test_ks_is_exact_on_integer_features(data: dict[str, Any],
                                         result: dict[str, dict[str, Any]]) -> None:
    ref, cur = data["ref"]["age"], data["cur"]["age"].to_numpy()
    scipy = ks_2samp(ref, cur, method="asymp")
    assert result["age"]["ks"] == pytest.approx(scipy.statistic, abs=1e-12)
    assert result["age"]["ks_pvalue"] == pytest.approx(scipy.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("feature", NUMERIC)
def test_wasserstein_within_its_bound(feature: str, data: dict[str, Any],
                                      result: dict[str, dict[str, Any]]) -> None:
    row = result[feature]
    ref, cur = _valid(data["ref"][feature]), _valid(data["cur"][feature])
    exact = scipy_wasserstein(ref, cur) / np.std(ref)
    assert abs(row["wasserstein"] - exact) <= row["wasserstein_error"] + 1e-12
    if feature != "normal":   # normal has values 1e9 away, bounded but not this tight
        assert abs(row["wasserstein"] - exact) <= 2e-3


@pytest.mark.parametrize("feature", NUMERIC)
def test_psi_and_js_on_reference_deciles(feature: str, data: dict[str, Any],
                                         result: dict[str, dict[str, Any]]) -> None:
    spec = data["baseline"]["score" if feature == "score" else "features"]
    spec = spec if feature == "score" else spec[feature]
    ref_counts = _decile_counts(spec, _valid(data["ref"][feature]))
    cur_counts = _decile_counts(spec, _valid(data["cur"][feature]))
    assert ref_counts.tolist() == spec["deciles"]["counts"]
    p = np.maximum(ref_counts / ref_counts.sum(), 1e-4)
    q = np.maximum(cur_counts / cur_counts.sum(), 1e-4)
    assert result[feature]["psi"] == pytest.approx(np.sum((q - p) * np.log(q / p)), abs=1e-12)
    assert result[feature]["js"] == pytest.approx(
        jensenshannon(ref_counts, cur_counts, base=2), abs=1e-12)


def test_missing_values_are_counted_not_fatal(result: dict[str, dict[str, Any]]) -> None:
    assert result["stable"]["missing_rate"] == pytest.approx(6 / N_CUR)
    assert result["skewed"]["missing_rate"] == pytest.approx(12 / N_CUR)
    assert result["normal"]["missing_rate"] == 0.0   # far values are values, not missing
    assert result["stable"]["drifted"] is False


def test_categorical_chi2_psi_js(data: dict[str, Any],
                                 result: dict[str, dict[str, Any]]) -> None:
    levels = data["baseline"]["features"]["channel"]["levels"]
    cur = data["cur"]["channel"].to_numpy(zero_copy_only=False)
    ref_counts = np.array(list(levels.values()))
    cur_counts = np.array([(cur == level).sum() for level in levels])
    table = np.vstack([ref_counts, cur_counts])
    assert result["channel"]["chi2_pvalue"] == pytest.approx(
        chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    assert result["channel"]["js"] == pytest.approx(
        jensenshannon(ref_counts, cur_counts, base=2), abs=1e-12)
    assert result["region"]["chi2_pvalue"] < 1e-12 and result["region"]["drifted"]


def test_unseen_and_rare_levels(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ref = pa.table({"c": ["a"] * 500 + ["b"] * 400 + ["r1"] * 3 + ["r2"] * 2})
    cur_values = ["a"] * 480 + ["b"] * 410 + ["r1"] * 1 + ["new"] * 4 + [None] * 5
    pq.write_table(pa.table({"c": cur_values}), tmp_path / "c.parquet")
    row = drift(con, f"read_parquet('{tmp_path / 'c.parquet'}')",
                build_baseline(ref)).to_pylist()[0]
    # bins: a, b, r1, r2, other (new); r1, r2 and other have expected counts below 5 and
    # are pooled; the pool (expected 4.97) is still below 5, so it joins the smallest bin
    pooled = np.array([[500, 400 + 3 + 2 + 0], [480, 410 + 1 + 0 + 4]])
    assert row["chi2_pvalue"] == pytest.approx(
        chi2_contingency(pooled, correction=False).pvalue, rel=1e-9)
    p = np.maximum(np.array([500, 400, 3, 2, 0]) / 905, 1e-4)
    q = np.maximum(np.array([480, 410, 1, 0, 4]) / 895, 1e-4)
    assert row["psi"] == pytest.approx(np.sum((q - p) * np.log(q / p)), abs=1e-12)
    assert row["missing_rate"] == pytest.approx(5 / 900)
    # a pool large enough stays a bin of its own
    ref = pa.table({"c": ["a"] * 500 + ["b"] * 400 + ["r1"] * 4 + ["r2"] * 3})
    pq.write_table(pa.table({"c": ["a"] * 480 + ["b"] * 410 + ["r1"] * 2 + ["new"] * 4}),
                   tmp_path / "d.parquet")
    row = drift(con, f"read_parquet('{tmp_path / 'd.parquet'}')",
                build_baseline(ref)).to_pylist()[0]
    pooled = np.array([[500, 400, 4 + 3 + 0], [480, 410, 2 + 0 + 4]])
    assert row["chi2_pvalue"] == pytest.approx(
        chi2_contingency(pooled, correction=False).pvalue, rel=1e-9)


def test_benjamini_hochberg_and_dataset_drift(result: dict[str, dict[str, Any]],
                                              data: dict[str, Any],
                                              con: duckdb.DuckDBPyConnection) -> None:
    rows = list(result.values())
    expected = false_discovery_control([r["p_value"] for r in rows], method="bh")
    assert [r["p_adjusted"] for r in rows] == pytest.approx(expected, rel=1e-9)
    table = drift(con, data["source"], data["baseline"])
    summary = json.loads(table.schema.metadata[METADATA_KEY])
    flagged = {r["feature"] for r in rows if r["drifted"] and r["feature"] != "score"}
    assert summary["drifted_features"] == [f for f in result if f in flagged]
    assert summary["share"] == pytest.approx(len(flagged) / 7)
    assert dataset_drift(table, drift_share=0.1)["dataset_drift"] is True
    assert {"normal", "wide", "region"} <= flagged
    assert not {"stable", "channel"} & flagged


def test_reference_against_itself_is_stable(con: duckdb.DuckDBPyConnection,
                                            data: dict[str, Any]) -> None:
    ref = _table(data["ref"])
    con.register("reference_rows", ref)
    try:
        table = drift(con, "reference_rows", data["baseline"])
    finally:
        con.unregister("reference_rows")
    for row in table.to_pylist():
        assert row["psi"] == pytest.approx(0, abs=1e-12), row
        assert row["js"] == pytest.approx(0, abs=1e-7)
        assert row["drifted"] is False and row["status"] == "ok"
        if row["kind"] == "numeric":
            assert row["ks"] == 0.0
            assert row["wasserstein"] == pytest.approx(0, abs=1e-12)
        else:
            assert row["chi2_pvalue"] == pytest.approx(1.0)


def test_effect_floor_keeps_a_huge_window_from_alarming(con: duckdb.DuckDBPyConnection,
                                                        tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    baseline = build_baseline(pa.table({"x": rng.normal(0, 1, 50_000)}))
    pq.write_table(pa.table({"x": rng.normal(0.05, 1, 400_000)}), tmp_path / "big.parquet")
    row = drift(con, f"read_parquet('{tmp_path / 'big.parquet'}')", baseline).to_pylist()[0]
    assert row["p_adjusted"] < 1e-6          # significant ...
    assert row["psi"] < 0.1                  # ... but trivial
    assert row["drifted"] is False and row["status"] == "ok"


@pytest.mark.parametrize("shift, status", [(0.0, "ok"), (0.4, "warn"), (1.5, "alert")])
def test_status_bands_follow_psi(shift: float, status: str, con: duckdb.DuckDBPyConnection,
                                 tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    baseline = build_baseline(pa.table({"x": rng.normal(0, 1, 20_000)}))
    pq.write_table(pa.table({"x": rng.normal(shift, 1, 20_000)}), tmp_path / "s.parquet")
    row = drift(con, f"read_parquet('{tmp_path / 's.parquet'}')", baseline).to_pylist()[0]
    assert row["status"] == status
    expected = "ok" if row["psi"] < 0.1 else "warn" if row["psi"] < 0.25 else "alert"
    assert row["status"] == expected


def test_where_features_and_an_empty_window(con: duckdb.DuckDBPyConnection,
                                            data: dict[str, Any]) -> None:
    table = drift(con, data["source"], data["baseline"], where="age < 40",
                  features=["age", "score"])
    assert table.column("feature").to_pylist() == ["age", "score"]
    assert table.column("n").to_pylist()[0] == int((data["cur"]["age"].to_numpy() < 40).sum())
    with pytest.raises(InvalidInputError, match="no prediction rows"):
        drift(con, data["source"], data["baseline"], where="age > 1000")
    with pytest.raises(InvalidInputError, match="not in the baseline"):
        drift(con, data["source"], data["baseline"], features=["nope"])


def test_schema_problems_are_clear_errors(con: duckdb.DuckDBPyConnection, tmp_path: Path,
                                          data: dict[str, Any]) -> None:
    pq.write_table(pa.table({"normal": ["a", "b"]}), tmp_path / "typed.parquet")
    with pytest.raises(InvalidInputError, match="no column 'wide'"):
        drift(con, f"read_parquet('{tmp_path / 'typed.parquet'}')", data["baseline"])
    with pytest.raises(InvalidInputError, match="numeric in the reference"):
        drift(con, f"read_parquet('{tmp_path / 'typed.parquet'}')", data["baseline"],
              features=["normal"])
    with pytest.raises(InvalidInputError, match="cannot read"):
        drift(con, f"read_parquet('{tmp_path / 'missing.parquet'}')", data["baseline"])


def test_a_feature_with_no_valid_value_is_an_alert(con: duckdb.DuckDBPyConnection,
                                                   tmp_path: Path) -> None:
    baseline = build_baseline(pa.table({"x": np.arange(100.0), "c": ["a", "b"] * 50}))
    pq.write_table(pa.table({"x": [np.nan, None, np.inf], "c": pa.array([None] * 3,
                                                                        pa.string())}),
                   tmp_path / "broken.parquet")
    rows = drift(con, f"read_parquet('{tmp_path / 'broken.parquet'}')", baseline).to_pylist()
    for row in rows:
        assert row["missing_rate"] == 1.0 and row["psi"] is None
        assert row["status"] == "alert" and row["drifted"] is True


def test_benchmark_data_flags_exactly_the_injected_shifts(con: duckdb.DuckDBPyConnection,
                                                          tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "drift_bench.py"
    spec = importlib.util.spec_from_file_location("drift_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    reference = bench.make_rows(20_000, 1, shifted=False)
    pq.write_table(bench.make_rows(50_000, 2, shifted=True), tmp_path / "w.parquet")
    baseline = build_baseline(reference.select(bench.NUMERIC + bench.CATEGORICAL),
                              scores=reference["score"])
    table = drift(con, f"read_parquet('{tmp_path / 'w.parquet'}')", baseline)
    assert set(dataset_drift(table)["drifted_features"]) == bench.SHIFTED


def test_a_window_of_only_unseen_levels_is_drifted(con: duckdb.DuckDBPyConnection,
                                                    tmp_path: Path) -> None:
    """Pooling rare levels leaves one bin, so chi-square cannot be computed: the share of
    unseen levels is tested instead (a complete shift must not read "not drifted")."""
    levels = [f"L{i}" for i in range(20)]
    baseline = build_baseline(pa.table({"c": levels * 5}))
    pq.write_table(pa.table({"c": [f"new{i % 7}" for i in range(50_000)]}),
                   tmp_path / "w.parquet")
    row = drift(con, f"read_parquet('{tmp_path / 'w.parquet'}')", baseline).to_pylist()[0]
    assert row["chi2_pvalue"] is None and row["psi"] > 10
    assert row["drifted"] is True and row["p_value"] < 1e-6


def test_counts_build_each_group_once(data: dict[str, Any], con: duckdb.DuckDBPyConnection,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a scan's rows (one per feature and cell) sets up each group's per-feature
    counts once, not once per row: that was a second on a one-day window at 1M rows."""
    from nbregistry.monitoring import counts

    made: list[int] = []

    class Counted(counts.FeatureCounts):
        def __init__(self) -> None:
            super().__init__()
            made.append(1)

    monkeypatch.setattr(counts, "FeatureCounts", Counted)
    specs = dict(data["baseline"]["features"])
    types = duck.columns(con, data["source"])
    found = counts.feature_counts(con, data["source"], None, specs, types)
    assert sum(len(c.histogram) for c in found[()].features.values()) > 1_000  # many rows
    assert len(made) == len(specs)   # one group: one FeatureCounts per feature
