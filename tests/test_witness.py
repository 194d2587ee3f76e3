"""Attacks by someone who can write the registry: rewritten history, cut tails, bad clocks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.domain.canonical import GENESIS_HASH, canonical_json, event_hash
from nbregistry.store.eventlog import CONFIGURATION, SCHEMA


def build(uri: str, witness: str) -> nbr.Registry:
    alice = nbr.open_registry(uri, user="alice", witness=witness)
    alice.grant_role("bob", "validator")
    for auc in (0.8, 0.81, 0.82):
        alice.register(TinyModel(auc), "credit", metrics={"auc": auc},
                       card={"intended_use": "x", "limitations": "y"})
    alice.request_promotion("credit", 2, to="staging")
    alice.request_promotion("credit", 2, to="production")
    nbr.open_registry(uri, user="bob", witness=witness).approve("credit", 2)
    return alice.refresh()


def forge(uri: str, edit: Any) -> None:
    """Rewrite the whole log as an attacker would: edit events, recompute every hash, and
    replace the event table with a fresh, perfectly valid one."""
    events = nbr.open_registry(uri, create=False).ledger.state.events
    rows, head = [], GENESIS_HASH
    for event in edit(events):
        payload = canonical_json(event.payload)
        digest = event_hash(head, event.seq, event.event_id,
                            event.ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), event.actor,
                            event.action, event.model, event.version, payload)
        rows.append({"seq": event.seq, "event_id": event.event_id, "ts": event.ts,
                     "actor": event.actor, "action": event.action, "model": event.model,
                     "version": event.version, "payload": payload, "prev_hash": head,
                     "hash": digest})
        head = digest
    shutil.rmtree(f"{uri}/_registry/events")
    write_deltalake(f"{uri}/_registry/events", pa.Table.from_pylist(rows, schema=SCHEMA),
                    configuration=CONFIGURATION)


def test_a_rewritten_history_passes_the_chain_but_not_the_witness(tmp_path: Path) -> None:
    uri, witness = str(tmp_path / "reg"), str(tmp_path / "witness")
    build(uri, witness)
    assert any(Path(witness).rglob("*.json"))  # heads were published
    assert nbr.verify(uri, witness=witness).ok

    def approved_by_mallory(events: list[Any]) -> list[Any]:
        return [e if e.action != "approve" else type(e)(
            **{**{f: getattr(e, f) for f in e.__slots__}, "actor": "mallory"})
            for e in events]

    forge(uri, approved_by_mallory)
    blind = nbr.verify(uri)  # the chain alone cannot tell: the attacker recomputed it
    assert not any(p.kind in ("hash", "chain") for p in blind.problems)
    report = nbr.verify(uri, witness=witness)
    assert not report.ok and any(p.kind == "witness" for p in report.problems)
    check = {c.name: c for c in report.checks}
    assert not check["witness"].ok and check["chain"].ok
    assert "published to the witness" in check["witness"].proves


def test_a_cut_tail_is_caught_by_the_witness(tmp_path: Path) -> None:
    uri, witness = str(tmp_path / "reg"), str(tmp_path / "witness")
    reg = build(uri, witness)
    keep = reg.head[0] - 3
    forge(uri, lambda events: [e for e in events if e.seq <= keep])
    report = nbr.verify(uri, witness=witness)
    assert any("tail was cut" in p.message for p in report.problems)


def test_every_check_says_what_it_proves(registry: nbr.Registry) -> None:
    registry.register(TinyModel(), "m")
    report = registry.verify()
    assert report.ok and {c.name for c in report.checks} == {
        "chain", "events", "signatures", "clock", "checkpoints", "expected_head", "artifacts"}
    assert "recomputed" in repr(report)  # what the chain alone does not prove


def test_a_writer_with_a_fast_clock_is_refused(tmp_path: Path) -> None:
    if shutil.which("faketime") is None:
        pytest.skip("Debian's faketime is not installed (apt-get install faketime)")
    uri = str(tmp_path / "reg")
    nbr.open_registry(uri, user="alice").register(TinyModel(), "m")
    code = (f"import nbregistry as nbr\nreg = nbr.open_registry({uri!r}, user='mallory')\n"
            "try:\n    reg.register({'w': 1}, 'm')\nexcept nbr.StorageError as e:\n"
            "    print('refused:', e)\n")
    env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    out = subprocess.run(["faketime", "-f", "+1825d", sys.executable, "-c", code],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert "refused:" in out and "ahead of the storage" in out
    reg = nbr.open_registry(uri, user="alice")
    assert reg.head[0] == 2 and reg.verify().ok


def test_monitoring_and_report_evidence_is_witnessed(tmp_path: Path) -> None:
    from nbregistry.registry.witness import WITNESSED_ACTIONS

    assert {"seal", "alert", "retrain_requested", "report"} <= WITNESSED_ACTIONS
    witness = str(tmp_path / "witness")
    reg = nbr.open_registry(str(tmp_path / "reg"), user="alice", witness=witness)
    reg.register(TinyModel(1.0), "credit")
    reg.monitor("credit").seal()
    heads = sorted(Path(witness).rglob("*.json"))
    assert heads and heads[-1].name == f"{reg.head[0]:020d}.json"


def test_a_failed_publication_is_retried_at_the_next_write(tmp_path: Path) -> None:
    witness = tmp_path / "witness"
    reg = nbr.open_registry(str(tmp_path / "reg"), user="alice", witness=str(witness))
    reg.register(TinyModel(1.0), "credit")
    reg.grant_role("carol", "validator")  # published
    heads = witness / "nbregistry-heads"
    shutil.move(heads, tmp_path / "away")
    heads.write_text("the witness refuses writes for a while")  # (root ignores chmod)
    reg.grant_role("bob", "validator")
    heads.unlink()
    shutil.move(tmp_path / "away", heads)
    governance = reg.head
    report = reg.verify()
    assert report.ok and any(n.kind == "unwitnessed" and str(governance[0]) in n.message
                             for n in report.notices)
    reg.comment("credit", 1, "an ordinary event, not due on its own")
    assert reg.verify().notices == ()  # the retry published the newer head, covering it


def test_a_forged_head_in_the_witness_is_a_tamper_alarm(tmp_path: Path) -> None:
    import json

    from nbregistry.registry.witness import key_of

    witness = tmp_path / "witness"
    uri = str(tmp_path / "reg")
    reg = nbr.open_registry(uri, user="alice", witness=str(witness))
    reg.register(TinyModel(1.0), "credit")
    seq = reg.head[0] + 1  # mallory publishes a head for the next seq before anyone writes it
    forged = witness / key_of(reg.events()[0].hash, seq)
    forged.parent.mkdir(parents=True, exist_ok=True)
    forged.write_text(json.dumps({"seq": seq, "hash": "ab" * 32, "actor": "mallory"}))
    with pytest.raises(nbr.IntegrityError, match="forged head") as raised:
        reg.grant_role("bob", "validator")
    assert "was recorded" in str(raised.value)
    assert reg.roles()["bob"] == ["validator"]  # the honest write landed
    alarm = reg.refresh().events()[-1]
    assert alarm.action == "tamper_alarm" and alarm.payload["seq"] == seq
    report = reg.verify()
    assert not report.ok and any("forged head" in p.message for p in report.problems)
