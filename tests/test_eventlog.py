"""The hand-written Delta commits, checked: protocol, properties, put-if-absent."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.store import location as location_module
from nbregistry.store.commits import writer_refusal
from nbregistry.store.location import Location


def events_table(uri: str) -> DeltaTable:
    return DeltaTable(f"{uri}/_registry/events")


@pytest.mark.parametrize("properties, named", [
    ({"delta.appendOnly": "false"}, "delta.appendOnly was turned off"),
    ({"delta.enableChangeDataFeed": "true"}, "change data feed"),
])
def test_a_table_changed_behind_our_back_refuses_appends_but_reads(
        registry_uri: str, properties: dict[str, str], named: str) -> None:
    reg = nbr.open_registry(registry_uri, user="alice")
    reg.register(TinyModel(1), "m")
    events_table(registry_uri).alter.set_table_properties(properties, raise_if_not_exists=False)
    before = reg.head
    # The open registry notices the change on its next refresh; a new one on open.
    for client in (reg, nbr.open_registry(registry_uri, user="alice")):
        with pytest.raises(nbr.StorageError, match=named):
            client.register(TinyModel(2), "m")
        assert client.get("m").version == 1 and client.history().num_rows == 2
    assert nbr.open_registry(registry_uri, user="alice").head == before  # nothing written


@pytest.mark.parametrize("kwargs, named", [
    ({"writer_version": 3}, "writer version 3"),
    ({"writer_version": 7, "writer_features": ["deletionVectors", "appendOnly"]},
     "writer features deletionVectors"),
    ({"configuration": {"delta.columnMapping.mode": "name"}}, "column mapping"),
    ({"configuration": {"delta.enableDeletionVectors": "true"}}, "deletion vectors"),
    ({"configuration": {"delta.enableInCommitTimestamps": "true"}}, "in-commit timestamps"),
])
def test_writer_refusal_names_each_feature_it_does_not_honour(kwargs: dict[str, Any],
                                                              named: str) -> None:
    base: dict[str, Any] = {"reader_version": 1, "writer_version": 2, "writer_features": None,
                            "configuration": {"delta.appendOnly": "true"}}
    assert writer_refusal(**base) is None
    assert writer_refusal(reader_version=1, writer_version=7,
                          writer_features=["appendOnly", "invariants"],
                          configuration={"delta.appendOnly": "true"}) is None
    config = {**base["configuration"], **kwargs.pop("configuration", {})}
    assert named in str(writer_refusal(**{**base, **kwargs, "configuration": config}))


def test_a_store_that_overwrites_on_create_is_refused(registry_uri: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def overwriting(self: Location, key: str, data: bytes) -> bool:
        self.put(key, data)  # what a store without conditional writes does
        return True

    monkeypatch.setattr(Location, "put_if_absent", overwriting)
    monkeypatch.setattr(location_module, "_PROBED", {})
    with pytest.raises(nbr.StorageError, match="does not honour put-if-absent"):
        nbr.open_registry(registry_uri, user="alice")
    assert not (Location.parse(registry_uri, None).exists(
        "_registry/events/_delta_log/00000000000000000000.json"))


def test_put_if_absent_is_probed_once_per_location(registry_uri: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = Location.put_if_absent

    def counting(self: Location, key: str, data: bytes) -> bool:
        calls.append(key)
        return real(self, key, data)

    monkeypatch.setattr(Location, "put_if_absent", counting)
    monkeypatch.setattr(location_module, "_PROBED", {})
    reg = nbr.open_registry(registry_uri, user="alice")
    for i in range(3):
        reg.register(TinyModel(i), "m")
    assert len([k for k in calls if ".probe" in k]) == 2  # one probe: two creates


def test_a_failed_compaction_is_logged_not_swallowed(registry: nbr.Registry,
                                                     caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from nbregistry.store import commits

    def broken(table: Any) -> Any:
        raise OSError("simulated: the disk filled up")

    registry.register(TinyModel(), "m")
    monkeypatch.setattr(commits, "compacted_file", broken)
    with caplog.at_level(logging.WARNING, logger="nbregistry"):
        registry.ledger.log.compact()
    assert "compaction of the event log" in caplog.text and "simulated" in caplog.text
    assert registry.verify().ok


def test_storage_failures_are_storage_errors(tmp_path: Any) -> None:
    reg = nbr.open_registry(tmp_path / "reg", user="alice")
    # A file where the artifacts folder should be: every blob write fails (also as root).
    (tmp_path / "reg" / "_registry" / "artifacts").write_text("in the way")
    before = reg.head
    with pytest.raises(nbr.StorageError, match=r"cannot write .*artifacts"):
        reg.register(TinyModel(), "m")
    assert reg.head == before
    with pytest.raises(nbr.StorageError, match="cannot read"):
        Location.parse(tmp_path, None).read_bytes("../../etc/passwd")


def test_a_registry_from_before_adopts_expiring_tombstones_at_checkpoint(
        registry_uri: str) -> None:
    from nbregistry.store import eventlog

    reg = nbr.open_registry(registry_uri, user="alice")
    events_table(registry_uri).alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 36500 days"})
    reg.refresh().ledger.log.checkpoint()
    config = events_table(registry_uri).metadata().configuration
    wanted = eventlog.CONFIGURATION["delta.deletedFileRetentionDuration"]
    assert config["delta.deletedFileRetentionDuration"] == wanted
    assert reg.verify().ok


def test_verify_can_show_progress(registry: nbr.Registry,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    registry.register(TinyModel(), "m")
    assert registry.verify(progress=True).ok
    assert "verifying the chain" in capsys.readouterr().err
    assert registry.verify().ok and capsys.readouterr().err == ""  # quiet by default


# -- merging, clean-up and readers that lag behind them -------------------------------------

@pytest.fixture
def small_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Merge every 3 files, up to files of 27 events, and checkpoint every 20 versions."""
    from nbregistry.store import eventlog

    monkeypatch.setattr(eventlog, "FANOUT", 3)
    monkeypatch.setattr(eventlog, "CHECKPOINT_EVERY", 20)


