"""The buffered logger when the store fails: it backs off instead of retrying in a tight
loop, never holds a caller past ``max_wait``, spills what it cannot write to local files and
replays them once the store is back (also from a new logger, also after ``kill -9``), drops
only when memory and spill are both full, counts every row and warns once per episode.

Real stores throughout: a local Delta table whose folder is replaced by a file (root ignores
read-only permissions), and the moto S3 server behind a proxy that goes away and comes back.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from flaky_proxy import FlakyProxy
from nbregistry.domain.errors import InvalidInputError
from nbregistry.monitoring.buffer import PredictionBuffer
from nbregistry.monitoring.capture import prepare_predictions
from nbregistry.store.location import Location
from nbregistry.store.monitoring import MonitorTable, monitoring_tables
from nbregistry.store.snapshot import FileCache
from nbregistry.store.spill import SpillDir

SCHEMA = [{"name": "age", "dtype": "int64"}, {"name": "income", "dtype": "double"},
          {"name": "city", "dtype": "string"}]
ROW = {"age": 40, "income": 2500.5, "city": "paris"}
FAST = {"flush_interval": 0.05, "retry_interval": 0.05, "max_retry_interval": 0.4}


@pytest.fixture
def table(tmp_path: Path) -> MonitorTable:
    location = Location.parse(tmp_path / "registry", None)
    return monitoring_tables(location, "credit_risk", cache=FileCache(tmp_path / "cache")
                             ).predictions


@contextmanager
def broken(table: MonitorTable) -> Iterator[None]:
    """The table's folder (made or not) is a plain file meanwhile: reads and writes fail."""
    folder = Path(table.uri)
    away = folder.with_name(folder.name + ".away")
    existed = folder.exists()
    if existed:
        folder.rename(away)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a table")
    try:
        yield
    finally:
        folder.unlink()
        if existed:
            away.rename(folder)


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def timed_logs(buffer: PredictionBuffer, n: int, pause: float = 0.0) -> tuple[list[str], float]:
    """Log n rows; their ids and the slowest log() call in seconds."""
    ids, slowest = [], 0.0
    for _ in range(n):
        start = time.perf_counter()
        ids.append(buffer.log(ROW, 0.5))
        slowest = max(slowest, time.perf_counter() - start)
        if pause:
            time.sleep(pause)
    return ids, slowest


def stored_ids(table: MonitorTable) -> list[str]:
    return sorted(table.read(columns=["prediction_id"])["prediction_id"].to_pylist())


def warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and text in r.message)


