"""Monitoring Delta tables: appends, snapshots DuckDB reads, compaction, schema evolution,
seals and the attacks they must detect. Real Delta tables on disk, real DuckDB, real S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from nbregistry.domain.errors import InvalidInputError
from nbregistry.store import monitoring as mon
from nbregistry.store import snapshot as snap
from nbregistry.store.location import Location
from nbregistry.store.seals import check_seal, check_seals, seal
from s3server import s3_client

DAY1 = datetime(2026, 3, 1, tzinfo=UTC)


def batch(n: int, day: datetime, *, version: int = 1, start: int = 0, **extra: Any) -> pa.Table:
    """n predictions spread over the first 12 hours of ``day``."""
    ts = [day + timedelta(minutes=(12 * 60 * i) // max(n, 1)) for i in range(n)]
    columns: dict[str, Any] = {
        "prediction_id": [f"p{start + i:08d}" for i in range(n)],
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "version": pa.array([version] * n, pa.int64()),
        "age": pa.array([20 + (start + i) % 50 for i in range(n)], pa.int64()),
        "score": pa.array([((start + i) % 100) / 100 for i in range(n)], pa.float64()),
        "label": pa.array([(start + i) % 2 for i in range(n)], pa.int64()),
    }
    columns.update(extra)
    return pa.table(columns)


@pytest.fixture
def location(tmp_path: Path) -> Location:
    return Location.parse(tmp_path / "registry", None)


@pytest.fixture
def tables(location: Location, tmp_path: Path) -> mon.MonitoringTables:
    return mon.monitoring_tables(location, "credit_risk", cache=snap.FileCache(tmp_path / "cache"))


def count(relation: str, where: str = "TRUE") -> int:
    row = duckdb.connect().execute(f"SELECT count(*) FROM {relation} WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def active_files(table: mon.MonitorTable, version: int | None = None) -> set[str]:
    dt = DeltaTable(table.uri, version=version)
    return {os.path.join(table.uri, p) for p in pa.table(dt.get_add_actions())["path"].to_pylist()}


# -- tables -------------------------------------------------------------------------------

def test_tables_are_append_only_long_retention_and_partitioned_by_day(
        tables: mon.MonitoringTables) -> None:
    assert tables.predictions.append(batch(10, DAY1)) == 0
    dt = DeltaTable(tables.predictions.uri)
    config = dt.metadata().configuration
    assert config["delta.appendOnly"] == "true"
    assert config["delta.logRetentionDuration"] == "interval 36500 days"
    assert config["delta.deletedFileRetentionDuration"] == "interval 36500 days"
    assert dt.metadata().partition_columns == ["day"]
    assert tables.predictions.key == "monitoring/credit_risk/predictions"
    schema = tables.predictions.schema()
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("day").type == pa.date32()


def test_snapshot_prunes_by_day_and_reads_exactly_the_range(
        tables: mon.MonitoringTables) -> None:
    for d in range(3):
        tables.predictions.append(batch(100, DAY1 + timedelta(days=d), start=100 * d))
    whole = tables.predictions.snapshot()
    assert whole.version == 2 and whole.rows == 300
    assert set(whole.files) == active_files(tables.predictions)
    assert count(whole.relation()) == 300

    day2 = tables.predictions.snapshot(DAY1 + timedelta(days=1), DAY1 + timedelta(days=2))
    assert len(day2.files) == 1 and "day=2026-03-02" in day2.files[0]
    assert count(day2.relation()) == 100
    # Half-open range inside one day: the file is kept, rows are filtered.
    morning = tables.predictions.snapshot(DAY1 + timedelta(days=1),
                                          DAY1 + timedelta(days=1, hours=6))
    assert count(morning.relation()) == 50
    assert morning.to_arrow().num_rows == 50
    days = duckdb.connect().execute(
        f"SELECT DISTINCT day FROM {day2.relation()}").fetchall()
    assert days == [(datetime(2026, 3, 2).date(),)]
    # Naive datetimes are UTC.
    naive = tables.predictions.snapshot(datetime(2026, 3, 3), None)
    assert count(naive.relation()) == 100
    with pytest.raises(InvalidInputError, match="not after start"):
        tables.predictions.snapshot(DAY1, DAY1)


def test_snapshot_is_pinned_and_ignores_removed_and_uncommitted_files(
        tables: mon.MonitoringTables, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tables.predictions
    for i in range(4):
        table.append(batch(25, DAY1, start=25 * i))
    pinned = table.snapshot()
    # A crashed writer's data file that no commit names, in the same partition.
    stray = Path(table.uri, "day=2026-03-01", f"part-00000-{uuid.uuid4()}-c000.snappy.parquet")
    pq.write_table(batch(1000, DAY1, start=10_000).drop_columns([]), stray)
    table.compact()
    after = table.snapshot()
    assert after.version == pinned.version + 1          # compaction is one commit
    assert len(after.files) == 1 and not set(after.files) & set(pinned.files)
    assert all(os.path.exists(f) for f in pinned.files)  # removed, not deleted
    assert str(stray) not in after.files + pinned.files
    assert count(after.relation()) == count(pinned.relation()) == 100
    table.append(batch(5, DAY1, start=500))
    again = table.snapshot(version=pinned.version)
    assert set(again.files) == set(pinned.files) and count(again.relation()) == 100
    assert count(table.snapshot().relation()) == 105


def test_schema_evolution_adds_a_column_and_old_ranges_still_have_it(
        tables: mon.MonitoringTables) -> None:
    table = tables.predictions
    table.append(batch(10, DAY1))
    income = pa.array([1000.0] * 10)
    table.append(batch(10, DAY1 + timedelta(days=1), version=2, start=10, income=income))
    old_only = table.snapshot(DAY1, DAY1 + timedelta(days=1))
    assert "income" in old_only.schema.names
    rows = duckdb.connect().execute(
        f"SELECT count(*), count(income) FROM {old_only.relation()}").fetchone()
    assert rows == (10, 0)
    arrow = table.read()
    assert arrow.num_rows == 20 and arrow["income"].null_count == 10
    # int64 data into the double column is widened; double into int64 is refused.
    table.append(batch(3, DAY1, start=90, income=pa.array([5, 6, 7], pa.int64())))
    before = table.version()
    with pytest.raises(InvalidInputError, match="'age'"):
        table.append(batch(3, DAY1, start=95, age=pa.array([1.5, 2.5, 3.5])))
    assert table.version() == before


def test_bad_rows_are_refused_before_writing(tables: mon.MonitoringTables) -> None:
    with pytest.raises(InvalidInputError, match="lack column"):
        tables.predictions.append(batch(3, DAY1).drop_columns(["score"]))
    with pytest.raises(InvalidInputError, match="no ts"):
        tables.predictions.append(batch(2, DAY1).set_column(
            1, "ts", pa.array([None, DAY1], pa.timestamp("us", tz="UTC"))))
    with pytest.raises(InvalidInputError, match="unknown columns"):
        tables.metrics.append(pa.table({"window_start": [DAY1], "oops": [1]}))
    assert not tables.predictions.exists() and not tables.metrics.exists()


def test_empty_tables_give_typed_empty_relations(tables: mon.MonitoringTables) -> None:
    for table in tables:
        snapshot = table.snapshot()
        assert snapshot.version == -1 and snapshot.files == () and snapshot.rows == 0
        described = duckdb.connect().execute(f"DESCRIBE {snapshot.relation()}").fetchall()
        names = [row[0] for row in described]
        assert names[: len(mon.base_schema(table.kind))] == mon.base_schema(table.kind).names
        assert count(snapshot.relation()) == 0
        assert snapshot.to_arrow().num_rows == 0
    assert tables.outcomes.find_ids(pa.array(["x"])).to_pylist() == []


def test_metrics_and_outcomes_tables(tables: mon.MonitoringTables) -> None:
    row = {"window_start": [DAY1], "window_end": [DAY1 + timedelta(days=1)], "version": [1],
           "kind": ["drift"], "feature": ["age"], "metric": ["psi"], "value": [0.3],
           "status": ["alert"], "computed_at": [DAY1 + timedelta(days=1)]}
    assert tables.metrics.append(pa.table(row)) == 0
    assert DeltaTable(tables.metrics.uri).metadata().partition_columns == []
    got = tables.metrics.read()
    assert got.schema == mon.METRICS_SCHEMA and got.to_pylist()[0]["status"] == "alert"
    tables.outcomes.append(pa.table({"prediction_id": ["p1"], "ts": [DAY1],
                                     "actual": [1.0]}))
    assert tables.outcomes.read(columns=["prediction_id", "actual"]).to_pylist() == [
        {"prediction_id": "p1", "actual": 1.0}]
    later = {**row, "window_start": [DAY1 + timedelta(days=1)],
             "window_end": [DAY1 + timedelta(days=2)], "value": [0.05], "status": ["ok"]}
    tables.metrics.append(pa.table(later))
    first_day = tables.metrics.snapshot(DAY1, DAY1 + timedelta(days=1))  # by window_start
    assert count(first_day.relation()) == 1
    assert first_day.to_arrow(["status"]).to_pylist() == [{"status": "alert"}]
    assert count(tables.metrics.snapshot().relation()) == 2


def test_writers_compact_and_checkpoint_every_n_versions(
        tables: mon.MonitoringTables, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mon, "COMPACT_EVERY", 5)
    for i in range(9):
        tables.predictions.append(batch(4, DAY1, start=4 * i))
    dt = DeltaTable(tables.predictions.uri)
    assert [h["operation"] for h in dt.history() if h["operation"] == "OPTIMIZE"]
    assert len(tables.predictions.snapshot().files) < 9
    assert list(Path(tables.predictions.uri, "_delta_log").glob("*.checkpoint.parquet"))
    assert count(tables.predictions.snapshot().relation()) == 36


WRITER = """
import sys
from datetime import datetime, timedelta, timezone
import pyarrow as pa
from nbregistry.store.location import Location
from nbregistry.store.monitoring import MonitorTable
table = MonitorTable(Location.parse(sys.argv[1], None), "credit_risk", "predictions")
k = int(sys.argv[2])
day = datetime(2026, 3, 1, tzinfo=timezone.utc)
for i in range(10):
    ids = [f"w{k}-{i}-{j}" for j in range(20)]
    ts = pa.array([day] * 20, pa.timestamp("us", tz="UTC"))
    table.append(pa.table({"prediction_id": ids, "ts": ts,
                           "version": pa.array([1] * 20, pa.int64()), "score": [0.5] * 20,
                           "label": pa.array([1] * 20, pa.int64())}))
