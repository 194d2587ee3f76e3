"""Content seals of monitoring tables: attacks by someone who can write the registry's folder
(same-size rewrites, forged compactions) and the honest operations that must keep verifying.
Real Delta tables, real DuckDB, real S3 (moto)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

import nbregistry as nbr
from nbregistry.store import monitoring as mon
from nbregistry.store import snapshot as snap
from nbregistry.store.location import Location
from nbregistry.store.seals import check_seals, seal
from s3server import s3_client

DAY1 = datetime(2026, 3, 1, tzinfo=UTC)
TABLE = "monitoring/m/predictions"


def traffic(rng: np.random.Generator, n: int) -> pa.Table:
    return pa.table({"income": rng.normal(50, 10, n), "age": rng.integers(18, 80, n)})


@pytest.fixture
def world(registry_uri: str) -> tuple[nbr.Registry, Any]:
    """A registered model with a frozen baseline and three days of logged predictions."""
    rng = np.random.default_rng(7)
    reg = nbr.open_registry(registry_uri, user="alice", create=True)
    reg.register({"w": 1}, "m", reference_data=traffic(rng, 2000))
    monitor = reg.monitor("m")
    for day in range(3):
        monitor.log_predictions(traffic(rng, 400), rng.random(400),
                                ts=[DAY1 + timedelta(days=day, minutes=i) for i in range(400)])
    return reg, monitor


def psi(monitor: Any, feature: str = "income") -> float:
    table = monitor.drift()
    return float(table.filter(pc.equal(table["feature"], feature))["psi"][0].as_py())


def live_files(table_uri: str) -> list[Path]:
    return [Path(table_uri, p) for p in DeltaTable(table_uri).file_uris()]


def richer(rows: pa.Table) -> pa.Table:
    """The forger's edit: every income tripled (drift reads it as a shift)."""
    at = rows.column_names.index("income")
    return rows.set_column(at, "income", pc.multiply(rows["income"], 3.0))


