"""A second handle in a process copies the state of one already open there (instead of
reading and folding the log again), and only while storage still vouches for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nbregistry as nbr
from conftest import TinyModel, from_storage
from nbregistry.registry import snapshot
from nbregistry.store import commits
from nbregistry.store.eventlog import TABLE
from nbregistry.store.location import Location


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The storage keys read from now on."""
    seen: list[str] = []
    real_one, real_many = Location.read_optional, Location.read_many

    def one(self: Location, key: str) -> bytes | None:
        seen.append(key)
        return real_one(self, key)

    def many(self: Location, keys: list[str]) -> object:
        seen.extend(keys)
        return real_many(self, keys)

    monkeypatch.setattr(Location, "read_optional", one)
    monkeypatch.setattr(Location, "read_many", many)
    return seen


def written(registry_uri: str, n: int = 12) -> nbr.Registry:
    reg = nbr.open_registry(registry_uri, user="alice")
    for i in range(n):
        reg.register(TinyModel(i), "m", tags={"i": str(i)})
        reg.set_alias("m", "champion", i + 1)
    return reg


def test_a_second_handle_reads_almost_nothing(registry_uri: str, reads: list[str]) -> None:
    first = written(registry_uri)
    reads.clear()
    second = nbr.open_registry(registry_uri, user="bob")
    assert second.get("m@champion") == first.get("m@champion")
    assert len(reads) <= 3, reads  # the head's commit, and probes for newer ones
    cold = from_storage(registry_uri, user="carol")
    assert snapshot.dump(second.ledger.state) == snapshot.dump(cold.ledger.state)
    assert [e.hash for e in second.ledger.state.all_events()] == [
        e.hash for e in cold.ledger.state.all_events()]
    assert second.search("m").equals(cold.search("m"))


def test_a_copy_writes_on_and_the_first_handle_sees_it(registry_uri: str) -> None:
    first = written(registry_uri, 3)
    second = nbr.open_registry(registry_uri, user="bob")
    assert second.register(TinyModel(9), "m").version == 4
    assert first.refresh().get("m").version == 4
    assert second.verify().ok and first.head == second.head


def test_a_cut_log_is_read_from_storage(registry_uri: str) -> None:
    first = written(registry_uri, 5)  # 11 events, log versions 0..10, no merge yet
    folder = Path(registry_uri, TABLE, commits.LOG)
    for version in (9, 10):
        (folder / f"{version:020d}.json").unlink()
    second = nbr.open_registry(registry_uri, user="bob")
    assert second.head[0] == 9 and first.head[0] == 11
    assert second.get("m@champion").version == 4


def test_a_head_commit_naming_another_event_is_read_from_storage(registry_uri: str,
                                                                 reads: list[str]) -> None:
    first = written(registry_uri, 2)
    last = Path(registry_uri, TABLE, commits.LOG, f"{first.ledger.log.version:020d}.json")
    last.write_bytes(last.read_bytes().replace(first.head[1].encode(), b"0" * 64))
    reads.clear()
    second = nbr.open_registry(registry_uri, user="bob")
    assert len(reads) > 5  # not a copy: the whole log was read
    assert second.head == first.head  # (the rows are intact; only the commit's note changed)


def test_a_state_being_changed_is_not_copied(registry_uri: str, reads: list[str]) -> None:
    first = written(registry_uri, 3)
    first.ledger.state.mutations += 1  # as while another thread applies an event to it
    reads.clear()
    try:
        second = nbr.open_registry(registry_uri, user="bob")
    finally:
        first.ledger.state.mutations += 1
    assert second.head == first.head
    assert len(reads) > 7  # the whole log was read


def test_events_written_elsewhere_meanwhile_are_read(registry_uri: str) -> None:
    first = written(registry_uri, 2)
    code = (f"import nbregistry as nbr\nreg = nbr.open_registry({registry_uri!r}, user='bob')\n"
            "reg.register({'w': 1}, 'm')\nreg.set_alias('m', 'champion', 3)\n")
    src = str(Path(nbr.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert first.ledger.state.seq == 5
    second = nbr.open_registry(registry_uri, user="carol")  # copies first, then reads on
    assert second.head[0] == 7
    assert second.get("m@champion").version == 3
    assert snapshot.dump(second.ledger.state) == snapshot.dump(
        from_storage(registry_uri, user="dave").ledger.state)