"""


@pytest.mark.slow
def test_concurrent_writers_in_several_processes_lose_nothing(
        location: Location, tables: mon.MonitoringTables) -> None:
    tables.predictions.append(batch(1, DAY1))  # the table exists: writers race on appends
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, location.uri, str(k)])
               for k in range(3)]
    assert [w.wait(180) for w in writers] == [0, 0, 0]
    assert tables.predictions.version() == 30
    ids = tables.predictions.read(columns=["prediction_id"])["prediction_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 601


def test_a_stale_handle_appends_after_another_writer_changed_the_schema(
        location: Location, tables: mon.MonitoringTables) -> None:
    """Issue 16.6: after any metaData commit by someone else, a handle that had written
    before failed every append with "Metadata changed since last commit"."""
    old = tables.predictions
    old.append(batch(3, DAY1))
    other = mon.MonitorTable(location, "credit_risk", "predictions")
    other.append(batch(3, DAY1, start=3, income=pa.array([1.0] * 3)))  # v2 adds a feature
    old.append(batch(3, DAY1, start=6))
    old.append(batch(3, DAY1, start=9, income=pa.array([2.0] * 3)))
    stored = old.read(columns=["prediction_id", "income"]).sort_by("prediction_id")
    assert stored["prediction_id"].to_pylist() == [f"p{i:08d}" for i in range(12)]
    assert stored["income"].to_pylist() == [None] * 3 + [1.0] * 3 + [None] * 3 + [2.0] * 3


def spawn_all(queue: Any, procs: list[Any], timeout: float = 240) -> None:
    for p in procs:
        p.start()
    try:
        errors = [error for _, error in (queue.get(timeout=timeout) for _ in procs) if error]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert not errors, "\n".join(errors)


@pytest.mark.slow
def test_first_writers_racing_in_processes_create_the_table_once(location: Location) -> None:
    """Writers that all find no table: one creates it (version 0, with the properties), the
    others append; before, a loser committed a second create or failed for good."""
    import multiprocessing

    import capture_workers

    ctx = multiprocessing.get_context("spawn")
    queue, models, workers = ctx.Queue(), [f"race{k}" for k in range(6)], 3
    barrier = ctx.Barrier(workers)
    spawn_all(queue, [ctx.Process(target=capture_workers.race_first_writes,
                                       args=(location.uri, w, models, barrier, queue))
                           for w in range(workers)])
    for model in models:
        table = mon.MonitorTable(location, model, "predictions")
        commits = sorted(Path(table.uri, "_delta_log").glob("*.json"))
        actions = [[json.loads(line) for line in c.read_text().splitlines()] for c in commits]
        creates = [i for i, commit in enumerate(actions)
                   if any("metaData" in a or "protocol" in a for a in commit)]
        assert creates == [0], (model, creates)
        meta = next(a["metaData"] for a in actions[0] if "metaData" in a)
        assert meta["configuration"] == mon.CONFIGURATION
        assert meta["partitionColumns"] == ["day"]
        ids = table.read(columns=["prediction_id"])["prediction_id"].to_pylist()
        assert sorted(ids) == sorted(f"w{w}-{r}-{i}" for w in range(workers)
                                     for r in "ab" for i in range(5))


@pytest.mark.slow
def test_a_schema_merge_while_another_process_logs_loses_nothing(
        location: Location, tables: mon.MonitoringTables) -> None:
    """Version 2 adds a feature column while version 1 rows are logged from another
    process: every row of both lands, the old rows with the new column null."""
    import multiprocessing

    import capture_workers

    tables.predictions.append(batch(2, DAY1))
    ctx = multiprocessing.get_context("spawn")
    queue, started = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=capture_workers.log_old_version_rows,
                        args=(location.uri, 40, started, queue))
    child.start()
    try:
        assert started.wait(120)
        for k in range(5):  # the metaData commits land between the child's appends
            tables.predictions.append(batch(4, DAY1, start=100 + 4 * k, version=2,
                                            income=pa.array([float(k)] * 4)))
        assert queue.get(timeout=180) == ("v1", None)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    stored = tables.predictions.read(columns=["prediction_id", "income", "version"])
    ids = stored["prediction_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 2 + 40 * 10 + 5 * 4
    old = stored.filter(pa.compute.starts_with(stored["prediction_id"], "v1-"))
    assert old.num_rows == 400 and old["income"].null_count == 400


def test_find_ids_prunes_files_by_id_statistics(
        tables: mon.MonitoringTables, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        tables.predictions.append(batch(100, DAY1, start=1000 * i))
    reads: list[str] = []
    original = mon.read_file

    def counting(path: str, names: Any, schema: pa.Schema) -> pa.Table:
        reads.append(path)
        return original(path, names, schema)

    monkeypatch.setattr(mon, "read_file", counting)
    found = tables.predictions.find_ids(pa.array(["p00002005", "p00002099", "nope", None]))
    assert sorted(found.to_pylist()) == ["p00002005", "p00002099"]
    assert len(reads) == 1


def test_model_names_are_validated(location: Location) -> None:
    with pytest.raises(InvalidInputError):
        mon.MonitorTable(location, "../evil", "predictions")
    with pytest.raises(InvalidInputError, match="unknown monitoring table"):
        mon.MonitorTable(location, "m", "events")  # type: ignore[arg-type]


# -- seals --------------------------------------------------------------------------------

@pytest.fixture
def sealed(tables: mon.MonitoringTables) -> Iterator[tuple[mon.MonitorTable, dict[str, Any]]]:
    table = tables.predictions
    for d in range(3):
        table.append(batch(50, DAY1 + timedelta(days=d), start=50 * d))
    yield table, seal(table)


def test_seal_fields_and_a_clean_table_passes_after_appends_and_compaction(
        sealed: tuple[mon.MonitorTable, dict[str, Any]]) -> None:
    table, item = sealed
    assert json.loads(json.dumps(item)) == item
    assert item["table"] == "monitoring/credit_risk/predictions"
    assert (item["version"], item["files"], item["rows"]) == (2, 3, 150)
    assert len(item["commit_sha256"]) == 64 and len(item["files_sha256"]) == 64
    for i in range(3):
        table.append(batch(10, DAY1, start=1000 + 10 * i))
    table.compact()
    table.append(batch(10, DAY1, start=2000))
    assert check_seal(table.location, item) == []
    assert check_seals(table.location, [item, seal(table)]) == []


def _data_file(table: mon.MonitorTable, item: dict[str, Any]) -> Path:
    dt = DeltaTable(table.uri, version=item["version"])
    return Path(table.uri, pa.table(dt.get_add_actions())["path"].to_pylist()[0])


def test_rewritten_data_file_is_detected(sealed: tuple[mon.MonitorTable, dict[str, Any]]
                                         ) -> None:
    table, item = sealed
    path = _data_file(table, item)
    rows = pq.read_table(path)
    pq.write_table(rows.slice(1), path)          # one prediction quietly dropped
    assert any("was rewritten" in p for p in check_seal(table.location, item))


def test_same_size_rewrite_is_caught_by_the_content_hash(
        sealed: tuple[mon.MonitorTable, dict[str, Any]]) -> None:
    table, item = sealed
    path = _data_file(table, item)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF                  # same size, different bytes
    path.write_bytes(bytes(data))
    assert any("was rewritten" in p and path.name in p and "same size" in p
               for p in check_seal(table.location, item))


def test_deleted_data_file_is_detected(sealed: tuple[mon.MonitorTable, dict[str, Any]]) -> None:
    table, item = sealed
    path = _data_file(table, item)
    path.unlink()
    assert any("is missing" in p and path.name in p for p in check_seal(table.location, item))


def test_deleting_rows_after_turning_append_only_off_is_detected(
        sealed: tuple[mon.MonitorTable, dict[str, Any]]) -> None:
    table, item = sealed
    dt = DeltaTable(table.uri)
    dt.alter.set_table_properties({"delta.appendOnly": "false"})
    dt.delete("score > 0.5")
    assert table.read().num_rows < 150  # the attack worked
    problems = check_seal(table.location, item)
    assert any("appendOnly" in p for p in problems)
    assert any("removed sealed rows" in p and "DELETE" in p for p in problems)


def test_rewritten_commit_json_is_detected(sealed: tuple[mon.MonitorTable, dict[str, Any]]
                                           ) -> None:
    table, item = sealed
    commit = Path(table.uri, "_delta_log", f"{item['version']:020d}.json")
    lines = commit.read_text().splitlines()
    info = json.loads(lines[0])
    info["commitInfo"]["timestamp"] += 1
    commit.write_text("\n".join([json.dumps(info), *lines[1:]]) + "\n")
    assert any("was rewritten" in p and "commit" in p for p in check_seal(table.location, item))


def test_forged_compaction_that_drops_rows_is_detected(
        sealed: tuple[mon.MonitorTable, dict[str, Any]]) -> None:
    table, item = sealed
    victim = _data_file(table, item)
    version = table.version() + 1
    remove = {"remove": {"path": victim.relative_to(table.uri).as_posix(), "dataChange": False,
                         "deletionTimestamp": 0, "size": victim.stat().st_size}}
    info = {"commitInfo": {"operation": "OPTIMIZE", "timestamp": 0}}
    Path(table.uri, "_delta_log", f"{version:020d}.json").write_text(
        json.dumps(info) + "\n" + json.dumps(remove) + "\n")
    assert table.read().num_rows == 100  # readers lost 50 rows
    assert any("turns 50 rows into 0" in p for p in check_seal(table.location, item))


def test_recreated_or_truncated_table_is_detected(
        sealed: tuple[mon.MonitorTable, dict[str, Any]], tmp_path: Path) -> None:
    table, item = sealed
    log = Path(table.uri, "_delta_log")
    for commit in sorted(log.glob("*.json"))[1:]:
        commit.unlink()                           # cut the log back to version 0
    problems = check_seal(table.location, item)
    assert any("is missing" in p or "behind" in p for p in problems)

    fresh = mon.MonitorTable(table.location, "credit_risk", "predictions",
                             cache=snap.FileCache(tmp_path / "c2"))
    for path in sorted(Path(table.uri).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    for d in range(3):
        fresh.append(batch(50, DAY1 + timedelta(days=d), start=50 * d))
    assert any("recreated" in p or "rewritten" in p for p in check_seal(table.location, item))


def test_seals_of_an_empty_table_and_malformed_seals(tables: mon.MonitoringTables) -> None:
    empty = seal(tables.outcomes)
    assert empty["version"] == -1 and check_seal(tables.outcomes.location, empty) == []
    with pytest.raises(InvalidInputError, match="not a monitoring seal"):
        check_seal(tables.outcomes.location, {"table": "x"})


# -- object store -------------------------------------------------------------------------

@pytest.mark.slow
def test_s3_tables_snapshot_through_the_local_cache_and_seals(
        s3_server: dict[str, str], s3_uri: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    location = Location.parse(s3_uri, s3_server)
    cache = snap.FileCache(tmp_path / "cache")
    tables = mon.monitoring_tables(location, "credit_risk", cache=cache)
    for d in range(2):
        tables.predictions.append(batch(40, DAY1 + timedelta(days=d), start=40 * d))
    item = seal(tables.predictions)
    snapshot = tables.predictions.snapshot(DAY1 + timedelta(days=1), None)
    assert len(snapshot.files) == 1
    assert snapshot.files[0].startswith(str(cache.table_dir(tables.predictions.uri)))
    assert count(snapshot.relation()) == 40
    # Cached files are reused: no second download.
    monkeypatch.setattr(snap, "_download", lambda *a: pytest.fail("downloaded again"))
    assert count(tables.predictions.snapshot(DAY1 + timedelta(days=1)).relation()) == 40
    monkeypatch.undo()
    # A cached copy of the wrong size is fetched again.
    Path(snapshot.files[0]).write_bytes(b"junk")
    assert count(tables.predictions.snapshot(DAY1 + timedelta(days=1)).relation()) == 40
    assert sorted(tables.predictions.find_ids(pa.array(["p00000041", "x"])).to_pylist()) == [
        "p00000041"]
    assert check_seal(location, item) == []

    client = s3_client(s3_server)
    bucket, prefix = s3_uri.removeprefix("s3://").split("/", 1)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{item['table']}/day=")
    victim = listed["Contents"][0]["Key"]
    client.delete_object(Bucket=bucket, Key=victim)
    assert any("is missing" in p for p in check_seal(location, item))