def test_a_failing_store_backs_off_spills_and_replays_every_row_when_it_recovers(
        table: MonitorTable, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nbregistry.monitoring")
    spill = tmp_path / "spill"
    buffer = PredictionBuffer(table, schema=SCHEMA, version=1, flush_rows=100, capacity=300,
                              max_wait=0.2, spill_dir=spill, **FAST)
    before, _ = timed_logs(buffer, 50)
    buffer.flush()
    with broken(table):
        start = time.monotonic()
        during, slowest = timed_logs(buffer, 1500, pause=0.001)
        wait_for(lambda: buffer.stats().spilled >= 1400)  # only the last partial batch waits
        elapsed = time.monotonic() - start
        stats = buffer.stats()
        assert slowest < 0.2 + 1.3, slowest  # max_wait, plus a spill on a busy machine
        # Backoff 0.05 s doubling to 0.4 s, jittered to at least half: no tight loop.
        assert 1 <= stats.failures <= 5 + elapsed / 0.2, (stats.failures, elapsed)
        assert stats.consecutive_failures == stats.failures
        assert "cannot append to" in str(stats.last_error) and stats.dropped == 0
        assert stats.on_disk == stats.spilled and stats.pending < 300
        assert len(list(spill.glob("*.arrow"))) >= 14
        assert warnings(caplog, "cannot write") == 1          # once per episode
    wait_for(lambda: buffer.stats().on_disk == 0 and buffer.stats().pending == 0)
    stats = buffer.stats()
    assert (stats.logged, stats.written, stats.dropped) == (1550, 1550, 0)
    assert stats.replayed == stats.spilled and stats.consecutive_failures == 0
    assert stats.last_success is not None and stats.batches > 1
    assert stored_ids(table) == sorted(before + during)      # every row once
    assert any("writes again" in r.message for r in caplog.records)
    buffer.close()
    assert not list(spill.iterdir()) or [p.name for p in spill.iterdir()] == ["TABLE"]


def test_a_logger_closed_while_the_store_is_down_leaves_rows_a_new_logger_replays(
        table: MonitorTable, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    first = PredictionBuffer(table, schema=SCHEMA, version=1, flush_interval=60,
                             spill_dir=spill)
    ids = [first.log(ROW, 0.5) for _ in range(30)]
    with broken(table):
        first.close()                              # no error: the rows are on disk
    assert (first.stats().spilled, first.stats().on_disk, first.stats().written) == (30, 30, 0)
    # A spill file whose rows landed although the write reported a failure.
    landed = prepare_predictions(pa.table({k: [v] * 5 for k, v in ROW.items()}), [0.3] * 5,
                                 schema=SCHEMA, version=1).table
    assert SpillDir(spill, limit=1 << 20).put(landed)
    table.append(landed)

    second = PredictionBuffer(table, schema=SCHEMA, version=1, flush_interval=60,
                              spill_dir=spill)
    wait_for(lambda: second.stats().on_disk == 0)
    second.close()
    expected = sorted(ids + landed["prediction_id"].to_pylist())
    assert stored_ids(table) == expected                    # landed rows not written twice
    assert (second.stats().replayed, second.stats().written) == (35, 35)


def test_full_memory_and_no_spill_room_drops_counted_rows_with_one_warning(
        table: MonitorTable, caplog: pytest.LogCaptureFixture) -> None:
    buffer = PredictionBuffer(table, schema=SCHEMA, version=1, flush_rows=10, capacity=50,
                              max_wait=0.05, spill_bytes=0, **FAST)
    with broken(table):
        wait_for(lambda: buffer.log(ROW, 0.5) and buffer.stats().failures > 0)
        _, slowest = timed_logs(buffer, 200)
        stats = buffer.stats()
        assert slowest < 0.05 + 0.75, slowest
        assert stats.pending == 50 and stats.spill_dir is None and stats.spilled == 0
        assert stats.dropped >= 150 and stats.logged == stats.pending + stats.dropped
        assert warnings(caplog, "dropping rows") == 1 and warnings(caplog, "cannot write") == 1
    wait_for(lambda: buffer.stats().pending == 0)
    buffer.close()
    stats = buffer.stats()
    assert stats.written == 50 == len(stored_ids(table))
    assert stats.logged == stats.written + stats.dropped


@pytest.mark.slow
def test_an_s3_endpoint_that_goes_away_then_returns(
        s3_server: dict[str, str], s3_uri: str, tmp_path: Path) -> None:
    """deltalake retries a dead endpoint for seconds per write: the writer thread is stuck,
    so full callers spill on their own thread after max_wait instead of waiting."""
    host, port = s3_server["AWS_ENDPOINT_URL"].removeprefix("http://").split(":")
    proxy = FlakyProxy((host, int(port)))
    try:
        options = {**s3_server, "AWS_ENDPOINT_URL": proxy.endpoint}
        location = Location.parse(s3_uri, options)
        table = monitoring_tables(location, "credit_risk",
                                  cache=FileCache(tmp_path / "cache")).predictions
        spill = tmp_path / "spill"
        buffer = PredictionBuffer(table, schema=SCHEMA, version=1, flush_rows=50,
                                  capacity=200, max_wait=0.2, spill_dir=spill, **FAST)
        before, _ = timed_logs(buffer, 20)
        buffer.flush()
        proxy.down()
        during, slowest = timed_logs(buffer, 3000, pause=0.001)
        stats = buffer.stats()
        assert slowest < 0.2 + 1.3, slowest
        assert stats.failures >= 1 and stats.consecutive_failures >= 1
        assert stats.spilled >= 2500 and stats.dropped == 0
        proxy.up()
        wait_for(lambda: buffer.stats().on_disk == 0 and buffer.stats().pending == 0, 120)
        buffer.close()
        stats = buffer.stats()
        assert (stats.logged, stats.written, stats.replayed) == (3020, 3020, stats.spilled)
        assert stored_ids(table) == sorted(before + during)
    finally:
        proxy.close()


SCRIPT = """
import sys
from nbregistry.store.location import Location
from nbregistry.store.monitoring import monitoring_tables
from nbregistry.domain.errors import InvalidInputError
from nbregistry.monitoring.buffer import PredictionBuffer
table = monitoring_tables(Location.parse(sys.argv[1], None), "credit_risk").predictions
schema = [{"name": "age", "dtype": "int64"}, {"name": "income", "dtype": "double"},
          {"name": "city", "dtype": "string"}]
buffer = PredictionBuffer(table, schema=schema, version=1, flush_interval=3600,
                          spill_dir=sys.argv[2])
ids = [buffer.log({"age": 40, "income": 2500.5, "city": "paris"}, 0.5) for _ in range(400)]
try:
    buffer.flush()
except Exception as exc:
    print("failed", type(exc).__name__, flush=True)
print(buffer.stats().spilled, *ids, flush=True)
import time; time.sleep(120)
"""


@pytest.mark.slow
def test_rows_spilled_before_a_kill_9_are_replayed_by_the_next_logger(
        table: MonitorTable, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    table.append(prepare_predictions(pa.table({k: [v] for k, v in ROW.items()}), [0.1],
                                     schema=SCHEMA, version=1).table)
    with broken(table):
        child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRIPT),
                                  table.location.uri, str(spill)],
                                 stdout=subprocess.PIPE, text=True, env={**os.environ})
        assert child.stdout is not None
        assert child.stdout.readline().startswith("failed StorageError")
        spilled, *ids = child.stdout.readline().split()
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert spilled == "400" and len(ids) == 400
    replayer = PredictionBuffer(table, schema=SCHEMA, version=1, spill_dir=spill)
    wait_for(lambda: replayer.stats().replayed == 400)
    replayer.close()
    assert set(ids) <= set(stored_ids(table)) and len(stored_ids(table)) == 401


