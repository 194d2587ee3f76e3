"""The hand-written Delta commits, checked: protocol, properties, put-if-absent."""

from __future__ import annotations

import logging
from typing import Any

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
                                                     caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def update_incremental(self) -> None:
            raise OSError("simulated: compaction raced another writer")

    registry._log._dt = Broken()
    with caplog.at_level(logging.WARNING, logger="nbregistry"):
        registry._log.compact()
    assert "compaction of the event log" in caplog.text and "simulated" in caplog.text


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


def test_a_registry_from_before_adopts_expiring_tombstones_at_compaction(
        registry_uri: str) -> None:
    from nbregistry.store import eventlog

    reg = nbr.open_registry(registry_uri, user="alice")
    events_table(registry_uri).alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 36500 days"})
    reg.refresh()._log.compact()
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