def fill(reg: nbr.Registry, n: int) -> None:
    """``n`` more events: comments on version 1 of ``m``."""
    if "m" not in reg.refresh().ledger.state.models:
        reg.register(TinyModel(), "m")
    for i in range(n):
        reg.comment("m", 1, f"round {i}")


def test_merges_keep_every_event_in_few_files_never_rewritten_to_grow(
        registry: nbr.Registry, small_levels: None) -> None:
    from collections import Counter

    from nbregistry.store.eventlog import level

    fill(registry, 120)
    files = registry.ledger.log.files()
    levels = Counter(level(entry) for entry in files.values())
    # a log-structured merge: fewer than FANOUT files at each level below the top
    assert all(count < 3 for depth, count in levels.items() if depth < 3), levels
    assert sum(entry.records or 0 for entry in files.values()) == registry.head[0]
    seqs = registry.history().column("seq").to_pylist()
    assert seqs == list(range(1, registry.head[0] + 1))
    # independent readers see the same rows as the registry
    rows = events_table(registry.uri).to_pyarrow_table().column("seq").to_pylist()
    assert sorted(rows) == seqs
    assert nbr.verify(registry.uri, artifacts=False).ok


def test_vacuum_deletes_only_what_merges_replaced_after_the_grace(
        registry: nbr.Registry, small_levels: None) -> None:
    from datetime import timedelta
    from pathlib import Path

    fill(registry, 60)
    folder = Path(registry.uri, "_registry", "events")
    before = {p.name for p in folder.glob("*.parquet")}
    live = set(registry.ledger.log.files())
    assert registry.ledger.log.vacuum() == []  # everything is younger than the grace
    orphan = folder / "e000000099999-000000099999-" "0123456789abcdef0123456789abcdef.parquet"
    orphan.write_bytes(b"a data file whose commit never landed, seqs beyond the log")
    deleted = registry.ledger.log.vacuum(grace=timedelta(0))
    assert set(deleted) == before - live and live <= {p.name for p in folder.glob("*.parquet")}
    assert orphan.exists()  # no live file holds seqs it claims: not ours to judge yet
    with pytest.raises(nbr.InvalidInputError, match="grace must be zero or more"):
        registry.ledger.log.vacuum(grace=timedelta(minutes=-1))
    assert nbr.verify(registry.uri, artifacts=False).ok
    assert nbr.open_registry(registry.uri).history().num_rows == registry.head[0]