def test_two_loggers_replaying_one_spill_directory_write_each_file_once(
        table: MonitorTable, tmp_path: Path) -> None:
    spill = SpillDir(tmp_path / "spill", limit=1 << 24)
    batches = [prepare_predictions(pa.table({k: [v] * 20 for k, v in ROW.items()}),
                                   [0.2] * 20, schema=SCHEMA, version=1).table
               for _ in range(12)]
    for batch in batches:
        assert spill.put(batch)
    gate = threading.Barrier(2)

    def start() -> PredictionBuffer:
        gate.wait()
        return PredictionBuffer(table, schema=SCHEMA, version=1, spill_dir=spill.path)

    loggers: list[PredictionBuffer] = []
    threads = [threading.Thread(target=lambda: loggers.append(start())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: spill.usage() == (0, 0))
    for logger in loggers:
        logger.close()
    assert sum(b.stats().replayed for b in loggers) == 240
    expected = sorted(i for b in batches for i in b["prediction_id"].to_pylist())
    assert stored_ids(table) == expected


def test_a_spill_directory_serves_one_table(table: MonitorTable, tmp_path: Path) -> None:
    other = MonitorTable(table.location, "fraud", "predictions")
    spill = tmp_path / "spill"
    SpillDir(spill, limit=1 << 20, table_uri=other.uri).put(
        prepare_predictions(pa.table({k: [v] for k, v in ROW.items()}), [0.1], schema=SCHEMA,
                            version=1).table)
    with pytest.raises(InvalidInputError, match=r"holds rows of .*fraud"):
        PredictionBuffer(table, schema=SCHEMA, version=1, spill_dir=spill)
    assert not table.exists()
