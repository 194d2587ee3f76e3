"""Capture: what users log is checked, converted and written (or refused whole), outcomes are
screened, and the buffered logger flushes, blocks and survives crashes as documented."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from nbregistry.domain.errors import InvalidInputError, NbRegistryError, StorageError
from nbregistry.monitoring.buffer import PredictionBuffer
from nbregistry.monitoring.capture import (
    log_outcomes,
    log_predictions,
    maturity_filter,
    prepare_outcomes,
    prepare_predictions,
)
from nbregistry.store.location import Location
from nbregistry.store.monitoring import MonitoringTables, MonitorTable, monitoring_tables
from nbregistry.store.snapshot import FileCache

SCHEMA = [{"name": "age", "dtype": "int64"}, {"name": "income", "dtype": "double"},
          {"name": "city", "dtype": "string"}]


def frame(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame({"age": [30 + i for i in range(n)],
                         "income": [1000.0 * (i + 1) for i in range(n)],
                         "city": [["paris", "lyon"][i % 2] for i in range(n)]})


@pytest.fixture
def tables(tmp_path: Path) -> MonitoringTables:
    location = Location.parse(tmp_path / "registry", None)
    return monitoring_tables(location, "credit_risk", cache=FileCache(tmp_path / "cache"))


# -- predictions --------------------------------------------------------------------------

def test_pandas_polars_and_arrow_give_the_same_rows() -> None:
    ts = datetime(2026, 3, 1, 12, tzinfo=UTC)
    ids = ["a", "b", "c", "d"]
    tables = [prepare_predictions(data, [0.1, 0.2, 0.3, 0.4], schema=SCHEMA, version=3,
                                  ids=ids, ts=ts).table
              for data in (frame(), pl.from_pandas(frame()), pa.table(frame()),
                           frame().to_dict("list"))]
    assert all(t.equals(tables[0]) for t in tables)
    first = tables[0]
    assert first.column_names == ["prediction_id", "ts", "version", "age", "income", "city",
                                  "score", "label"]
    assert first.schema.field("age").type == pa.int64()
    assert first.schema.field("city").type == pa.string()
    assert first["version"].to_pylist() == [3] * 4
    assert first["label"].null_count == 4  # float scores without labels


def test_missing_or_mistyped_columns_are_named_and_nothing_is_written(
        tables: MonitoringTables) -> None:
    with pytest.raises(InvalidInputError, match=r"\['income'\]") as missing:
        log_predictions(tables.predictions, frame().drop(columns="income"), [0.5] * 4,
                        schema=SCHEMA, version=1)
    assert missing.value.field == "income"
    with pytest.raises(InvalidInputError, match="'income'") as mistyped:
        log_predictions(tables.predictions, frame().assign(income=["1", "2", "3", "4"]),
                        [0.5] * 4, schema=SCHEMA, version=1)
    assert mistyped.value.field == "income"
    with pytest.raises(InvalidInputError, match="non-integer"):
        prepare_predictions(frame().assign(age=[30.5, 31, 32, 33]), [0.5] * 4, schema=SCHEMA,
                            version=1)
    with pytest.raises(InvalidInputError, match="'city'"):
        prepare_predictions(frame().assign(city=[1, 2, 3, 4]), [0.5] * 4, schema=SCHEMA,
                            version=1)
    assert not tables.predictions.exists()


def test_safe_widening_is_accepted() -> None:
    data = pa.table({"age": pa.array([1, 2], pa.int32()), "income": pa.array([3, 4], pa.int8()),
                     "city": pa.array(["a", "b"]).dictionary_encode()})
    table = prepare_predictions(data, [0.1, 0.2], schema=SCHEMA, version=1).table
    assert table["income"].to_pylist() == [3.0, 4.0]
    assert table["city"].to_pylist() == ["a", "b"]
    # pandas turns an int column with a gap into floats: whole numbers are accepted.
    gappy = prepare_predictions(frame(2).assign(age=[30.0, np.nan]), [0.1, 0.2],
                                schema=SCHEMA, version=1)
    assert gappy.table["age"].to_pylist() == [30, None]
    assert gappy.missing["age"] == 1


def test_extra_columns_are_ignored_unless_named_as_attributes() -> None:
    data = frame().assign(segment=["x", "y", "x", "y"], ssn=["1", "2", "3", "4"])
    prepared = prepare_predictions(data, [0.5] * 4, schema=SCHEMA, version=1,
                                   attributes=["segment"])
    assert "segment" in prepared.table.column_names
    assert "ssn" not in prepared.table.column_names
    assert prepared.ignored_columns == ("ssn",)
    separate = prepare_predictions(frame(), [0.5] * 4, schema=SCHEMA, version=1,
                                   attributes=pl.DataFrame({"sex": ["F", "M", "F", "M"]}))
    assert separate.table["sex"].to_pylist() == ["F", "M", "F", "M"]
    with pytest.raises(InvalidInputError, match="already logged as a feature"):
        prepare_predictions(frame(), [0.5] * 4, schema=SCHEMA, version=1,
                            attributes={"age": [1, 2, 3, 4]})
    with pytest.raises(InvalidInputError, match="4 predictions"):
        prepare_predictions(frame(), [0.5] * 4, schema=SCHEMA, version=1,
                            attributes={"sex": ["F"]})
    with pytest.raises(InvalidInputError, match="reserves"):
        prepare_predictions(frame().assign(score=1.0), [0.5] * 4, version=1,
                            schema=[*SCHEMA, {"name": "score", "dtype": "double"}])


def test_schema_none_takes_every_column_as_a_feature() -> None:
    prepared = prepare_predictions(frame().assign(seg=["a"] * 4), [0.5] * 4, schema=None,
                                   version=1, attributes=["seg"])
    assert prepared.table.column_names[3:7] == ["age", "income", "city", "score"]
    assert prepared.table["seg"].to_pylist() == ["a"] * 4


def test_prediction_shapes() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    two_d = prepare_predictions(frame(), proba, schema=SCHEMA, version=1).table
    assert two_d["score"].to_pylist() == [0.1, 0.8, 0.4, 0.7]
    assert two_d["label"].to_pylist() == [0, 1, 0, 1]
    nested = prepare_predictions(frame(), proba.tolist(), schema=SCHEMA, version=1).table
    assert nested.equals(two_d.set_column(0, "prediction_id", nested["prediction_id"])
                         .set_column(1, "ts", nested["ts"]))
    three = np.array([[0.2, 0.3, 0.5]] * 4)
    with pytest.raises(InvalidInputError, match="positive="):
        prepare_predictions(frame(), three, schema=SCHEMA, version=1)
    chosen = prepare_predictions(frame(), three, schema=SCHEMA, version=1, positive=0).table
    assert chosen["score"].to_pylist() == [0.2] * 4 and chosen["label"].to_pylist() == [2] * 4
    classes = prepare_predictions(frame(), pd.Series([1, 0, 1, 1]), schema=SCHEMA,
                                  version=1).table
    assert classes["label"].to_pylist() == [1, 0, 1, 1]
    assert classes["score"].to_pylist() == [1.0, 0.0, 1.0, 1.0]
    regression = prepare_predictions(frame(), np.array([3.5, 1.0, 2.0, 7.25], np.float32),
                                     schema=SCHEMA, version=1,
                                     labels=[True, False, True, True]).table
    assert regression["score"].to_pylist() == [3.5, 1.0, 2.0, 7.25]
    assert regression["label"].to_pylist() == [1, 0, 1, 1]
    with pytest.raises(InvalidInputError, match="encode string classes"):
        prepare_predictions(frame(), ["yes", "no", "yes", "no"], schema=SCHEMA, version=1)
    with pytest.raises(InvalidInputError, match="3 values for 4"):
        prepare_predictions(frame(), [0.1, 0.2, 0.3], schema=SCHEMA, version=1)
    with pytest.raises(InvalidInputError, match="labels has 2"):
        prepare_predictions(frame(), [0.1] * 4, schema=SCHEMA, version=1, labels=[1, 0])


def test_ids_default_to_unique_time_ordered_uuid7_and_duplicates_are_refused() -> None:
    early = datetime(2026, 1, 1, tzinfo=UTC)
    ts = [early + timedelta(seconds=i) for i in range(4)]
    ids = prepare_predictions(frame(), [0.5] * 4, schema=SCHEMA, version=1, ts=ts).ids
    values = ids.to_pylist()
    assert len(set(values)) == 4 and all(len(v) == 32 for v in values)
    assert all(uuid.UUID(v).version == 7 for v in values)
    assert values == sorted(values)  # time-ordered (prefix = ms of ts)
    assert int(values[0][:12], 16) == int(early.timestamp() * 1000)
    bulk = prepare_predictions(frame(10_000).assign(city="x"), [0.5] * 10_000, schema=SCHEMA,
                               version=1).ids
    assert len(set(bulk.to_pylist())) == 10_000
    numbered = prepare_predictions(frame(), [0.5] * 4, schema=SCHEMA, version=1,
                                   ids=[10, 11, 12, 13]).ids
    assert numbered.to_pylist() == ["10", "11", "12", "13"]
    with pytest.raises(InvalidInputError, match=r"duplicated value.*'a'"):
        prepare_predictions(frame(), [0.5] * 4, schema=SCHEMA, version=1,
                            ids=["a", "b", "a", "c"])
    with pytest.raises(InvalidInputError, match="missing"):
        prepare_predictions(frame(), [0.5] * 4, schema=SCHEMA, version=1,
                            ids=["a", None, "b", "c"])


def test_timestamps_are_utc() -> None:
    paris = timezone(timedelta(hours=1))
    aware = prepare_predictions(frame(1), [0.5], schema=SCHEMA, version=1,
                                ts=datetime(2026, 3, 1, 13, tzinfo=paris)).table
    naive = prepare_predictions(frame(1), [0.5], schema=SCHEMA, version=1,
                                ts=datetime(2026, 3, 1, 12)).table
    assert aware["ts"].to_pylist() == naive["ts"].to_pylist() == [
        datetime(2026, 3, 1, 12, tzinfo=UTC)]
    rows = prepare_predictions(frame(2), [0.5] * 2, schema=SCHEMA, version=1,
                               ts=pd.to_datetime(["2026-03-02 00:00", "2026-03-01 00:00"]))
    assert rows.table["ts"].type == pa.timestamp("us", tz="UTC")  # order is not enforced
    before = datetime.now(UTC)
    now = prepare_predictions(frame(1), [0.5], schema=SCHEMA, version=1).table
    assert before <= now["ts"][0].as_py() <= datetime.now(UTC)
    with pytest.raises(InvalidInputError, match="datetimes"):
        prepare_predictions(frame(1), [0.5], schema=SCHEMA, version=1, ts=["2026-03-01"])
    with pytest.raises(InvalidInputError, match="1 values for 2"):
        prepare_predictions(frame(2), [0.5] * 2, schema=SCHEMA, version=1,
                            ts=[datetime(2026, 3, 1)])


def test_nan_and_inf_are_stored_as_null_and_counted(tables: MonitoringTables) -> None:
    data = pa.table({"age": [1, 2, 3], "income": [1.0, math.nan, math.inf],
                     "city": ["a", None, "c"]})
    receipt = log_predictions(tables.predictions, data, [0.2, math.nan, 0.9], schema=SCHEMA,
                              version=1)
    assert receipt.rows == 3 and receipt.table_version == 0
    assert receipt.nonfinite == {"income": 2, "score": 1}
    assert receipt.missing == {"age": 0, "income": 2, "city": 1, "score": 1}
    stored = tables.predictions.read()
    assert stored["income"].to_pylist() == [1.0, None, None]
    assert stored["prediction_id"].to_pylist() == receipt.ids.to_pylist()


def test_empty_batch_writes_nothing(tables: MonitoringTables) -> None:
    receipt = log_predictions(tables.predictions, frame(0), [], schema=SCHEMA, version=1)
    assert receipt.rows == 0 and receipt.table_version == -1
    assert not tables.predictions.exists()


def test_a_later_version_adds_a_feature(tables: MonitoringTables) -> None:
    log_predictions(tables.predictions, frame(), [0.5] * 4, schema=SCHEMA, version=1)
    wider = [*SCHEMA, {"name": "tenure", "dtype": "int32"}]
    log_predictions(tables.predictions, frame().assign(tenure=[1, 2, 3, 4]), [0.5] * 4,
                    schema=wider, version=2)
    rows = duckdb.connect().execute(
        f"SELECT version, count(tenure) FROM {tables.predictions.snapshot().relation()} "
        "GROUP BY version ORDER BY version").fetchall()
    assert rows == [(1, 0), (2, 4)]


# -- outcomes -----------------------------------------------------------------------------

def test_outcomes_screen_unknown_and_duplicate_ids(tables: MonitoringTables) -> None:
    with pytest.raises(InvalidInputError, match="no predictions were logged"):
        log_outcomes(tables, ["x"], [1])
    receipt = log_predictions(tables.predictions, frame(), [0.5] * 4, schema=SCHEMA,
                              version=1, ids=["a", "b", "c", "d"])
    first = log_outcomes(tables, ["a", "b", "b", "zz"], [1, 0, 1, 0])
    assert (first.received, first.written, first.duplicates, first.already_recorded,
            first.unknown) == (4, 3, 1, 0, 1)
    assert first.unknown_ids == ("zz",) and "b" in first.duplicate_ids
    second = log_outcomes(tables, ["a", "c", "zz"], [0.0, 1.0, 1.0])
    assert (second.written, second.already_recorded, second.unknown) == (1, 2, 0)
    stored = {r["prediction_id"]: r["actual"] for r in tables.outcomes.read().to_pylist()}
    assert stored == {"a": 1.0, "b": 0.0, "zz": 0.0, "c": 1.0}  # first outcome wins
    assert receipt.ids.to_pylist() == ["a", "b", "c", "d"]


def test_bad_outcomes_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"missing or not finite.*'b'"):
        prepare_outcomes(["a", "b"], [1.0, math.nan])
    with pytest.raises(InvalidInputError, match="outcomes are numbers"):
        prepare_outcomes(["a"], ["approved"])
    with pytest.raises(InvalidInputError, match="ids has 1 values for 2"):
        prepare_outcomes(["a"], [1, 0])
    table = prepare_outcomes(np.array([1, 2]), np.array([True, False]))
    assert table["prediction_id"].to_pylist() == ["1", "2"]
    assert table["actual"].to_pylist() == [1.0, 0.0]


def test_maturity_filter_selects_predictions_old_enough(tables: MonitoringTables) -> None:
    now = datetime(2026, 3, 31, tzinfo=UTC)
    ts = [now - timedelta(days=d) for d in (1, 10, 29, 31, 60)]
    log_predictions(tables.predictions, frame(5).assign(city="x"), [0.5] * 5, schema=SCHEMA,
                    version=1, ts=ts)
    relation = tables.predictions.snapshot().relation()
    condition = maturity_filter(30, now=now, column="p.ts")
    assert condition.startswith("p.ts <= TIMESTAMPTZ")
    row = duckdb.connect().execute(
        f"SELECT count(*) FROM {relation} AS p WHERE {condition}").fetchone()
    assert row == (2,)
    with pytest.raises(InvalidInputError):
        maturity_filter(-1)


# -- buffered logger ----------------------------------------------------------------------

ROW = {"age": 40, "income": 2500.5, "city": "paris"}


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_buffer_flushes_on_size_on_time_and_on_close(tables: MonitoringTables) -> None:
    table = tables.predictions
    buffer = PredictionBuffer(table.append, schema=SCHEMA, version=2, flush_rows=50,
                              flush_interval=0.3)
    try:
        ids = [buffer.log(ROW, 0.7) for _ in range(50)]
        wait_for(lambda: buffer.stats().written == 50)        # size
        buffer.log(ROW, [0.1, 0.9], id="late")
        wait_for(lambda: buffer.stats().written == 51)        # time
    finally:
        buffer.close()
    stored = table.read()
    assert stored.num_rows == 51 and buffer.stats().batches == 2
    assert set(stored["prediction_id"].to_pylist()) == {*ids, "late"}
    assert stored.filter(pa.compute.equal(stored["prediction_id"], "late"))[
        "label"].to_pylist() == [1]
    with pytest.raises(NbRegistryError, match="closed"):
        buffer.log(ROW, 0.5)
    with PredictionBuffer(table.append, schema=SCHEMA, version=2, flush_interval=60) as ctx:
        ctx.log(ROW, 0.1)
    assert table.read().num_rows == 52


def test_buffer_refuses_bad_rows_at_log_time(tables: MonitoringTables) -> None:
    with PredictionBuffer(tables.predictions.append, schema=SCHEMA, version=1) as buffer:
        with pytest.raises(InvalidInputError, match="'income'"):
            buffer.log({"age": 1, "city": "x"}, 0.5)
        with pytest.raises(InvalidInputError, match=r"'age'.*integer"):
            buffer.log({**ROW, "age": "forty"}, 0.5)
        with pytest.raises(InvalidInputError, match=r"'income'.*number"):
            buffer.log({**ROW, "income": "1"}, 0.5)
        with pytest.raises(InvalidInputError, match="prediction"):
            buffer.log(ROW, "yes")
        buffer.log({**ROW, "age": None, "income": math.nan}, 0.5)
        assert buffer.stats().logged == 1
    assert buffer.stats().missing["income"] == 1 and buffer.stats().missing["age"] == 1


def test_buffer_is_thread_safe(tables: MonitoringTables) -> None:
    per_thread, threads = 1500, 6
    got: list[str] = []
    lock = threading.Lock()
    buffer = PredictionBuffer(tables.predictions.append, schema=SCHEMA, version=1,
                              flush_rows=700, flush_interval=0.2, capacity=2000,
                              attributes=["segment"])

    def work(k: int) -> None:
        mine = [buffer.log(ROW, 0.5, attributes={"segment": f"t{k}"})
                for _ in range(per_thread)]
        with lock:
            got.extend(mine)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    buffer.close()
    stored = tables.predictions.read()
    assert stored.num_rows == per_thread * threads == len(set(got))
    assert sorted(stored["prediction_id"].to_pylist()) == sorted(got)
    counts = pa.compute.value_counts(stored["segment"]).to_pylist()
    assert {c["values"]: c["counts"] for c in counts} == {f"t{k}": per_thread
                                                          for k in range(threads)}


def test_buffer_blocks_when_full_and_loses_nothing(tables: MonitoringTables) -> None:
    gate = threading.Event()
    calls: list[int] = []

    def slow_sink(batch: pa.Table) -> int:
        calls.append(batch.num_rows)
        gate.wait(10)
        return tables.predictions.append(batch)

    buffer = PredictionBuffer(slow_sink, schema=SCHEMA, version=1, flush_rows=5, capacity=10,
                              flush_interval=60, max_wait=30)  # waits, up to max_wait
    for _ in range(10):
        buffer.log(ROW, 0.5)
    wait_for(lambda: calls)                                  # the write hangs
    done = threading.Event()
    blocked = threading.Thread(target=lambda: (buffer.log(ROW, 0.5), done.set()))
    blocked.start()
    time.sleep(0.3)
    assert not done.is_set() and buffer.stats().pending == 10  # full: the caller waits
    gate.set()
    assert done.wait(10)
    blocked.join()
    buffer.close()
    assert tables.predictions.read().num_rows == 11


def test_buffer_retries_failed_writes_with_the_rows_kept(tables: MonitoringTables) -> None:
    failures = [2]

    def flaky(batch: pa.Table) -> int:
        if failures[0]:
            failures[0] -= 1
            raise OSError("storage unavailable")
        return tables.predictions.append(batch)

    buffer = PredictionBuffer(flaky, schema=SCHEMA, version=1, flush_rows=3,
                              retry_interval=0.1)
    for _ in range(3):
        buffer.log(ROW, 0.5)
    wait_for(lambda: buffer.stats().written == 3)
    assert buffer.stats().failures == 2 and "storage unavailable" in str(buffer.stats().last_error)
    buffer.close()

    broken = PredictionBuffer(lambda batch: (_ for _ in ()).throw(OSError("down")),
                              schema=SCHEMA, version=1, flush_interval=60)
    broken.log(ROW, 0.5)
    with pytest.raises(StorageError, match="1 buffered predictions could not be written"):
        broken.close()


def test_buffer_keeps_writing_after_another_writer_adds_a_feature(
        tables: MonitoringTables) -> None:
    """Issue 16.6: a metaData commit by another writer (version 2 adds a feature) made every
    later write of a running logger fail with "Metadata changed since last commit"."""
    table = tables.predictions
    buffer = PredictionBuffer(table.append, schema=SCHEMA, version=1, flush_interval=60)
    first = [buffer.log(ROW, 0.5) for _ in range(10)]
    buffer.flush()
    serving_v2 = MonitorTable(table.location, "credit_risk", "predictions")
    log_predictions(serving_v2, frame().assign(tenure=[1, 2, 3, 4]), [0.5] * 4,
                    schema=[*SCHEMA, {"name": "tenure", "dtype": "int64"}], version=2)
    later = [buffer.log(ROW, 0.5) for _ in range(10)]
    buffer.flush()
    buffer.close()
    stored = table.read(columns=["prediction_id", "tenure"])
    assert set(first + later) <= set(stored["prediction_id"].to_pylist())
    assert stored.num_rows == 24 and stored["tenure"].null_count == 20
    assert buffer.stats().failures == 0


SCRIPT = """
import os, sys, time
from nbregistry.store.location import Location
from nbregistry.store.monitoring import monitoring_tables
from nbregistry.monitoring.buffer import PredictionBuffer
tables = monitoring_tables(Location.parse(sys.argv[1], None), "credit_risk")
schema = [{"name": "age", "dtype": "int64"}, {"name": "income", "dtype": "double"},
          {"name": "city", "dtype": "string"}]
