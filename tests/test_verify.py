"""Tamper evidence: every kind of rewrite is caught; an untouched registry always verifies."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.store.blobs import key_for


def populated(uri: str) -> nbr.Registry:
    reg = nbr.open_registry(uri, user="alice")
    for w in range(3):
        reg.register(TinyModel(w), "m", metrics={"auc": 0.5 + w / 10})
    reg.set_alias("m", "champion", 2)
    return reg


def file_holding(uri: str, seq: int) -> str:
    table = DeltaTable(f"{uri}/_registry/events")
    for path in table.file_uris():
        if seq in pq.read_table(path).column("seq").to_pylist():
            return str(path)
    raise AssertionError(f"no file holds seq {seq}")


def rewrite(path: str, fn: object) -> None:
    table = pq.read_table(path)
    pq.write_table(fn(table), path)  # type: ignore[operator]


def set_column(table: object, name: str, seq: int, value: object) -> object:
    import pyarrow as pa

    t: pa.Table = table  # type: ignore[assignment]
    column = [value if s == seq else v for s, v in zip(t.column("seq").to_pylist(),
                                                        t.column(name).to_pylist(), strict=True)]
    return t.set_column(t.schema.get_field_index(name), name, pa.array(column, t.schema.field(
        name).type))


def assert_broken(uri: str, kind: str) -> nbr.VerifyReport:
    report = nbr.verify(uri)
    assert not report.ok and kind in {p.kind for p in report.problems}, report
    with pytest.raises(nbr.IntegrityError):
        nbr.open_registry(uri).get("m@champion")
    return report


def test_untouched_registry_verifies(registry_uri: str) -> None:
    reg = populated(registry_uri)
    report = reg.verify()
    assert report.ok and report.events == 5 and report.artifacts == 3
    assert (report.head_seq, report.head_hash) == reg.head
    assert nbr.verify(registry_uri).ok


def test_rewritten_actor_is_caught(registry_uri: str) -> None:
    populated(registry_uri)
    rewrite(file_holding(registry_uri, 3), lambda t: set_column(t, "actor", 3, "mallory"))
    assert_broken(registry_uri, "hash")


def test_rewritten_payload_is_caught(registry_uri: str) -> None:
    populated(registry_uri)
    path = file_holding(registry_uri, 2)
    payload = pq.read_table(path).column("payload").to_pylist()[0]
    forged = payload.replace('"auc":0.5', '"auc":0.99')
    assert forged != payload
    rewrite(path, lambda t: set_column(t, "payload", 2, forged))
    assert_broken(registry_uri, "hash")


def test_dropped_event_row_is_caught(registry_uri: str) -> None:
    populated(registry_uri)
    path = file_holding(registry_uri, 3)
    rewrite(path, lambda t: t.filter(pc.not_equal(t.column("seq"), 3)))
    report = assert_broken(registry_uri, "gap")
    assert any(p.seq == 4 for p in report.problems)


def test_deleted_event_file_is_caught(registry_uri: str) -> None:
    populated(registry_uri)
    os.remove(file_holding(registry_uri, 4))
    assert_broken(registry_uri, "missing_file")


def test_overwritten_artifact_is_caught(registry_uri: str) -> None:
    reg = populated(registry_uri)
    blob = Path(registry_uri, key_for(reg.get("m", 2).sha256))
    blob.write_bytes(b"not the model")
    report = nbr.verify(registry_uri)
    assert [p.kind for p in report.problems] == ["artifact_modified"]
    with pytest.raises(nbr.IntegrityError, match="was modified"):
        reg.load("m", 2, trusted=True)
    assert reg.load("m", 1, trusted=True) == TinyModel(0)


def test_deleted_artifact_is_caught(registry_uri: str) -> None:
    reg = populated(registry_uri)
    Path(registry_uri, key_for(reg.get("m", 1).sha256)).unlink()
    assert [p.kind for p in nbr.verify(registry_uri).problems] == ["artifact_missing"]
    with pytest.raises(nbr.NotFoundError, match="missing"):
        reg.load("m", 1, trusted=True)


def test_truncated_tail_is_caught_against_a_recorded_head(registry_uri: str) -> None:
    reg = populated(registry_uri)
    head = reg.head
    log = Path(registry_uri, "_registry", "events", "_delta_log")
    last = max(log.glob("*.json"))
    last.unlink()
    fresh = nbr.open_registry(registry_uri)
    assert fresh.head[0] == head[0] - 1  # a chain alone cannot see a cut tail...
    report = fresh.verify(expected_head=head)  # ...a head recorded elsewhere can
    assert not report.ok and report.problems[0].kind == "truncated"


def test_verify_on_empty_location(tmp_path: Path) -> None:
    report = nbr.verify(str(tmp_path / "nothing"))
    assert not report.ok and report.problems[0].kind == "missing"


OPS = st.lists(st.tuples(st.sampled_from(["register", "alias", "unalias"]),
                         st.sampled_from(["a", "b"]), st.integers(1, 4)), max_size=12)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_sequence_of_operations_verifies(tmp_path: Path, ops: list[tuple[str, str, int]]
                                             ) -> None:
    uri = str(tmp_path / f"reg-{len(os.listdir(tmp_path))}")
    reg = nbr.open_registry(uri)
    for op, name, n in ops:
        try:
            if op == "register":
                reg.register(TinyModel(n), name)
            elif op == "alias":
                reg.set_alias(name, f"a{n}", n)
            else:
                reg.delete_alias(name, f"a{n}")
        except nbr.NotFoundError:
            pass
    report = reg.verify()
    assert report.ok, report
    assert report.events == reg.head[0]


# -- a long log: the commits are replayed in a child process while the files are read ------

@pytest.fixture
def in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbregistry.registry import verify

    monkeypatch.setattr(verify, "PARALLEL_FROM", 0)


def test_the_replay_in_a_child_process_finds_what_the_one_here_does(
        registry_uri: str, in_parallel: None) -> None:
    reg = populated(registry_uri)
    report = nbr.verify(registry_uri)
    assert report.ok and report.events == reg.head[0]
    os.remove(file_holding(registry_uri, 3))
    assert {p.kind for p in nbr.verify(registry_uri).problems} >= {"missing_file"}


def test_a_checkpoint_that_disagrees_with_the_commits_loses(
        registry_uri: str, in_parallel: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbregistry.registry import verify
    from nbregistry.store.eventlog import EventLog

    populated(registry_uri)
    real = EventLog.snapshot

    def hiding(self: EventLog) -> object:  # a checkpoint that leaves a file out
        found = real(self)
        found.files.pop(sorted(found.files)[-1])
        return found

    walked: list[int] = []
    real_walk = verify.walk_log
    monkeypatch.setattr(EventLog, "snapshot", hiding)
    monkeypatch.setattr(verify, "walk_log", lambda *a, **k: walked.append(1) or real_walk(*a, **k))
    assert nbr.verify(registry_uri).ok  # every event, read again from the commits' files
    assert len(walked) == 2


@pytest.mark.parametrize("python", ["/bin/false", "/no/such/python"])
def test_a_child_that_cannot_replay_leaves_it_to_this_process(
        registry_uri: str, in_parallel: None, python: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import sys

    populated(registry_uri)
    monkeypatch.setattr(sys, "executable", python)
    assert nbr.verify(registry_uri).ok
    assert ("replaying here" in caplog.text) == (python == "/bin/false")
