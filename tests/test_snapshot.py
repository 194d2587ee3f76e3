"""State snapshots: opening from one gives exactly the fold; a forged one is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nbregistry as nbr
from conftest import TinyModel, from_storage
from nbregistry.registry import snapshot
from nbregistry.registry.chain import events_from_table
from nbregistry.registry.fold import fold
from nbregistry.registry.state import RegistryState

CARD = {"intended_use": "scoring", "limitations": "synthetic"}


@pytest.fixture(autouse=True)
def often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "SNAPSHOT_EVERY", 15)


def busy(uri: str) -> nbr.Registry:
    """Every kind of state change, across several snapshots."""
    alice = nbr.open_registry(uri, user="alice")
    alice.grant_role("bob", "validator")
    for i in range(12):
        alice.register(TinyModel(i), f"m{i % 3}", metrics={"auc": 0.7 + i / 100}, card=CARD,
                       tags={"i": str(i)})
        alice.set_alias(f"m{i % 3}", "champion", alice.get(f"m{i % 3}").version)
    alice.set_card("m0", 1, {"limitations": "thin files"})
    alice.request_promotion("m0", 2, to="staging")
    alice.request_promotion("m0", 2, to="production")
    nbr.open_registry(uri, user="bob").approve("m0", 2, comment="ok")
    alice.record_deployment("m0", 2, "eu")
    alice.comment("m1", 1, "looks fine")
    alice.delete_alias("m2", "champion")
    for i in range(6):
        alice.register(TinyModel(100 + i), "m1")
    alice.set_card("m1", 5, {"owner": "risk"})
    return alice.refresh()


def full_fold(uri: str) -> RegistryState:
    reg = nbr.open_registry(uri, create=False)
    return fold(RegistryState(), events_from_table(reg.ledger.log.read()))


def test_opening_from_a_snapshot_is_the_fold(registry_uri: str) -> None:
    reg = busy(registry_uri)
    assert len(reg.ledger.state.snapshots) >= 2 and Path(registry_uri, snapshot.POINTER).exists()
    fresh = from_storage(registry_uri, create=False)
    assert fresh.ledger.state.base_seq > 0  # really opened from a snapshot
    assert len(fresh.ledger.state.events) < fresh.head[0] - 10  # and folded only the tail
    assert snapshot.dump(fresh.ledger.state) == snapshot.dump(full_fold(registry_uri))
    assert fresh.get("m0@champion") == reg.get("m0@champion")
    assert fresh.get("m0", 1).card["limitations"] == "thin files"
    assert fresh.get("m1", 5).card["owner"] == "risk"
    assert fresh.search().to_pylist() == reg.search().to_pylist()
    assert fresh.history().to_pylist() == reg.history().to_pylist()
    assert fresh.requests("m0", status="all") == reg.requests("m0", status="all")
    assert fresh.deployments().num_rows == 1 and fresh.roles() == reg.roles()
    fresh.register(TinyModel(999), "m2")  # and writes continue from there
    assert fresh.verify().ok


def test_a_forged_snapshot_is_refused(registry_uri: str, caplog: pytest.LogCaptureFixture
                                      ) -> None:
    reg = busy(registry_uri)
    pointer = json.loads(Path(registry_uri, snapshot.POINTER).read_text())
    doc = json.loads(snapshot.unpack(reg.ledger.blobs.get(pointer["sha256"])))
    doc["roles"]["mallory"] = ["admin"]  # a planted state that makes mallory an admin
    forged, _ = snapshot.pack(json.dumps(doc))
    sha = reg.ledger.blobs.put(forged)
    Path(registry_uri, snapshot.POINTER).write_text(json.dumps({"sha256": sha,
                                                                "seq": pointer["seq"]}))
    fresh = from_storage(registry_uri, create=False)
    assert "mallory" not in fresh.roles() and fresh.ledger.state.base_seq == 0
    assert "ignoring the state snapshot" in caplog.text


def test_verify_recomputes_the_trusted_snapshot_from_the_fold(registry_uri: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    reg = busy(registry_uri)
    assert reg.verify().ok
    real = snapshot.dump

    def lying(state: RegistryState) -> str:  # a writer that snapshots a doctored state
        text = real(state)
        return text.replace('"bob":["validator"]', '"bob":["admin","validator"]')

    monkeypatch.setattr(snapshot, "dump", lying)
    for i in range(20):
        reg.register(TinyModel(500 + i), "m2")
    monkeypatch.setattr(snapshot, "dump", real)
    report = reg.verify()
    assert not report.ok and {p.kind for p in report.problems} == {"snapshot"}
    # moving the (untrusted) pointer back to an honest snapshot hides nothing
    honest = reg.ledger.state.snapshots[0].payload
    Path(registry_uri, snapshot.POINTER).write_text(json.dumps(honest))
    assert {p.kind for p in reg.verify().problems} == {"snapshot"}


def test_a_pointer_left_at_an_older_snapshot_is_followed_to_the_newest(
        registry_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = busy(registry_uri)
    newest = reg.ledger.state.snapshots[-1].payload
    older = next(e.payload for e in reversed(reg.ledger.state.snapshots)
                 if e.payload["seq"] < newest["seq"])
    Path(registry_uri, snapshot.POINTER).write_text(json.dumps(older))
    fresh = from_storage(registry_uri, create=False)
    assert fresh.ledger.state.base_seq == newest["seq"]
    assert snapshot.dump(fresh.ledger.state) == snapshot.dump(full_fold(registry_uri))


def test_only_the_newest_snapshot_is_trusted_so_only_it_is_recomputed(
        registry_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = snapshot.dump

    def lying(state: RegistryState) -> str:
        return real(state).replace('"bob":["validator"]', '"bob":["admin","validator"]')

    monkeypatch.setattr(snapshot, "dump", lying)
    reg = busy(registry_uri)  # doctored snapshots...
    doctored = reg.ledger.state.snapshots[-1].payload
    monkeypatch.setattr(snapshot, "dump", real)
    for i in range(20):  # ...then an honest one
        reg.register(TinyModel(700 + i), "m2")
    assert reg.ledger.state.snapshots[-1].payload["seq"] > doctored["seq"]
    assert reg.verify().ok
    Path(registry_uri, snapshot.POINTER).write_text(json.dumps(doctored))
    fresh = from_storage(registry_uri, create=False)
    assert "admin" not in fresh.roles().get("bob", [])
    assert reg.verify().ok  # the newest, honest one is what verify recomputes


def test_superseded_snapshot_blobs_are_deleted_their_events_kept(registry_uri: str) -> None:
    reg = busy(registry_uri)
    for i in range(40):
        reg.register(TinyModel(300 + i), "m2")
    events = reg.ledger.state.snapshots
    assert len(events) >= 4
    kept = [e for e in events if reg.ledger.blobs.exists(e.payload["sha256"])]
    assert kept == events[-snapshot.KEEP:]
    assert from_storage(registry_uri, create=False).ledger.state.base_seq == \
        events[-1].payload["seq"]
    assert reg.verify().ok


def test_a_snapshot_event_naming_a_model_artifact_deletes_nothing(registry_uri: str) -> None:
    reg = busy(registry_uri)
    for i in range(40):
        reg.register(TinyModel(900 + i), "m2")
    assert len(reg.ledger.state.snapshots) > snapshot.KEEP
    artifact = reg.get("m1", 1).sha256
    planted = reg.ledger.state.snapshots[0]  # as if a writer had named the artifact in it
    planted.payload["sha256"] = artifact
    snapshot.prune(reg.ledger.state, reg.ledger.blobs, all_older=True)
    assert reg.ledger.blobs.exists(artifact)
