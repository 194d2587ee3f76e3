"""Worker functions for tests that run the registry in other processes and threads.

They live in an importable module (not in a test file or ``conftest``) so that
``multiprocessing`` "spawn" children can unpickle them by reference, and so that a model
pickled by a child (``workers.Model``) can be unpickled again by the parent: pytest puts
this folder on ``sys.path`` and "spawn" children inherit the parent's ``sys.path``. Plain
subprocesses start through :func:`child_command`, which does the same explicitly.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping
from typing import Any

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
MODEL = "credit_risk"
ALIAS = "champion"


class Model:
    """A small picklable stand-in for a fitted model, unique per (worker, iteration)."""

    def __init__(self, worker: int, iteration: int) -> None:
        self.worker = worker
        self.iteration = iteration
        self.coef = [worker + iteration / 1000.0] * 8

    def predict(self, xs: list[float]) -> list[float]:
        return [x * self.coef[0] for x in xs]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Model) and other.worker == self.worker
                and other.iteration == self.iteration and other.coef == self.coef)

    def __hash__(self) -> int:
        return hash((self.worker, self.iteration))


def worker_user(worker: int) -> str:
    return f"worker-{worker}"


def register_and_alias(uri: str, worker: int, iterations: int,
                       storage_options: Mapping[str, str] | None = None) -> list[int]:
    """Open the registry as ``worker-<n>`` and do ``iterations`` × (register, set_alias);
    return the versions this worker was given, in order."""
    import nbregistry as nbr

    options: dict[str, Any] = {}
    if storage_options:
        options["storage_options"] = dict(storage_options)
    reg = nbr.open_registry(uri, user=worker_user(worker), **options)
    got: list[int] = []
    for i in range(iterations):
        mv = reg.register(Model(worker, i), MODEL,
                          metrics={"auc": 0.5 + worker / 100 + i / 10_000,
                                   "worker": worker, "iteration": i},
                          tags={"worker": worker, "iteration": i})
        moved = reg.set_alias(MODEL, ALIAS, mv.version)
        if moved.version != mv.version or ALIAS not in moved.aliases:
            raise AssertionError(f"set_alias returned {moved!r} for version {mv.version}")
        got.append(mv.version)
    return got


def process_entry(queue: Any, barrier: Any, uri: str, worker: int, iterations: int,
                  storage_options: Mapping[str, str] | None = None) -> None:
    """Target of a spawned ``Process``: wait for all peers, run, report through ``queue``
    ``(worker, versions, None)`` or ``(worker, None, traceback_text)``."""
    if TESTS_DIR not in sys.path:  # belt and braces: spawn normally copies sys.path
        sys.path.insert(0, TESTS_DIR)
    try:
        if barrier is not None:
            barrier.wait(timeout=120)
        queue.put((worker, register_and_alias(uri, worker, iterations, storage_options), None))
    except BaseException:  # report everything, including Rust panics
        queue.put((worker, None, traceback.format_exc()))


# -- fork guard --------------------------------------------------------------------------

def report_call(queue: Any, what: str, uri: str | None = None, reg: Any = None) -> None:
    """Run one registry call in this (child) process and report
    ``("ok", result)`` or ``(exception class name, message)`` through ``queue``."""
    try:
        import nbregistry as nbr

        if what == "open":
            result: Any = nbr.open_registry(uri, user="child").head
        elif what == "get":
            result = reg.get(MODEL).version
        elif what == "open_get":
            result = nbr.open_registry(uri, user="child").get(MODEL).version
        elif what == "write":
            result = nbr.open_registry(uri, user="child").register(Model(2, 2), MODEL).version
        else:
            raise ValueError(what)
        queue.put(("ok", result))
    except BaseException as exc:  # PanicException derives from BaseException
        queue.put((type(exc).__name__, str(exc)))


def deltalake_then_fork(queue: Any, table_uri: str, registry_uri: str) -> None:
    """In a fresh (spawned) process: use deltalake directly, never through nbregistry,
    then fork a child that opens a registry; pass on what the child reported."""
    import multiprocessing

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    write_deltalake(table_uri, pa.table({"x": [1, 2, 3]}))
    DeltaTable(table_uri).to_pyarrow_table()
    ctx = multiprocessing.get_context("fork")
    inner = ctx.Queue()
    child = ctx.Process(target=report_call, args=(inner, "open", registry_uri))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        queue.put(("hung", "the forked child did not finish in 60 s"))
        return
    queue.put(inner.get(timeout=10) if not inner.empty() else
              ("died", f"exit code {child.exitcode}"))


# -- crash trials ------------------------------------------------------------------------

def crash_loop(uri: str, worker: int, announce_compaction: bool = False) -> None:
    """Register and alias forever (until killed). With ``announce_compaction``, print
    ``COMPACT`` (flushed) right before each real compaction so the parent can kill it
    mid-compaction."""
    import nbregistry as nbr
    from nbregistry.store import eventlog

    if announce_compaction:
        real = eventlog.EventLog.compact

        def compact(self: Any, **options: Any) -> None:
            print("COMPACT", flush=True)
            real(self, **options)
            print("COMPACTED", flush=True)

        eventlog.EventLog.compact = compact  # type: ignore[method-assign]
    reg = nbr.open_registry(uri, user=worker_user(worker))
    print("OPEN", flush=True)
    i = 0
    while True:
        mv = reg.register(Model(worker, i), MODEL, metrics={"worker": worker, "iteration": i})
        reg.set_alias(MODEL, ALIAS, mv.version)
        i += 1


def child_command(call: str) -> list[str]:
    """``python -c`` that can import this module (for plain subprocesses)."""
    return [sys.executable, "-c",
            f"import sys; sys.path.insert(0, {TESTS_DIR!r}); import workers; workers.{call}"]


# -- invariants checked by the parent ------------------------------------------------------

def check_register_alias_log(reg: Any, per_worker: Mapping[int, list[int]]) -> None:
    """After every worker ran ``register_and_alias``: versions are exactly 1..N, each
    worker got distinct versions (in increasing order), the log is 1 genesis + N registers
    + N set_alias with seq 1..2N+1 gap-free, each version's creator and model are the
    worker's, and the audit trail verifies."""
    total = sum(len(v) for v in per_worker.values())
    everything = [v for versions in per_worker.values() for v in versions]
    assert sorted(everything) == list(range(1, total + 1)), "versions handed out twice or skipped"
    for worker, versions in per_worker.items():
        assert versions == sorted(versions), f"worker {worker} saw versions go backwards"

    found = reg.search(MODEL)
    assert found.column("version").to_pylist() == list(range(1, total + 1))
    by_version = dict(zip(found.column("version").to_pylist(),
                          found.column("created_by").to_pylist(), strict=True))
    for worker, versions in per_worker.items():
        for v in versions:
            assert by_version[v] == worker_user(worker)

    history = reg.history()
    seqs = history.column("seq").to_pylist()
    assert seqs == list(range(1, 2 * total + 2)), "seq is not gap-free 1..2N+1"
    assert len(set(history.column("hash").to_pylist())) == len(seqs)
    actions = history.column("action").to_pylist()
    assert actions[0] == "create_registry"
    assert actions.count("register") == total and actions.count("set_alias") == total
    registered = [v for a, v in zip(actions, history.column("version").to_pylist(), strict=True)
                  if a == "register"]
    assert registered == list(range(1, total + 1)), "versions not assigned in log order"
    # Each worker registered its version before aliasing it; the alias ends where the
    # last set_alias event put it.
    aliased = [v for a, v in zip(actions, history.column("version").to_pylist(), strict=True)
               if a == "set_alias"]
    assert sorted(aliased) == list(range(1, total + 1))
    assert reg.get(f"{MODEL}@{ALIAS}").version == aliased[-1]

    tags = found.column("tags").to_pylist()
    for v, pairs in zip(found.column("version").to_pylist(), tags, strict=True):
        tag = dict(pairs)
        expected = Model(int(tag["worker"]), int(tag["iteration"]))
        assert reg.load(MODEL, v, trusted=True) == expected

    report = reg.verify()
    assert report.ok, report.problems
    assert (report.events, report.artifacts, report.head_seq) == (2 * total + 1, total,
                                                                  2 * total + 1)


def run_processes(uri: str, processes: int, iterations: int, *, create_first: bool = True,
                  storage_options: dict[str, str] | None = None) -> dict[int, list[int]]:
    """Start ``processes`` spawned workers together (a barrier), each doing ``iterations``
    register + set_alias; return the versions each one got."""
    import multiprocessing

    import nbregistry as nbr

    if create_first:
        nbr.open_registry(uri, user="creator", storage_options=storage_options)
    main = sys.modules["__main__"]
    if not hasattr(main, "__spec__"):
        main.__spec__ = None  # an IPython shell in this process replaced __main__ without one
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(processes)
    procs = [ctx.Process(target=process_entry,
                         args=(results, barrier, uri, w, iterations, storage_options))
             for w in range(processes)]
    for p in procs:
        p.start()
    got: dict[int, list[int]] = {}
    errors: list[str] = []
    try:
        for _ in procs:
            worker, versions, error = results.get(timeout=300)
            if error is not None:
                errors.append(f"worker {worker}:\n{error}")
            else:
                got[worker] = versions
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
    assert not errors, "\n".join(errors)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    assert all(len(v) == iterations for v in got.values())
    return got
