"""Performance sketches: per (prediction file, outcome file) counts that give the raw-row
performance figures (to 1e-12; ROC AUC within its stated bound), that step aside whenever
they could be wrong (an outcome file not counted yet, a duplicate outcome, a file the window
cuts, a prediction file rewritten), and that check() uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import nbregistry as nbr
from monitored import FEATURES, monitored
from nbregistry.watch.perf_sketches import Perf

EXACT = ("n", "positives", "accuracy", "precision", "recall", "f1", "log_loss", "brier")


@pytest.fixture
def reg(tmp_path: Path) -> nbr.Registry:
    return monitored(str(tmp_path / "registry"), days=4, rows_per_day=300,
                     policy={"maturity_days": 0})


def _windows(mon: Any) -> list[tuple[datetime, datetime]]:
    """Windows of whole prediction files: all of them, and runs of consecutive files."""
    entries = sorted(mon.tables.predictions.snapshot().entries, key=lambda e: e.first)
    end = entries[-1].last + timedelta(seconds=1)
    starts = [e.first for e in entries]
    return [(starts[0], end), (starts[1], starts[-1]), (starts[-2], end)]


def _agrees(mon: Any, start: datetime, end: datetime) -> None:
    raw = mon.performance(None, start=start, end=end, version=1).to_pylist()[0]
    quick = mon.sketched_performance(start, end, version=1)
    assert quick is not None
    found, bound = quick
    for name in EXACT:
        assert found[name] == pytest.approx(raw[name], rel=1e-12, abs=1e-15), name
    assert 0 < bound < 0.01
    assert abs(found["roc_auc"] - raw["roc_auc"]) <= bound


@pytest.mark.parametrize("batch", [4_000_000, 1], ids=["one-query", "a-file-a-query"])
def test_sketched_performance_equals_the_raw_figures(reg: nbr.Registry, batch: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbregistry.watch.perf_sketches.BATCH_ROWS", batch)
    mon = reg.monitor("credit")
    assert mon.sketched_performance(*_windows(mon)[0], version=1) is None  # nothing counted
    mon.sketch()
    for start, end in _windows(mon):
        _agrees(mon, start, end)
    start, end = _windows(mon)[0]
    cut = start + (end - start) / 3   # a window through a file: the raw rows answer
    assert mon.sketched_performance(cut, end, version=1) is None


def test_late_outcomes_are_counted_before_they_are_used(reg: nbr.Registry) -> None:
    mon = reg.monitor("credit")
    mon.sketch()
    model = reg.load("credit", 1, trusted=True)
    start, end = _windows(mon)[0]
    rows = nbr.demo.credit_data(200, seed=99)
    ts = [end - timedelta(minutes=30) + timedelta(seconds=i) for i in range(200)]
    receipt = mon.log_predictions(rows, model.predict_proba(rows[FEATURES]), ts=ts,
                                  attributes=["sex"])
    mon.sketch()
    _agrees(mon, start, end + timedelta(minutes=1))   # the new file has no outcome yet
    mon.log_outcomes(receipt.ids, rows["default"])    # late outcomes change the counts
    assert mon.sketched_performance(start, end + timedelta(minutes=1), version=1) is None
    mon.sketch()
    _agrees(mon, start, end + timedelta(minutes=1))


def test_an_outcome_logged_before_its_prediction_is_joined_when_it_lands(
        reg: nbr.Registry) -> None:
    mon = reg.monitor("credit")
    start, end = _windows(mon)[0]
    early = mon.log_outcomes(["early-1", "early-2"], [1.0, 0.0])
    assert early.unknown == 2
    mon.sketch()
    rows = nbr.demo.credit_data(2, seed=7)
    model = reg.load("credit", 1, trusted=True)
    mon.log_predictions(rows, model.predict_proba(rows[FEATURES]), ids=["early-1", "early-2"],
                        ts=[end - timedelta(minutes=5)] * 2, attributes=["sex"])
    mon.sketch()
    _agrees(mon, start, end + timedelta(minutes=1))


@pytest.mark.parametrize("batch", [4_000_000, 1], ids=["one-query", "a-file-a-query"])
def test_a_duplicate_outcome_sends_performance_to_the_raw_rows(
        reg: nbr.Registry, batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbregistry.watch.perf_sketches.BATCH_ROWS", batch)
    mon = reg.monitor("credit")
    first = mon.sql("SELECT prediction_id, ts, actual FROM {outcomes} LIMIT 1")
    # written past the logger's duplicate screen, as a second racing logger or a direct
    # write could: the raw path keeps the first outcome, a sum of pairs would count both
    mon.tables.outcomes.append(pa.table({
        "prediction_id": first["prediction_id"],
        "ts": pa.array([datetime.now(UTC)], pa.timestamp("us", "UTC")),
        "actual": pa.array([1.0 - first["actual"][0].as_py()])}))
    mon.sketch()
    assert mon.sketched_performance(*_windows(mon)[0], version=1) is None


def test_a_rewritten_prediction_file_gets_its_outcomes_counted_again(
        reg: nbr.Registry) -> None:
    from deltalake import DeltaTable

    mon = reg.monitor("credit")
    start, end = _windows(mon)[0]
    model = reg.load("credit", 1, trusted=True)
    for seed in (1, 2):   # two files of one day, with outcomes
        rows = nbr.demo.credit_data(50, seed=seed)
        receipt = mon.log_predictions(rows, model.predict_proba(rows[FEATURES]),
                                      ts=[end + timedelta(seconds=seed)] * 50,
                                      attributes=["sex"])
        mon.log_outcomes(receipt.ids, rows["default"])
    mon.sketch()
    _agrees(mon, start, end + timedelta(minutes=1))
    DeltaTable(mon.tables.predictions.uri).optimize.compact()   # the two become one
    mon = nbr.open_registry(reg.uri, create=False).monitor("credit")
    assert mon.sketched_performance(start, end + timedelta(minutes=1), version=1) is None
    mon.sketch()
    _agrees(mon, start, end + timedelta(minutes=1))


def test_check_judges_performance_from_the_sketches(tmp_path: Path) -> None:
    reg = monitored(str(tmp_path / "r"), days=4, rows_per_day=300,
                    policy={"maturity_days": 1, "window": "2d"})
    mon = reg.monitor("credit")
    # before the drifted last day: a quiet check (one with an alert is judged from the rows)
    now = max(e.first for e in mon.tables.predictions.snapshot().entries) - timedelta(minutes=1)
    result = mon.check(now=now)
    assert result.alerts == []
    assert any("roc_auc from the performance sketches" in n for n in result.notes)
    figures = {r["metric"]: r["value"] for r in result.metrics.to_pylist()
               if r["kind"] == "performance"}
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    raw = mon.performance(None, start=day - timedelta(days=3), end=day - timedelta(days=1),
                          version=1).to_pylist()[0]
    assert figures["accuracy"] == pytest.approx(raw["accuracy"], rel=1e-12)
    assert figures["log_loss"] == pytest.approx(raw["log_loss"], rel=1e-12)
    assert abs(figures["roc_auc"] - raw["roc_auc"]) < 0.01


def test_the_auc_bound_holds_and_sums_add() -> None:
    a = Perf(n=4, pos=2, tp=1, fp=1, cells={0: [2, 1], 5: [2, 1]})
    b = Perf(n=2, pos=1, tp=1, fp=0, cells={5: [1, 0], 9: [1, 1]})
    a.add(b)
    assert a.n == 6 and a.cells == {0: [2, 1], 5: [3, 1], 9: [1, 1]}
    found, bound = a.metrics("classification") or ({}, 0.0)
    # positives: one in cell 0, one in 5, one in 9; negatives: one in 0, two in 5
    # U = 1*(0 + .5*1) + 1*(1 + .5*2) + 1*(3 + 0) = 5.5 of 9 pairs; shared pairs 1 + 2
    assert found["roc_auc"] == pytest.approx(5.5 / 9)
    assert bound == pytest.approx(0.5 * 3 / 9)
    assert Perf.loads(a.dumps()) == a


def test_verify_names_an_outcome_file_whose_sketch_was_changed(reg: nbr.Registry) -> None:
    import json

    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    mon = reg.monitor("credit")
    mon.sketch()
    assert mon.verify_sketches() == []
    # the sketches table is append-only: an attacker with the bucket rewrites a data file
    for uri in DeltaTable(mon.sketches.table.uri).file_uris():
        rows = pq.read_table(uri).to_pylist()
        forged = next((r for r in rows if r["baseline"].startswith("perfp|")), None)
        if forged is not None:
            counts = json.loads(forged["counts"])
            counts["tp"] += 5   # a few more true positives than the rows hold
            forged["counts"] = json.dumps(counts)
            pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(uri)), uri)
            break
    again = nbr.open_registry(reg.uri, create=False).monitor("credit")
    assert again.verify_sketches() == [forged["baseline"].split("|", 4)[4]]
