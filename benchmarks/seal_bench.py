"""What content seals cost: seal() per GB sealed, and verify's seal check per GB. One command:

    python benchmarks/seal_bench.py            # 1 GiB of predictions (~2 min on 2 cores)
    python benchmarks/seal_bench.py --quick    # 256 MiB, a smoke run
    python benchmarks/seal_bench.py --gib 4    # any size

A local predictions table (Delta, partitioned by day) is filled with incompressible rows
(20 random double features) in files of about 64 MiB, as the capture writes them after
compaction. Timed, each in this process, files warm in the page cache (they were just
written; a cold read adds the disk's own throughput):

- the floor: sha256 of every data file, one thread, no nbregistry;
- the first seal (every file hashed), a re-seal with nothing new, a seal after one more
  64 MiB append (only that file hashed), a seal after the hash cache was deleted;
- ``check_seals`` over all the seals (what ``verify()`` runs: every sealed file hashed once);
- after 50 small appends to one day (sealed), the seal check; then after compacting them
  and sealing again, twice: the extra time is the compaction read back row by row (both
  sides) plus hashing the one file it wrote; the first run also pays reading from disk
  what the page cache no longer holds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

MIB = 1024 ** 2
ROW_BYTES = 8 * 23 + 40  # 20 doubles, score, ts, version, label, a 32-char id (parquet)
FILE_MIB = 64


def batch(rows: int, day: int, seed: int) -> object:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
    ts = np.datetime64(start.replace(tzinfo=None), "us") + rng.integers(0, 86_400_000_000, rows)
    columns = {"prediction_id": pa.array([f"{seed:08x}{i:024x}" for i in range(rows)]),
               "ts": pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
               "version": pa.array(np.ones(rows, np.int64))}
    for i in range(20):
        columns[f"x{i}"] = pa.array(rng.normal(i, 1.0, rows))
    columns["score"] = pa.array(rng.random(rows))
    columns["label"] = pa.array(rng.integers(0, 2, rows))
    return pa.table(columns)


def data_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts)


def compaction_bytes(folder: Path, after: int) -> int:
    """Bytes removed and added by the compactions (dataChange = false) after a version."""
    import json

    total = 0
    for commit in sorted((folder / "_delta_log").glob("*.json")):
        if int(commit.stem) <= after:
            continue
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            for kind in ("add", "remove"):
                if kind in action and action[kind].get("dataChange") is False:
                    total += int(action[kind]["size"])
    return total


def timed(fn: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()  # type: ignore[operator]
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="256 MiB")
    parser.add_argument("--keep", action="store_true", help="keep the temporary table")
    args = parser.parse_args()
    gib = 0.25 if args.quick else args.gib

    from nbregistry.store import monitoring
    from nbregistry.store.location import Location
    from nbregistry.store.seals import check_seals, seal

    root = Path(tempfile.mkdtemp(prefix="seal-bench-"))
    try:
        location = Location.parse(root, None)
        table = monitoring.MonitorTable(location, "bench", "predictions")
        monitoring.COMPACT_EVERY = 10 ** 9  # compactions only where the script asks
        per_file = FILE_MIB * MIB // ROW_BYTES
        files = max(1, round(gib * 1024 / FILE_MIB))
        print(f"writing {files} files of ~{FILE_MIB} MiB ({per_file:,} rows each) ...",
              flush=True)
        for i in range(files):
            table.append(batch(per_file, i, i))
        folder = root / table.key
        size = data_bytes(folder)
        gb = size / 1024 ** 3

        def floor() -> None:
            for path in folder.rglob("*.parquet"):
                with open(path, "rb") as handle:
                    hashlib.file_digest(handle, "sha256")

        rows: list[tuple[str, float, str]] = []
        t, _ = timed(floor)
        rows.append(("sha256 of every file, 1 thread (the floor)", t, f"{t / gb:.2f} s/GiB"))
        t, first = timed(lambda: seal(table))
        rows.append(("first seal: every file hashed", t, f"{t / gb:.2f} s/GiB"))
        t, again = timed(lambda: seal(table))
        rows.append(("re-seal, nothing new", t, "fixed cost"))
        table.append(batch(per_file, files, files))
        t, third = timed(lambda: seal(table))
        rows.append((f"seal after one {FILE_MIB} MiB append", t,
                     f"{len(third['file_sha256'])} file hashed"))
        for cache in (root / "monitoring" / "bench" / "hashes").glob("*.json"):
            cache.unlink()
        t, fourth = timed(lambda: seal(table))
        rows.append(("seal with the hash cache deleted", t, "every file again"))
        seals = [first, again, third, fourth]
        size, gb = data_bytes(folder), data_bytes(folder) / 1024 ** 3
        t, problems = timed(lambda: check_seals(location, seals))
        assert problems == [], problems
        rows.append((f"verify's seal check, {len(seals)} seals", t, f"{t / gb:.2f} s/GiB"))

        small = per_file // 50
        for i in range(50):
            table.append(batch(small, 0, 10_000 + i))
        seals.append(seal(table))  # the small files are sealed, then compacted
        checked, problems = timed(lambda: check_seals(location, seals))
        assert problems == [], problems
        rows.append(("seal check after 50 more small appends", checked, "before compaction"))
        before = table.version()
        table.compact()
        rewritten = compaction_bytes(folder, before)
        seals.append(seal(table))
        for run in ("first run", "again, warm"):
            t, problems = timed(lambda: check_seals(location, seals))
            assert problems == [], problems
            rows.append((f"the same after compacting them, {run}", t,
                         f"+{t - checked:.2f} s: {rewritten / MIB:.0f} MiB read back"))

        print(f"\n{gb:.2f} GiB of data files, {sys.version.split()[0]}, "
              f"{os.cpu_count()} cores\n")
        print(f"| {'step':<48} | {'seconds':>8} | note |")
        print(f"|{'-' * 50}|{'-' * 10}|------|")
        for name, seconds, note in rows:
            print(f"| {name:<48} | {seconds:8.2f} | {note} |")
        return 0
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
