"""Per-append cost of the event log's commit paths as the Delta table grows, and whether
deltalake's transaction API with zero retries is a true compare-and-swap.

    python benchmarks/commit_path.py            # at ~100, 1,000 and 3,000 commits (~3 min)
    python benchmarks/commit_path.py --quick    # at ~100 and 500 commits (~30 s)

Paths, each appending one event (one row, one data file, one commit), single writer:

  a  hand-written    ``EventLog.append``: data file + ``_delta_log/N.json`` put-if-absent
  b  transaction     the same data file (``onerow.encode``), an ``AddAction`` with the
                     same statistics, ``DeltaTable.create_write_transaction(..., mode=
                     "append", commit_properties=CommitProperties(max_commit_retries=0))``
                     and ``update_incremental()`` (the DeltaTable object does not advance
                     after its own transaction, and the next one with zero retries would
                     conflict with it)
  b' transaction, no hooks  b with ``PostCommitHookProperties(create_checkpoint=False,
                     cleanup_expired_logs=False)``
  c  write_deltalake ``write_deltalake(dt, rows, mode="append", commit_properties=
                     CommitProperties(max_commit_retries=0))`` on a DeltaTable kept open

A base table is grown with path a (compacting and checkpointing every 50 versions, as the
registry does); at each size it is copied once per path and each path times a window of
appends on its own copy, in interleaved rounds of 10 so background load hits all paths.
Compaction is not timed here (its cost per 50 versions is printed apart). Then the CAS probe:
two DeltaTable objects opened at the same version; the first commits; does the second
(zero retries) fail, or land on top (a rebase)?
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import nearest_rank, progress

from nbregistry.domain.entities import Event
from nbregistry.store import commits, eventlog, onerow
from nbregistry.store.eventlog import EventLog
from nbregistry.store.location import Location

PATHS = ("a", "b", "b'", "c")
LABELS = {"a": "a  hand-written (EventLog.append)",
          "b": "b  create_write_transaction, 0 retries",
          "b'": "b' the same, post-commit hooks off",
          "c": "c  write_deltalake(append), 0 retries"}
Append = Callable[[Event], None]
REFRESHES: list[float] = []  # b's update_incremental() alone, to split its cost


def event(seq: int) -> Event:
    payload = {"n": seq, "note": "x" * 200}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return Event(seq=seq, event_id=uuid.uuid4().hex, ts=datetime.now(UTC), actor="bench",
                 action="register", model="m", version=seq, payload=payload,
                 payload_json=text, prev_hash="0" * 64,
                 hash=hashlib.sha256(f"{seq}{text}".encode()).hexdigest())


class Grower(EventLog):
    """EventLog whose compaction (every 50 versions) is timed, or skipped in a window."""

    def __init__(self, location: Location, *, compact: bool) -> None:
        super().__init__(location)
        self.compacting = compact
        self.compactions: list[tuple[int, float]] = []

    def compact(self) -> None:
        if self.compacting:
            start = time.perf_counter()
            super().compact()
            self.compactions.append((self._version, time.perf_counter() - start))


def hand_written(root: Path) -> Append:
    log = Grower(Location(str(root)), compact=False)
    log.open()
    return lambda e: void(log.append(e))


def void(_: Any) -> None:
    return None


def transaction(root: Path, *, hooks: bool) -> Append:
    from deltalake import CommitProperties, DeltaTable
    from deltalake.transaction import AddAction, PostCommitHookProperties

    location = Location(str(root))
    dt = DeltaTable(location.join(eventlog.TABLE))
    retries = CommitProperties(max_commit_retries=0)
    post = None if hooks else PostCommitHookProperties(create_checkpoint=False,
                                                       cleanup_expired_logs=False)

    def append(e: Event) -> None:
        name, data = commits.file_name(e.seq, e.seq), onerow.encode(e)
        location.put(f"{eventlog.TABLE}/{name}", data)
        add = json.loads(commits.commit_body(name, len(data), e).splitlines()[1])["add"]
        action = AddAction(path=name, size=len(data), partition_values={},
                           modification_time=add["modificationTime"], data_change=True,
                           stats=add["stats"])
        dt.create_write_transaction([action], "append", eventlog.SCHEMA,
                                    commit_properties=retries,
                                    post_commithook_properties=post)
        began = time.perf_counter()
        dt.update_incremental()
        if hooks:
            REFRESHES.append(time.perf_counter() - began)

    return append


def plain_writer(root: Path) -> Append:
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    dt = DeltaTable(Location(str(root)).join(eventlog.TABLE))
    retries = CommitProperties(max_commit_retries=0)

    def append(e: Event) -> None:
        before = dt.version()
        write_deltalake(dt, eventlog.to_table([e]), mode="append", commit_properties=retries)
        if dt.version() != before + 1:  # the object must advance, or the next one conflicts
            raise RuntimeError(f"write_deltalake left the DeltaTable at {dt.version()}")

    return append


def appender(path: str, root: Path) -> Append:
    if path == "a":
        return hand_written(root)
    if path == "c":
        return plain_writer(root)
    return transaction(root, hooks=path == "b")


def grow(log: Grower, version: int, seq: list[int]) -> None:
    while log.version < version:
        try:
            log.append(event(seq[0] + 1))
        except eventlog.CommitConflict:  # our own compaction took the version, as in use
            log.read_new(after_seq=seq[0])
            continue
        seq[0] += 1


def measure(base: Path, work: Path, window: int, seq: list[int]) -> dict[str, list[float]]:
    """Time ``window`` appends per path, each on its own copy of ``base``."""
    appends: dict[str, Append] = {}
    for path in PATHS:
        copy = work / f"path-{PATHS.index(path)}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base, copy)
        appends[path] = appender(path, copy)
    samples: dict[str, list[float]] = {p: [] for p in PATHS}
    first = seq[0]
    for append in appends.values():  # warm-up (put-if-absent probe, first snapshot)
        append(event(first + 1))
    REFRESHES.clear()
    for start in range(0, window, 10):
        for path, append in appends.items():
            for i in range(start, min(start + 10, window)):
                e = event(first + 2 + i)
                began = time.perf_counter()
                append(e)
                samples[path].append(time.perf_counter() - began)
    for path in PATHS:
        shutil.rmtree(work / f"path-{PATHS.index(path)}", ignore_errors=True)
    return samples


def cas_probe(work: Path) -> dict[str, str]:
    """Two DeltaTables at the same version; the first commits; what does the second do?"""
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    root = work / "cas"
    log = Grower(Location(str(root)), compact=True)
    log.create(event(0))
    log.open()
    uri = log.uri
    verdicts = {}
    for name, retries in (("create_write_transaction, max_commit_retries=0", 0),
                          ("create_write_transaction, default retries", None)):
        first, second = DeltaTable(uri), DeltaTable(uri)
        at = first.version()
        transaction_on(first, root, event(at + 1), retries)
        verdicts[name] = _second(lambda dt=second, n=at + 2, r=retries:  # type: ignore[misc]
                                 transaction_on(dt, root, event(n), r), uri, at)
    first, second = DeltaTable(uri), DeltaTable(uri)
    at = first.version()
    zero = CommitProperties(max_commit_retries=0)
    write_deltalake(first, eventlog.to_table([event(at + 1)]), mode="append",
                    commit_properties=zero)
    verdicts["write_deltalake(append), max_commit_retries=0"] = _second(
        lambda: write_deltalake(second, eventlog.to_table([event(at + 2)]), mode="append",
                                commit_properties=zero), uri, at)
    return verdicts


def transaction_on(dt: Any, root: Path, e: Event, retries: int | None) -> None:
    from deltalake import CommitProperties
    from deltalake.transaction import AddAction

    location = Location(str(root))
    name, data = commits.file_name(e.seq, e.seq), onerow.encode(e)
    location.put(f"{eventlog.TABLE}/{name}", data)
    add = json.loads(commits.commit_body(name, len(data), e).splitlines()[1])["add"]
    dt.create_write_transaction(
        [AddAction(path=name, size=len(data), partition_values={},
                   modification_time=add["modificationTime"], data_change=True,
                   stats=add["stats"])],
        "append", eventlog.SCHEMA,
        commit_properties=CommitProperties(max_commit_retries=retries))


def _second(commit: Callable[[], None], uri: str, at: int) -> str:
    from deltalake import DeltaTable

    try:
        commit()
    except Exception as exc:
        now = DeltaTable(uri).version()
        return (f"FAILS ({type(exc).__name__}: {str(exc).splitlines()[0]}); table stays at "
                f"version {now} = {at} + the first writer's commit: compare-and-swap")
    now = DeltaTable(uri).version()
    return (f"LANDS at version {now} on top of the first writer's {at + 1}: a rebase, "
            "not compare-and-swap")


def figure(samples: list[float]) -> str:
    ms = sorted(s * 1e3 for s in samples)
    return f"{statistics.median(ms):6.2f} / {nearest_rank(ms, 0.95):6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 100 and 500, 20 appends")
    parser.add_argument("--sizes", type=int, nargs="+", help="Delta versions to time at")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tables")
    args = parser.parse_args()
    sizes = args.sizes or ([100, 500] if args.quick else [100, 1000, 3000])
    window = 20 if args.quick else 40
    work = Path(tempfile.mkdtemp(prefix="nbr-commit-path-"))
    import deltalake

    progress("commit_path", f"deltalake {deltalake.__version__}, work dir {work}")
    base = work / "base"
    log = Grower(Location(str(base)), compact=True)
    log.create(event(0))
    log.open()
    seq = [0]
    results: dict[int, dict[str, list[float]]] = {}
    compactions: dict[int, list[float]] = {}
    for size in sizes:
        grow(log, size, seq)
        compactions[size] = [s for v, s in log.compactions if size - 300 < v <= size]
        progress("commit_path", f"table at version {log.version}: timing {window} appends "
                                "per path")
        results[size] = measure(base, work, window, seq)
        results[size]["refresh"] = list(REFRESHES)
    verdicts = cas_probe(work)
    report(sizes, results, compactions, verdicts, window)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"commit_path{'-quick' if args.quick else ''}.json").write_text(json.dumps({
        "deltalake": deltalake.__version__, "window": window, "cas": verdicts,
        "ms": {str(s): {p: [x * 1e3 for x in v] for p, v in r.items()}
               for s, r in results.items()}}, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    os._exit(0)  # deltalake's pyarrow bridge was seen to abort at interpreter exit


def report(sizes: list[int], results: dict[int, dict[str, list[float]]],
           compactions: dict[int, list[float]], verdicts: dict[str, str], window: int) -> None:
    print(f"\nPer-append latency, ms p50 / p95 ({window} appends per cell), by Delta version")
    print("| path | " + " | ".join(f"@{s:,}" for s in sizes) + " |")
    print("| --- |" + " --- |" * len(sizes))
    for path in PATHS:
        cells = " | ".join(figure(results[s][path]) for s in sizes)
        print(f"| {LABELS[path]} | {cells} |")
        if path == "b":
            cells = " | ".join(figure(results[s]["refresh"]) for s in sizes)
            print(f"| .. of which b's update_incremental() | {cells} |")
    cells = " | ".join(
        f"{statistics.median(compactions[s]) * 1e3:6.1f}" if compactions[s] else "-"
        for s in sizes)
    print(f"| a's compact + checkpoint, once per 50 versions (median) | {cells} |")
    print("\nCompare-and-swap probe (two DeltaTables at the same version; the first commits):")
    for name, verdict in verdicts.items():
        print(f"- {name}: {verdict}")


if __name__ == "__main__":
    main()