row = {"age": 40, "income": 2500.5, "city": "paris"}
buffer = PredictionBuffer(tables.predictions.append, schema=schema, version=1,
                          flush_rows=100_000, capacity=100_000, flush_interval=3600,
                          attributes=["batch"])
"""


def run_script(body: str, uri: str) -> subprocess.Popen[str]:
    code = SCRIPT + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE,
                            text=True, env={**os.environ})


def test_buffer_writes_at_interpreter_exit(tables: MonitoringTables) -> None:
    child = run_script("""
        for i in range(300):
            buffer.log(row, 0.5)
        print("logged", flush=True)
        """, tables.predictions.location.uri)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and "logged" in out
    assert tables.predictions.read().num_rows == 300


@pytest.mark.slow
def test_kill_9_loses_only_unflushed_rows_and_never_half_a_batch(
        tables: MonitoringTables) -> None:
    child = run_script("""
        for i in range(1000):
            buffer.log(row, 0.5, attributes={"batch": "flushed"})
        buffer.flush()
        for i in range(500):
            buffer.log(row, 0.5, attributes={"batch": "pending"})
        print("ready", flush=True)
        time.sleep(60)
        """, tables.predictions.location.uri)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    stored = tables.predictions.read(columns=["batch"])
    assert stored.num_rows == 1000 and set(stored["batch"].to_pylist()) == {"flushed"}

    # Killed while writing: every batch is all there or absent, the table stays usable.
    writer = run_script("""
        k = 0
        print("writing", flush=True)
        while True:
            for i in range(200):
                buffer.log(row, 0.5, attributes={"batch": f"b{k}"})
            buffer.flush()
            k += 1
        """, tables.predictions.location.uri)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    before, deadline = tables.predictions.version(), time.monotonic() + 120
    while tables.predictions.version() < before + 2:  # a loaded machine writes slowly
        assert time.monotonic() < deadline and writer.poll() is None
        time.sleep(0.1)
    writer.send_signal(signal.SIGKILL)
    writer.wait(30)
    relation = tables.predictions.snapshot().relation()
    sizes = duckdb.connect().execute(
        f"SELECT batch, count(*) FROM {relation} WHERE batch LIKE 'b%' GROUP BY batch"
    ).fetchall()
    assert sizes and all(n == 200 for _, n in sizes)
    log_predictions(tables.predictions, frame(), [0.5] * 4, schema=SCHEMA, version=1)
    assert tables.predictions.read().num_rows == 1000 + 200 * len(sizes) + 4


def test_capture_runs_without_pandas_numpy_polars_or_duckdb(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        BLOCKED = {"numpy", "pandas", "duckdb", "polars"}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is not installed")
        sys.meta_path.insert(0, Block())
        import pyarrow as pa
        from nbregistry.store.location import Location
        from nbregistry.store.monitoring import monitoring_tables
        from nbregistry.store.seals import check_seal, seal
        from nbregistry.monitoring.capture import log_outcomes, log_predictions
        from nbregistry.monitoring.buffer import PredictionBuffer
        tables = monitoring_tables(Location.parse(sys.argv[1], None), "m")
        schema = [{"name": "x", "dtype": "double"}]
        receipt = log_predictions(tables.predictions, pa.table({"x": [1.0, 2.0]}),
                                  [[0.9, 0.1], [0.2, 0.8]], schema=schema, version=1)
        with PredictionBuffer(tables.predictions.append, schema=schema, version=1) as buffer:
            buffer.log({"x": 3.0}, 0.5)
        assert log_outcomes(tables, receipt.ids, [0, 1]).written == 2
        assert tables.predictions.read().num_rows == 3
        assert check_seal(tables.predictions.location, seal(tables.predictions)) == []
        print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
        """)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "reg")], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == "[]"