def forge_same_size(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    """Rewrite a parquet data file with changed rows and exactly its old size (padded with
    footer metadata), so size checks and row counts see nothing."""
    size = path.stat().st_size
    rows = change(pq.ParquetFile(path).read())

    def written(pad: int) -> bytes:
        buffer = io.BytesIO()
        with pq.ParquetWriter(buffer, rows.schema, compression="zstd",
                              store_schema=False) as writer:
            writer.write_table(rows)
            writer.add_key_value_metadata({"pad": "x" * pad})
        return buffer.getvalue()

    guess = size - len(written(0))  # the footer grows by one byte per padding byte
    for pad in range(max(guess - 8, 0), guess + 8):
        data = written(pad)
        if len(data) == size:
            path.write_bytes(data)
            return
    raise AssertionError("could not forge a same-size file")


def forge_compaction(table_uri: str, victims: list[Path],
                     change: Callable[[pa.Table], pa.Table]) -> Path:
    """Commit a fake OPTIMIZE: the victims' rows, changed, in one new file; the same
    numRecords; every action dataChange=false, as deltalake's compaction writes them."""
    rows = change(pa.concat_tables([pq.ParquetFile(p).read() for p in victims]))
    folder = victims[0].parent
    new = folder / f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    pq.write_table(rows, new, compression="zstd")
    day = folder.name.split("=", 1)[1]
    version = DeltaTable(table_uri).version() + 1
    lines = [{"commitInfo": {"timestamp": 0, "operation": "OPTIMIZE"}}]
    lines += [{"remove": {"path": p.relative_to(table_uri).as_posix(), "dataChange": False,
                          "deletionTimestamp": 0, "partitionValues": {"day": day},
                          "size": p.stat().st_size}} for p in victims]
    lines.append({"add": {"path": new.relative_to(table_uri).as_posix(),
                          "partitionValues": {"day": day}, "size": new.stat().st_size,
                          "modificationTime": 0, "dataChange": False,
                          "stats": json.dumps({"numRecords": rows.num_rows})}})
    Path(table_uri, "_delta_log", f"{version:020d}.json").write_text(
        "".join(json.dumps(line) + "\n" for line in lines))
    return new


def seal_problems(reg: nbr.Registry) -> list[str]:
    report = nbr.open_registry(reg.uri, user="auditor").verify()
    assert {p.kind for p in report.problems} <= {"seal"}
    return [p.message for p in report.problems]


# -- the attacks ---------------------------------------------------------------------------

def test_a_same_size_rewrite_of_a_sealed_file_fails_verify_naming_table_and_file(
        world: tuple[nbr.Registry, Any]) -> None:
    reg, monitor = world
    monitor.seal()
    before = psi(monitor)
    victim = live_files(monitor.tables.predictions.uri)[0]
    forge_same_size(victim, richer)
    assert psi(monitor) > before + 0.1  # the attack changes what drift() reports
    problems = seal_problems(reg)
    assert any(TABLE in p and victim.name in p and "rewritten" in p for p in problems), problems


def test_a_forged_compaction_that_keeps_numrecords_fails_verify(
        world: tuple[nbr.Registry, Any]) -> None:
    reg, monitor = world
    monitor.seal()
    before = psi(monitor)
    victim = live_files(monitor.tables.predictions.uri)[0]
    forge_compaction(monitor.tables.predictions.uri, [victim], richer)
    assert monitor.tables.predictions.read().num_rows == 1200  # no row lost...
    assert psi(monitor) > before + 0.1                         # ...but drift() changed
    problems = seal_problems(reg)
    assert any(TABLE in p and "OPTIMIZE" in p and "rows" in p for p in problems), problems


def test_a_forged_compaction_that_moves_rows_to_another_day_fails_verify(
        world: tuple[nbr.Registry, Any]) -> None:
    """Same rows, but filed under another day's partition: windowed reads prune them away."""
    reg, monitor = world
    monitor.seal()
    uri = monitor.tables.predictions.uri
    victim = live_files(uri)[0]
    moved = Path(str(victim.parent).rsplit("=", 1)[0] + "=2020-01-01")
    moved.mkdir()
    forged = forge_compaction(uri, [victim], lambda rows: rows)
    commit = sorted(Path(uri, "_delta_log").glob("*.json"))[-1]
    target = moved / forged.name
    forged.rename(target)
    commit.write_text(commit.read_text().replace(
        forged.relative_to(uri).as_posix(), target.relative_to(uri).as_posix()).replace(
        f'"partitionValues": {{"day": "{victim.parent.name.split("=")[1]}"}}, "size": '
        f"{target.stat().st_size}", f'"partitionValues": {{"day": "2020-01-01"}}, "size": '
        f"{target.stat().st_size}"))
    assert '"2020-01-01"' in commit.read_text()
    problems = seal_problems(reg)
    assert any(TABLE in p and "OPTIMIZE" in p for p in problems), problems


def test_a_remove_without_data_change_next_to_an_append_fails_verify(
        world: tuple[nbr.Registry, Any]) -> None:
    """Sealed rows removed with dataChange=false while the commit's add claims new data."""
    reg, monitor = world
    monitor.seal()
    uri = monitor.tables.predictions.uri
    victim = live_files(uri)[0]
    forged = forge_compaction(uri, [victim], richer)
    commit = sorted(Path(uri, "_delta_log").glob("*.json"))[-1]
    text = commit.read_text().replace(f'"size": {forged.stat().st_size}, "modificationTime": '
                                      '0, "dataChange": false',
                                      f'"size": {forged.stat().st_size}, "modificationTime": '
                                      '0, "dataChange": true')
    assert text != commit.read_text()
    commit.write_text(text)
    problems = seal_problems(reg)
    assert any(TABLE in p and "turns 400 rows into 0" in p for p in problems), problems


def test_rows_rewritten_before_a_compaction_are_caught_through_the_compaction(
        world: tuple[nbr.Registry, Any]) -> None:
    """An honest compaction after a same-size rewrite carries the forged rows into a new file:
    the sealed original still hashes differently."""
    reg, monitor = world
    monitor.seal()
    victim = live_files(monitor.tables.predictions.uri)[0]
    forge_same_size(victim, richer)
    monitor.tables.predictions.compact()
    problems = seal_problems(reg)
    assert any(victim.name in p and "rewritten" in p for p in problems), problems


# -- what must keep verifying --------------------------------------------------------------

def test_an_honest_compaction_after_a_seal_verifies_and_seals_again(
        world: tuple[nbr.Registry, Any]) -> None:
    reg, monitor = world
    rng = np.random.default_rng(3)
    first = monitor.seal().payload["tables"][TABLE]
    assert len(first["file_sha256"]) == first["files"] == 3
    monitor.log_predictions(traffic(rng, 100), rng.random(100), ts=DAY1)
    monitor.tables.predictions.compact()
    assert len(live_files(monitor.tables.predictions.uri)) < 4  # files were rewritten
    second = monitor.seal().payload["tables"][TABLE]
    # Only the files written since the first seal are hashed and recorded again.
    assert set(second["file_sha256"]).isdisjoint(first["file_sha256"])
    assert 0 < len(second["file_sha256"]) <= second["files"]
    assert nbr.open_registry(reg.uri, user="auditor").verify().ok


def test_a_compaction_across_an_added_column_and_nan_verifies(tmp_path: Path) -> None:
    """Files written before a feature was added lack its column; the compacted file has it
    as nulls. NaN and null compare equal (the capture stores one as the other)."""
    table = mon.MonitorTable(Location.parse(tmp_path / "r", None), "m", "predictions",
                             cache=snap.FileCache(tmp_path / "cache"))

    def rows(start: int, n: int, **extra: Any) -> pa.Table:
        return pa.table({
            "prediction_id": [f"p{start + i}" for i in range(n)],
            "ts": pa.array([DAY1 + timedelta(minutes=start + i) for i in range(n)],
                           pa.timestamp("us", tz="UTC")),
            "version": pa.array([1] * n, pa.int64()), "score": [0.5] * n,
            "label": pa.array([1] * n, pa.int64()), **extra})

    table.append(rows(0, 5, income=[1.0, float("nan"), 3.0, None, 5.0]))
    table.append(rows(5, 5, income=[1.0] * 5, segment=["a", "b", None, "a", "b"]))
    item = seal(table)
    table.compact()
    assert len(live_files(table.uri)) == 1
    assert check_seals(table.location, [item, seal(table)]) == []


def test_the_hash_cache_is_derived_data(world: tuple[nbr.Registry, Any]) -> None:
    """Lost: the next seal hashes again. Poisoned: verify fails loudly, never silently."""
    reg, monitor = world
    monitor.seal()
    caches = list(Path(reg.uri, "monitoring", "m", "hashes").glob("*.json"))
    assert caches, "seal() keeps a cache of file hashes"
    for cache in caches:
        cache.unlink()
    again = monitor.seal().payload["tables"][TABLE]
    assert len(again["file_sha256"]) == 3  # hashed once more, the same hashes recorded
    assert nbr.open_registry(reg.uri, user="auditor").verify().ok

    cache = Path(reg.uri, "monitoring", "m", "hashes", "predictions.json")
    doc = json.loads(cache.read_text())
    doc["files"] = {path: [size, "0" * 64, by] for path, (size, _, by) in doc["files"].items()}
    cache.write_text(json.dumps(doc))
    monitor.seal()
    assert any("wrong hashes" in p for p in seal_problems(reg))


def test_seals_without_content_hashes_still_verify(world: tuple[nbr.Registry, Any]) -> None:
    """Seals written before content hashing prove the file list, sizes and row counts, and
    compactions after them are still checked row by row."""
    _, monitor = world
    table = monitor.tables.predictions
    old = {k: v for k, v in seal(table).items() if k not in ("content_sha256", "file_sha256")}
    sealed = set(live_files(table.uri))
    rng = np.random.default_rng(5)
    monitor.log_predictions(traffic(rng, 50), rng.random(50), ts=DAY1)
    table.compact()
    assert check_seals(table.location, [old, seal(table)]) == []

    untouched = sorted(sealed & set(live_files(table.uri)))[0]
    forge_same_size(untouched, richer)
    assert check_seals(table.location, [old]) == []  # what an old seal cannot see
    heir = sorted(set(live_files(table.uri)) - sealed)[0]
    forge_same_size(heir, richer)
    assert any("OPTIMIZE" in p for p in check_seals(table.location, [old]))


# -- object store --------------------------------------------------------------------------

@pytest.mark.slow
def test_s3_content_seal_streams_and_catches_a_same_size_rewrite(
        s3_server: dict[str, str], s3_uri: str, tmp_path: Path) -> None:
    location = Location.parse(s3_uri, s3_server)
    table = mon.MonitorTable(location, "m", "predictions", cache=snap.FileCache(tmp_path))
    rng = np.random.default_rng(11)
    for day in range(2):
        n = 300
        table.append(pa.table({
            "prediction_id": [f"p{day}-{i}" for i in range(n)],
            "ts": pa.array([DAY1 + timedelta(days=day, minutes=i) for i in range(n)],
                           pa.timestamp("us", tz="UTC")),
            "version": pa.array([1] * n, pa.int64()), "income": rng.normal(50, 10, n),
            "score": rng.random(n), "label": pa.array([1] * n, pa.int64())}))
    item = seal(table)
    assert len(item["file_sha256"]) == 2 and check_seals(location, [item]) == []
    table.append(pa.table({
        "prediction_id": ["late"], "ts": pa.array([DAY1], pa.timestamp("us", tz="UTC")),
        "version": pa.array([1], pa.int64()), "income": [50.0], "score": [0.5],
        "label": pa.array([1], pa.int64())}))
    table.compact()  # day 1's two files become one: read back from S3 by the check
    assert check_seals(location, [item, seal(table)]) == []

    client = s3_client(s3_server)
    bucket, prefix = s3_uri.removeprefix("s3://").split("/", 1)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{TABLE}/day=2026-03-02")
    key = listed["Contents"][0]["Key"]  # sealed, never compacted
    local = tmp_path / "victim.parquet"
    local.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    forge_same_size(local, richer)
    client.put_object(Bucket=bucket, Key=key, Body=local.read_bytes())
    problems = check_seals(location, [item])
    assert any(key.rsplit("/", 1)[1] in p and "rewritten" in p for p in problems), problems
