"""Reading the Delta log without deltalake: every commit (what verify reads) and the last
checkpoint plus the commits after it (what opening reads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nbregistry as nbr
from conftest import TinyModel, from_storage
from nbregistry.store import commits
from nbregistry.store.eventlog import TABLE
from nbregistry.store.location import Location
from nbregistry.store.replay import Replay, _apply, from_checkpoint, replay


def reference(location: Location) -> Replay:
    """The same replay with a JSON parse of every line, commit by commit."""
    out = Replay()
    folder = Path(location.uri, TABLE, commits.LOG)
    for path in sorted(folder.glob("*.json")):
        actions = [json.loads(line) for line in path.read_text().splitlines() if line]
        _apply(out, actions, int(path.stem), None)  # type: ignore[arg-type]
        out.version = int(path.stem)
    out.files = {p: commits.entry_of(a) if isinstance(a, dict) else a  # type: ignore
                 for p, a in out.files.items()}
    return out


@pytest.fixture
def busy(registry: nbr.Registry, monkeypatch: pytest.MonkeyPatch) -> Location:
    from nbregistry.store import eventlog

    monkeypatch.setattr(eventlog, "FANOUT", 3)
    monkeypatch.setattr(eventlog, "CHECKPOINT_EVERY", 10)
    registry.register(TinyModel(), "m")
    for i in range(30):
        registry.comment("m", 1, f"note {i}")
    return Location.parse(registry.uri, None)


def test_the_fast_replay_reads_what_a_full_parse_reads(busy: Location) -> None:
    fast, slow = replay(busy, TABLE), reference(busy)
    assert fast.files == slow.files and fast.version == slow.version
    assert sorted(fast.written) == list(range(1, 33))
    assert fast.protocol == slow.protocol and fast.configuration == slow.configuration


def test_odd_lines_fall_back_to_a_full_parse(busy: Location) -> None:
    folder = Path(busy.uri, TABLE, commits.LOG)
    version = max(int(p.stem) for p in folder.glob("*.json")) + 1
    live = sorted(replay(busy, TABLE).files)
    quoted = live[0].replace("e0", "e%30", 1)  # the same path, percent-encoded
    lines = [{"commitInfo": {"operation": "OPTIMIZE"}},
             {"remove": {"path": quoted, "dataChange": False}},
             {"remove": {"dataChange": False, "path": live[1]}}]
    (folder / f"{version:020d}.json").write_text("\n".join(json.dumps(x) for x in lines))
    found = replay(busy, TABLE)
    assert found.version == version and not found.unreadable
    assert set(found.files) == set(live) - set(live[:2])


def test_opening_reads_the_checkpoint_and_the_commits_after_it(busy: Location) -> None:
    full, quick = replay(busy, TABLE), from_checkpoint(busy, TABLE)
    assert quick.files == full.files and quick.version == full.version
    assert quick.configuration == full.configuration and quick.protocol == full.protocol
    assert Path(busy.uri, TABLE, commits.LOG, "_last_checkpoint").exists()


def test_commits_after_the_checkpoint_that_merge_its_files_away(busy: Location) -> None:
    """The commits after a checkpoint are read like replay() reads them (no JSON parse of the
    lines of nbregistry's shape): a merge among them removes files the checkpoint lists."""
    reg = nbr.open_registry(busy.uri, user="alice")
    for i in range(3):
        reg.comment("m", 1, f"before {i}")
    reg.ledger.log.checkpoint()
    listed = from_checkpoint(busy, TABLE)
    singles = {p for p, e in listed.files.items() if e.records == 1}
    for i in range(4):  # FANOUT (3) one-event files live again: merged, with the listed ones
        reg.comment("m", 1, f"after {i}")
    quick = from_checkpoint(busy, TABLE)
    assert quick.version > listed.version and singles and not singles & set(quick.files)
    slow = reference(busy)
    assert quick.files == slow.files and quick.version == slow.version
    assert quick.protocol == slow.protocol and quick.configuration == slow.configuration


def test_a_damaged_checkpoint_opens_from_the_commits(busy: Location,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    folder = Path(busy.uri, TABLE, commits.LOG)
    for checkpoint in folder.glob("*.checkpoint.parquet"):
        checkpoint.write_bytes(b"not parquet")
    reg = from_storage(busy.uri)
    assert "checkpoint" in caplog.text
    assert reg.history().num_rows == 32
    report = nbr.verify(busy.uri, artifacts=False)
    assert [c.name for c in report.checks if not c.ok] == ["checkpoints"]
