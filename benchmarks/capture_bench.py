"""Capture throughput: batched log_predictions vs raw write_deltalake, and the buffered logger.

    python benchmarks/capture_bench.py            # ~1 minute on 2 cores
    python benchmarks/capture_bench.py --quick    # smoke run, a few seconds

Targets (issue 8): a batched log (100k rows x 13 features per call) reaches >= 80% of raw
``write_deltalake`` throughput on the same rows, and the buffered logger takes >= 20,000
single-row ``log()`` calls per second. Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from nbregistry.monitoring.buffer import PredictionBuffer
from nbregistry.monitoring.capture import log_predictions, prepare_predictions
from nbregistry.store.location import Location
from nbregistry.store.monitoring import CONFIGURATION, MonitorTable

NUMERIC, CATEGORICAL = 10, 3
SCHEMA = ([{"name": f"x{i}", "dtype": "double"} for i in range(NUMERIC)]
          + [{"name": f"c{i}", "dtype": "string"} for i in range(CATEGORICAL)])


def features(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {f"x{i}": rng.normal(size=rows) for i in range(NUMERIC)}
    levels = np.array(["north", "south", "east", "west", "centre"])
    for i in range(CATEGORICAL):
        columns[f"c{i}"] = pa.array(levels[rng.integers(0, 5, rows)])
    return pa.table(columns)


def with_day(table: pa.Table) -> pa.Table:
    return table.append_column("day", pc.cast(table["ts"], pa.date32()))


def batched(folder: Path, rows: int, rounds: int) -> dict[str, float]:
    """Median seconds per call: raw write_deltalake of the final rows vs log_predictions."""
    data = [features(rows, seed) for seed in range(rounds)]
    scores = np.random.default_rng(0).random(rows)
    ts = datetime.now(UTC)
    location = Location.parse(folder / "registry", None)
    ours = MonitorTable(location, "bench", "predictions")
    # Raw: the same rows log_predictions writes (ids, ts, version, day), prepared untimed.
    raw_rows = [with_day(prepare_predictions(d, scores, schema=SCHEMA, version=1, ts=ts).table)
                for d in data]
    raw_uri = str(folder / "raw")
    write_deltalake(raw_uri, raw_rows[0], mode="append", partition_by=["day"],
                    configuration=CONFIGURATION)
    raw_table = DeltaTable(raw_uri)
    log_predictions(ours, data[0], scores, schema=SCHEMA, version=1, ts=ts)  # create, warm
    raw_times, our_times = [], []
    for i in range(rounds):  # interleaved, so load changes hit both sides alike
        start = time.perf_counter()
        write_deltalake(raw_table, raw_rows[i], mode="append", partition_by=["day"],
                        schema_mode="merge")
        raw_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        log_predictions(ours, data[i], scores, schema=SCHEMA, version=1, ts=ts)
        our_times.append(time.perf_counter() - start)
    frame = data[0].to_pandas()
    pandas_times = []
    for _ in range(max(2, rounds // 2)):
        start = time.perf_counter()
        log_predictions(ours, frame, scores, schema=SCHEMA, version=1, ts=ts)
        pandas_times.append(time.perf_counter() - start)
    return {"raw": statistics.median(raw_times), "ours": statistics.median(our_times),
            "pandas": statistics.median(pandas_times)}


def buffered(folder: Path, calls: int, threads: int) -> dict[str, float]:
    """Single-row log() calls per second, and end to end (until close() wrote them all)."""
    rows = features(1000, 7).to_pylist()
    table = MonitorTable(Location.parse(folder / "registry", None), "buffered", "predictions")
    buffer = PredictionBuffer(table.append, schema=SCHEMA, version=1)
    per_thread = calls // threads

    def work() -> None:
        log = buffer.log
        for i in range(per_thread):
            log(rows[i % 1000], 0.25)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    logged = time.perf_counter() - start
    buffer.close()
    total = time.perf_counter() - start
    written = table.read(columns=["prediction_id"]).num_rows
    assert written == per_thread * threads, (written, per_thread * threads)
    return {"calls_per_s": written / logged, "end_to_end_per_s": written / total,
            "batches": buffer.stats().batches}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--rows", type=int, default=100_000, help="rows per batched call")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tables")
    args = parser.parse_args()
    rows, rounds = (20_000, 3) if args.quick else (args.rows, 9)
    calls = 40_000 if args.quick else 200_000
    folder = Path(tempfile.mkdtemp(prefix="nbr-capture-bench-"))
    try:
        batch = batched(folder, rows, rounds)
        one = buffered(folder, calls, 1)
        four = buffered(folder / "threads", calls, 4)
    finally:
        if args.keep:
            print(f"tables kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    ratio = batch["raw"] / batch["ours"]
    lines = [
        f"batched, {rows:,} rows x {NUMERIC + CATEGORICAL} features per call, median of "
        f"{rounds} (interleaved):",
        f"  raw write_deltalake      {batch['raw'] * 1000:8.1f} ms  "
        f"{rows / batch['raw']:>12,.0f} rows/s",
        f"  log_predictions (Arrow)  {batch['ours'] * 1000:8.1f} ms  "
        f"{rows / batch['ours']:>12,.0f} rows/s   ratio {ratio:.2f}",
        f"  log_predictions (pandas) {batch['pandas'] * 1000:8.1f} ms  "
        f"{rows / batch['pandas']:>12,.0f} rows/s   ratio {batch['raw'] / batch['pandas']:.2f}",
        f"buffered logger, {calls:,} single-row log() calls (default flush: 10,000 rows / 10 s):",
        f"  1 thread   {one['calls_per_s']:>10,.0f} calls/s   end to end (incl. close) "
        f"{one['end_to_end_per_s']:>10,.0f} rows/s   {one['batches']:.0f} commits",
        f"  4 threads  {four['calls_per_s']:>10,.0f} calls/s   end to end (incl. close) "
        f"{four['end_to_end_per_s']:>10,.0f} rows/s   {four['batches']:.0f} commits",
    ]
    checks = [("batched log >= 80% of raw write_deltalake", ratio >= 0.8),
              ("buffered logger >= 20,000 calls/s (1 thread, end to end)",
               one["end_to_end_per_s"] >= 20_000)]
    print("\n".join(lines))
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
