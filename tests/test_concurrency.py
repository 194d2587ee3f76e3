"""Many writers on one local registry: real spawned processes and threads, real Delta table.

The sequence must never fork, repeat or skip: versions 1..N each handed out once, the log
gap-free and hash-chained, every artifact present.
"""

from __future__ import annotations

import queue as queue_module
import threading
from pathlib import Path

import pytest

import nbregistry as nbr
import workers


def open_concurrently(uri: str, threads: int) -> list[BaseException]:
    """``threads`` threads call open_registry(uri) at once; return what they raised."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            barrier.wait(timeout=60)
            nbr.open_registry(uri, user="opener")
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=opener) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert not any(t.is_alive() for t in pool), "an opener hung"
    return errors


def test_three_processes_register_and_alias(tmp_path: Path) -> None:
    uri = str(tmp_path / "registry")
    got = workers.run_processes(uri, processes=3, iterations=5)
    workers.check_register_alias_log(nbr.open_registry(uri, user="auditor"), got)


def test_processes_race_to_create_the_registry(tmp_path: Path) -> None:
    """Nobody created the registry beforehand: the workers race for the genesis commit too,
    and exactly one genesis event must win."""
    uri = str(tmp_path / "registry")
    got = workers.run_processes(uri, processes=3, iterations=2, create_first=False)
    reg = nbr.open_registry(uri, user="auditor")
    workers.check_register_alias_log(reg, got)
    assert reg.history().column("actor").to_pylist()[0] in {workers.worker_user(w)
                                                            for w in got}


def test_threads_race_to_create_the_registry(tmp_path: Path) -> None:
    """Writers opening a registry that does not exist yet race for the genesis commit:
    exactly one genesis event (seq 1, Delta version 0) may land; the losers must open the
    winner's log. Threads start within microseconds of each other, so the race is hit on
    most rounds (processes hit it too, just less often)."""
    for round_ in range(20):
        uri = str(tmp_path / f"registry-{round_}")
        errors = open_concurrently(uri, threads=4)
        assert not errors, f"round {round_}: {errors[0]!r}"
        reg = nbr.open_registry(uri, user="auditor")
        history = reg.history()
        assert history.column("action").to_pylist() == ["create_registry"], (
            f"round {round_}: {history.num_rows} events")
        assert reg.verify().ok
        commits = sorted(p.name for p in Path(uri, "_registry", "events", "_delta_log")
                         .glob("*.json"))
        assert commits == [f"{0:020d}.json"], f"round {round_}: extra genesis commits {commits}"


def test_threads_each_with_their_own_registry(tmp_path: Path) -> None:
    """Threads of one process, each opening its own Registry on the same uri."""
    uri = str(tmp_path / "registry")
    nbr.open_registry(uri, user="creator")
    threads, iterations = 4, 10
    barrier = threading.Barrier(threads)
    got: dict[int, list[int]] = {}
    errors: queue_module.Queue[BaseException] = queue_module.Queue()

    def run(worker: int) -> None:
        try:
            barrier.wait(timeout=60)
            got[worker] = workers.register_and_alias(uri, worker, iterations)
        except BaseException as exc:
            errors.put(exc)

    pool = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not any(t.is_alive() for t in pool), "a writer thread hung"
    assert errors.empty(), errors.get()
    assert sorted(got) == list(range(threads))
    workers.check_register_alias_log(nbr.open_registry(uri, user="auditor"), got)


@pytest.mark.slow
def test_eight_processes_times_twenty_five(tmp_path: Path) -> None:
    uri = str(tmp_path / "registry")
    got = workers.run_processes(uri, processes=8, iterations=25)
    reg = nbr.open_registry(uri, user="auditor")
    workers.check_register_alias_log(reg, got)
    assert reg.search(workers.MODEL).num_rows == 200
    assert reg.history().num_rows == 1 + 200 + 200


def test_one_registry_shared_by_threads(tmp_path: Path) -> None:
    """A panel's watcher thread and the notebook share one Registry object."""
    reg = nbr.open_registry(str(tmp_path / "shared"), user="alice")
    other = nbr.open_registry(str(tmp_path / "shared"), user="bob")
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                reg.head  # noqa: B018 - refreshes: folds what `other` wrote
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            other.register(workers.Model(i, i), workers.MODEL)
            reg.set_alias(workers.MODEL, "champion", i + 1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert reg.head == other.head and reg.verify().ok
