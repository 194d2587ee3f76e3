"""Old and new nbregistry versions reading each other's logs: strict writes, lenient fold."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.domain.canonical import canonical_json, event_hash
from nbregistry.domain.entities import Event
from nbregistry.domain.events import SHAPES, check_payload, read_problem
from nbregistry.domain.timefmt import ts_text
from nbregistry.registry.fold import HANDLERS, apply

FUTURE_POLICY = {
    "roles": ["admin", "validator"],
    "lifecycle": {"stages": ["development", "production"],
                  "transitions": {"development": ["production"]}},
    "stages": {"production": {"approvals": 1, "approver_roles": ["validator"],
                              "explainability_report": True}},
    "lineage_rules": {"require_git": True},
}


def append_raw(reg: nbr.Registry, action: str, payload: dict[str, Any], *,
               model: str | None = None, version: int | None = None,
               actor: str = "future-bot") -> Event:
    """Commit an event as another (e.g. newer) writer would: no payload check on our side."""
    state = reg.refresh().ledger.state
    payload_json = canonical_json(payload)
    ts = max(datetime.now(UTC), state.events[-1].ts)
    seq, event_id = state.seq + 1, uuid.uuid4().hex
    digest = event_hash(state.head_hash, seq, event_id, ts_text(ts), actor, action, model,
                        version, payload_json)
    event = Event(seq, event_id, ts, actor, action, model, version, payload, payload_json,
                  state.head_hash, digest)
    reg.ledger.log.append(event)
    apply(state, event)
    return event


def test_every_declared_action_has_a_fold_handler() -> None:
    assert set(HANDLERS) == set(SHAPES)


def test_a_future_writers_log_opens_verifies_and_keeps_known_state(registry_uri: str) -> None:
    reg = nbr.open_registry(registry_uri, user="alice")
    reg.register(TinyModel(1), "m", metrics={"auc": 0.8})
    reg.set_alias("m", "champion", 1)
    before = (reg.get("m@champion"), reg.roles())
    append_raw(reg, "quantum_attestation", {"proof": "…"}, model="m", version=1)
    append_raw(reg, "set_alias", {"alias": "shadow", "previous": None, "confidence": 0.9},
               model="m", version=1)
    append_raw(reg, "set_policy", {"policy": FUTURE_POLICY}, actor="alice")

    fresh = nbr.open_registry(registry_uri, user="alice")
    assert fresh.get("m@champion").version == before[0].version
    assert fresh.roles() == before[1] and fresh.get("m", 1).sha256 == before[0].sha256
    assert fresh.get("m@shadow").version == 1  # the extra payload field is ignored
    assert fresh.policy.rules("production").approvals == 1  # the known part is enforced
    assert set(fresh.policy.unknown) == {"lineage_rules",
                                         "stages.production.explainability_report"}
    actions = fresh.history().column("action").to_pylist()
    assert "quantum_attestation" in actions  # kept and shown
    report = fresh.verify()
    assert report.ok, report
    notes = " ".join(p.message for p in report.notices)
    assert "quantum_attestation" in notes and "newer nbregistry" in notes
    assert "lineage_rules" in notes
    fresh.register(TinyModel(2), "m")  # and this client still writes after them
    assert fresh.verify().ok


def test_a_malformed_event_is_skipped_and_reported_not_fatal(registry_uri: str) -> None:
    reg = nbr.open_registry(registry_uri, user="alice")
    reg.register(TinyModel(1), "m")
    append_raw(reg, "approve", {"comment": "no request id"}, model="m", version=1)
    append_raw(reg, "set_alias", {"alias": "x", "previous": None}, model="m", version=99)
    append_raw(reg, "grant_role", {"user": "mallory"})
    fresh = nbr.open_registry(registry_uri, user="alice")  # opens: nobody is locked out
    assert "mallory" not in fresh.roles()
    report = fresh.verify()
    assert not report.ok
    assert [p.kind for p in report.problems] == ["malformed"] * 3
    assert "payload.request_id is missing" in report.problems[0].message
    assert "no version 99" in report.problems[1].message


def test_writes_are_checked_against_the_declared_shape() -> None:
    check_payload("set_alias", {"alias": "a", "previous": None})
    with pytest.raises(nbr.InvalidInputError, match="previous is missing"):
        check_payload("set_alias", {"alias": "a"})
    with pytest.raises(nbr.InvalidInputError, match="extra is not a declared field"):
        check_payload("set_alias", {"alias": "a", "previous": 1, "extra": 1})
    with pytest.raises(nbr.InvalidInputError, match="expected int"):
        check_payload("set_alias", {"alias": "a", "previous": True})
    with pytest.raises(nbr.InvalidInputError, match="unknown event action"):
        check_payload("teleport", {})
    assert read_problem("set_alias", {"alias": "a", "previous": 2, "new": 1}) is None
    assert read_problem("teleport", {"anything": 1}) is None
    assert "gates[0].passed" in str(read_problem("rollback", {
        "stage": "p", "from_version": 2, "to_version": 1, "reason": "",
        "gates": [{"gate": "g", "passed": "yes", "detail": "", "evidence": {}}]}))


def test_a_newer_event_format_is_a_notice() -> None:
    from nbregistry.registry.fold import fold
    from nbregistry.registry.state import RegistryState

    genesis_json = canonical_json({"format": 99, "creator": "x"})
    ts = datetime.now(UTC)
    digest = event_hash("0" * 64, 1, "e", ts_text(ts), "x", "create_registry", None, None,
                        genesis_json)
    state = fold(RegistryState(), [Event(1, "e", ts, "x", "create_registry", None, None,
                                         {"format": 99, "creator": "x"}, genesis_json,
                                         "0" * 64, digest)])
    assert state.format == 99 and "format 99" in state.notices[0].message


def test_a_backdated_event_ends_the_past_and_is_reported(registry_uri: str) -> None:
    from datetime import timedelta

    reg = nbr.open_registry(registry_uri, user="alice")
    reg.register(TinyModel(1), "m")
    moment = datetime.now(UTC)
    state = reg.ledger.state
    payload = {"alias": "old", "previous": None}
    ts = state.events[-1].ts - timedelta(days=30)
    digest = event_hash(state.head_hash, state.seq + 1, "e", ts_text(ts), "mallory",
                        "set_alias", "m", 1, canonical_json(payload))
    event = Event(state.seq + 1, "e", ts, "mallory", "set_alias", "m", 1, payload,
                  canonical_json(payload), state.head_hash, digest)
    reg.ledger.log.append(event)
    fresh = nbr.open_registry(registry_uri, user="alice")
    assert fresh.as_of(moment).get("m").version == 1  # no crash
    assert fresh.as_of(moment - timedelta(days=1)).models() == []
    report = fresh.verify()
    assert {p.kind for p in report.problems} == {"clock"} and "backdated" in str(report)
    assert "storage wrote it" in str(report)  # its time also disagrees with the storage


def test_a_key_written_straight_into_the_log_by_a_non_admin_is_not_trusted(
        registry_uri: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from nbregistry.registry.signing import public_key_pem

    reg = nbr.open_registry(registry_uri, user="alice")
    pem, fingerprint = public_key_pem(Ed25519PrivateKey.generate().public_key())
    append_raw(reg, "register_key", {"public_key": pem, "fingerprint": fingerprint,
                                     "user": "bob"}, actor="mallory")
    fresh = nbr.open_registry(registry_uri, user="alice")
    assert "bob" not in fresh.ledger.state.keys
    assert [p.kind for p in fresh.verify().problems] == ["malformed"]