def test_a_reader_far_behind_the_clean_up_catches_up(registry_uri: str, small_levels: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from nbregistry.store.eventlog import EventLog

    reopened = []
    real_open = EventLog.open
    monkeypatch.setattr(EventLog, "open", lambda self, **how: reopened.append(1)
                        or real_open(self, **how))
    writer = nbr.open_registry(registry_uri, user="alice")
    writer.register(TinyModel(), "m")
    reader = nbr.open_registry(registry_uri, user="bob", max_staleness=3600)
    fill(writer, 40)
    writer.ledger.log.vacuum(grace=timedelta(0))  # what writers do an hour later
    opened = len(reopened)
    assert reader.refresh().head == writer.head
    assert len(reopened) == opened + 1  # the commits it had not read name deleted files
    assert reader.history().num_rows == writer.head[0]
    assert reader.get("m").version == 1


def test_statistics_bound_every_row(registry: nbr.Registry, small_levels: None) -> None:
    """Delta statistics hold milliseconds: a file's maximum time must not fall below its
    rows' (a reader filtering on time would skip it), for one-event and merged files."""
    import json
    from datetime import datetime
    from pathlib import Path

    import pyarrow.parquet as pq

    fill(registry, 10)
    table = Path(registry.uri, "_registry", "events")
    checked = 0
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            add = json.loads(line).get("add")
            if not add or not add["path"].startswith("e") or not (table / add["path"]).exists():
                continue
            stats = json.loads(add["stats"])
            times = pq.read_table(table / add["path"]).column("ts").to_pylist()
            low, high = (datetime.fromisoformat(stats[k]["ts"].replace("Z", "+00:00"))
                         for k in ("minValues", "maxValues"))
            assert low <= min(times) and max(times) <= high, add["path"]
            checked += 1
    assert checked > 10  # one-event files and merged ones


def test_a_clean_up_from_a_stale_handle_deletes_nothing_live(registry_uri: str,
                                                            small_levels: None) -> None:
    from datetime import timedelta

    writer = nbr.open_registry(registry_uri, user="alice")
    writer.register(TinyModel(), "m")
    stale = nbr.open_registry(registry_uri, user="bob", max_staleness=3600)
    fill(writer, 40)  # merges the stale handle has not seen
    stale.ledger.log.vacuum(grace=timedelta(0))
    assert nbr.verify(registry_uri, artifacts=False).ok
    assert nbr.open_registry(registry_uri).history().num_rows == writer.head[0]


def test_a_merge_parses_only_files_it_did_not_write_itself(
        registry: nbr.Registry, small_levels: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-event files this process wrote are merged from the rows it kept when their
    bytes in storage are exactly the ones it wrote; a file changed since is read from
    storage, as before."""
    from dataclasses import replace
    from pathlib import Path

    from nbregistry.registry.chain import events_from_table
    from nbregistry.store import commits, onerow

    parsed: list[int] = []
    real = commits.read_parquet
    monkeypatch.setattr(commits, "read_parquet",
                        lambda raw, columns=None: parsed.append(1) or real(raw, columns))
    registry.register(TinyModel(), "m")
    registry.comment("m", 1, "a")  # three one-event files: merged
    assert len(parsed) == 1  # only the genesis file, which deltalake wrote
    registry.comment("m", 1, "b")
    registry.comment("m", 1, "c")
    victim = next(p for p, e in registry.ledger.log.files().items() if e.records == 1)
    path = Path(registry.uri, "_registry", "events", victim)
    event = events_from_table(real(path.read_bytes()))[0]
    path.write_bytes(onerow.encode(replace(event, actor="oscar")))  # as long as "alice"
    assert path.stat().st_size == registry.ledger.log.files()[victim].size
    parsed.clear()
    registry.comment("m", 1, "d")  # three one-event files again: merged
    assert len(parsed) == 1  # the edited file; the two untouched ones came from memory
    assert registry.ledger.log.read().column("actor").to_pylist().count("oscar") == 1


@pytest.mark.parametrize("seq, model, version, payload, actor", [
    (1, None, None, "{}", "alice"),
    (7, "m", 3, '{"card":{"intended_use":"x"}}', "ana-maría"),
    (2 ** 40, "m.v2", 2 ** 31, "é" * 70_000, "x"),  # lengths past one and two varint bytes
])
def test_one_event_files_read_back_as_written(seq: int, model: str | None,
                                              version: int | None, payload: str,
                                              actor: str) -> None:
    """The log's one-event parquet files are encoded directly (store/onerow.py): pyarrow
    reads back exactly the row pyarrow itself would have written, with the event schema."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    from nbregistry.domain.entities import Event
    from nbregistry.store import commits, onerow
    from nbregistry.store.eventrows import SCHEMA, to_table

    event = Event(seq, "e" * 32, datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), actor,
                  "register", model, version, {}, payload, "0" * 64, "f" * 64)
    raw = onerow.encode(event)
    table = commits.read_parquet(raw)
    assert table.schema.equals(SCHEMA) and table.equals(to_table([event]))
    meta = pq.ParquetFile(pa.BufferReader(raw)).metadata
    assert meta.num_rows == 1 and meta.row_group(0).column(0).compression == "UNCOMPRESSED"
