"""Multi-user governance flows, acting as several users on one registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import nbregistry as nbr
from conftest import TinyModel

CARD = {"intended_use": "retail credit scoring", "limitations": "thin-file applicants"}
QUORUM_2 = """
roles = ["admin", "validator"]
[lifecycle]
stages = ["development", "staging", "production", "archived"]
exclusive = ["production"]
replaced_to = "archived"
[lifecycle.transitions]
development = ["staging", "production"]
staging = ["production"]
production = ["archived"]
[stages.production]
approvals = 2
approver_roles = ["validator"]
metrics = ["auc >= 0.7", "auc >= production.auc - 0.01"]
"""


@pytest.fixture
def users(registry_uri: str) -> Callable[[str], nbr.Registry]:
    """alice created the registry (admin); bob and carol are validators; dave has no role."""
    alice = nbr.open_registry(registry_uri, user="alice")
    alice.grant_role("bob", "validator")
    alice.grant_role("carol", "validator")
    return lambda user: nbr.open_registry(registry_uri, user=user)


def register(reg: nbr.Registry, auc: float = 0.8, card: dict[str, str] | None = None) -> int:
    return reg.register(TinyModel(auc), "credit_risk", metrics={"auc": auc},
                        card=CARD if card is None else card).version


def to_production(users: Callable[[str], nbr.Registry], version: int) -> None:
    users("alice").request_promotion("credit_risk", version, to="staging")
    users("alice").request_promotion("credit_risk", version, to="production")
    users("bob").approve("credit_risk", version, comment="validated")


def test_default_policy_flow(users: Callable[[str], nbr.Registry]) -> None:
    alice, bob = users("alice"), users("bob")
    v1 = register(alice)
    staged = alice.request_promotion("credit_risk", v1, to="staging", comment="ready")
    assert staged.status == "promoted" and alice.get("credit_risk", v1).stage == "staging"
    request = alice.request_promotion("credit_risk", v1, to="production")
    assert request.status == "open" and request.required == 1
    done = bob.approve("credit_risk", v1, comment="model validation passed")
    assert done.status == "promoted" and [a.user for a in done.approvals] == ["bob"]
    mv = alice.get("credit_risk", stage="production")
    assert mv.version == v1 and mv.status["approved_by"] == ["bob"]
    assert {g.gate for g in done.gates} == {"card_fields"}


def test_self_approval_refused(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    alice.grant_role("alice", "validator")
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="staging")
    alice.request_promotion("credit_risk", v1, to="production")
    before = alice.head
    with pytest.raises(nbr.PolicyViolationError, match="self-approval refused") as info:
        alice.approve("credit_risk", v1)
    assert info.value.rule == "segregation" and alice.head == before
    bob = users("bob")
    v2 = register(bob)
    bob.request_promotion("credit_risk", v2, to="staging")
    users("carol").request_promotion("credit_risk", v2, to="production")
    with pytest.raises(nbr.PolicyViolationError, match="registered v2"):
        bob.approve("credit_risk", v2)
    assert users("alice").approve("credit_risk", v2).status == "promoted"


def test_missing_role_refused(users: Callable[[str], nbr.Registry]) -> None:
    v1 = register(users("alice"))
    users("alice").request_promotion("credit_risk", v1, to="staging")
    users("alice").request_promotion("credit_risk", v1, to="production")
    with pytest.raises(nbr.PolicyViolationError, match="needs one of the roles") as info:
        users("dave").approve("credit_risk", v1)
    assert info.value.rule == "role"


def test_quorum_of_two_needs_two_distinct_approvers(users: Callable[[str], nbr.Registry]) -> None:
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    alice.set_policy(QUORUM_2)
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="production")
    assert bob.approve("credit_risk", v1).status == "open"
    with pytest.raises(nbr.PolicyViolationError, match="already approved"):
        bob.approve("credit_risk", v1)
    assert alice.get("credit_risk", v1).stage == "development"
    done = carol.approve("credit_risk", v1)
    assert done.status == "promoted" and {a.user for a in done.approvals} == {"bob", "carol"}
    assert alice.get("credit_risk", v1).stage == "production"


def test_reject_blocks_and_withdrawn_cannot_be_approved(
        users: Callable[[str], nbr.Registry]) -> None:
    alice, bob, carol = users("alice"), users("bob"), users("carol")
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="staging")
    alice.request_promotion("credit_risk", v1, to="production")
    with pytest.raises(nbr.InvalidInputError, match="needs a comment"):
        carol.reject("credit_risk", v1, comment=" ")
    rejected = carol.reject("credit_risk", v1, comment="calibration drifts on thin files")
    assert rejected.status == "rejected"
    with pytest.raises(nbr.ConflictError, match="already rejected"):
        bob.approve("credit_risk", v1)
    alice.request_promotion("credit_risk", v1, to="production")
    with pytest.raises(nbr.PolicyViolationError, match="requester"):
        bob.withdraw("credit_risk", v1)
    assert alice.withdraw("credit_risk", v1).status == "withdrawn"
    with pytest.raises(nbr.ConflictError, match="already withdrawn"):
        bob.approve("credit_risk", v1)
    assert alice.get("credit_risk", v1).stage == "staging"


def test_gate_failure_names_gate_and_reason(users: Callable[[str], nbr.Registry]) -> None:
    alice, bob = users("alice"), users("bob")
    alice.set_policy(QUORUM_2)
    low = register(alice, auc=0.6)
    with pytest.raises(nbr.PolicyViolationError, match=r"gate 'auc >= 0.7' failed: auc = 0.6"):
        alice.request_promotion("credit_risk", low, to="production")
    good, worse = register(alice, auc=0.8), register(alice, auc=0.785)
    alice.request_promotion("credit_risk", good, to="production")
    bob.approve("credit_risk", good)
    users("carol").approve("credit_risk", good)
    with pytest.raises(nbr.PolicyViolationError, match=r"production.auc - 0.01"):
        alice.request_promotion("credit_risk", worse, to="production")
    results = alice.requirements("credit_risk", worse, "production")
    assert [(g.gate, g.passed) for g in results] == [
        ("auc >= 0.7", True), ("auc >= production.auc - 0.01", False), ("approvals", False)]
    assert results[2].detail == ("0 of 2 approval(s) from validator, not the registrant or "
                                 "requester")
    assert results[1].evidence["compared_with_version"] == good


def test_card_gate_and_set_card(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1 = register(alice, card={})
    alice.request_promotion("credit_risk", v1, to="staging")
    with pytest.raises(nbr.PolicyViolationError, match="lacks intended_use, limitations"):
        alice.request_promotion("credit_risk", v1, to="production")
    alice.set_card("credit_risk", v1, CARD)
    assert alice.request_promotion("credit_risk", v1, to="production").status == "open"


def test_rollback_restores_previous_holder(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1, v2 = register(alice), register(alice)
    to_production(users, v1)
    to_production(users, v2)
    assert alice.get("credit_risk", v1).stage == "archived"
    assert alice.get("credit_risk", stage="production").version == v2
    with pytest.raises(nbr.PolicyViolationError, match="may not roll back"):
        users("dave").rollback("credit_risk", stage="production", reason="x")
    restored = users("bob").rollback("credit_risk", stage="production", reason="v2 misprices")
    assert restored.version == v1 and restored.stage == "production"
    assert alice.get("credit_risk", v2).stage == "archived"
    last = alice.history("credit_risk").to_pylist()[-1]
    assert last["action"] == "rollback" and last["actor"] == "bob" and "misprices" in last[
        "payload"]
    with pytest.raises(nbr.NotFoundError, match="no earlier production version"):
        alice.rollback("credit_risk", stage="production")


def test_history_and_as_of_name_the_approver(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1 = register(alice)
    to_production(users, v1)
    between = datetime.now(UTC)
    v2 = register(alice)
    alice.request_promotion("credit_risk", v2, to="staging")
    alice.request_promotion("credit_risk", v2, to="production")
    users("carol").approve("credit_risk", v2)
    past = alice.as_of(between).get("credit_risk", stage="production")
    assert past.version == v1 and past.status["approved_by"] == ["bob"]
    now = alice.get("credit_risk", stage="production")
    assert now.version == v2 and now.status["approved_by"] == ["carol"]
    approvals = [(e["actor"], e["version"]) for e in alice.history("credit_risk").to_pylist()
                 if e["action"] == "approve"]
    assert approvals == [("bob", v1), ("carol", v2)]


def race(*calls: Callable[[], object]) -> list[object]:
    """Run calls at the same moment on threads; return each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_approvals_at_once_promote_once(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="staging")
    alice.request_promotion("credit_risk", v1, to="production")
    bob, carol = users("bob"), users("carol")
    results = race(lambda: bob.approve("credit_risk", v1), lambda: carol.approve("credit_risk", v1))
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], nbr.ConflictError)
    assert "already promoted" in str(errors[0])
    actions = [e["action"] for e in alice.history("credit_risk").to_pylist()]
    assert actions.count("approve") == 1
    assert alice.verify().ok


def test_two_promotions_at_once_one_winner(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1, v2 = register(alice), register(alice)
    alice.set_policy(QUORUM_2.replace("approvals = 2", "approvals = 1"))
    alice.request_promotion("credit_risk", v1, to="production")
    alice.request_promotion("credit_risk", v2, to="production")
    bob, carol = users("bob"), users("carol")
    results = race(lambda: bob.approve("credit_risk", v1), lambda: carol.approve("credit_risk", v2))
    winners = [r for r in results if isinstance(r, nbr.domain.PromotionRequest)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], nbr.ConflictError) and "request again" in str(losers[0])
    assert alice.stages("credit_risk")["production"] == [winners[0].version]
    assert alice.verify().ok


def test_bad_input_leaves_registry_unchanged(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1 = register(alice)
    before = alice.head
    cases: list[tuple[Callable[[], object], type[Exception], str]] = [
        (lambda: alice.request_promotion("credit_risk", v1, to="prod"), nbr.InvalidInputError,
         "unknown stage 'prod'"),
        (lambda: alice.request_promotion("credit_risk", 9, to="staging"), nbr.NotFoundError,
         "no version 9"),
        (lambda: alice.request_promotion("credit_risk", v1, to="production"),
         nbr.PolicyViolationError, "does not allow development -> production"),
        (lambda: alice.grant_role("bob", "wizard"), nbr.InvalidInputError, "unknown role"),
        (lambda: alice.revoke_role("zed", "validator"), nbr.NotFoundError, "does not hold"),
        (lambda: alice.revoke_role("alice", "admin"), nbr.PolicyViolationError, "last admin"),
        (lambda: users("bob").grant_role("bob", "admin"), nbr.PolicyViolationError,
         "not an admin"),
        (lambda: alice.set_policy("roles = [\n"), nbr.InvalidInputError, "not valid TOML"),
        (lambda: alice.set_policy({"roles": ["validator"], "lifecycle": {"stages": ["a"]},
                                   "stages": {"a": {"approvals": 1}}}), nbr.InvalidInputError,
         "must include 'admin'"),
        (lambda: users("bob").approve("credit_risk", v1), nbr.NotFoundError,
         "no open promotion request"),
        (lambda: users("bob").reject("credit_risk", v1, comment="no"), nbr.NotFoundError,
         "no open promotion request"),
        (lambda: alice.flag_data("/data/t", "7", reason="bad"),  # type: ignore[arg-type]
         nbr.InvalidInputError, "Delta table version"),
        (lambda: alice.flag_data("/data/t", 3, reason=" "), nbr.InvalidInputError,
         "say why"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
    assert alice.head == before


def test_malformed_policy_lists_every_mistake(registry: nbr.Registry) -> None:
    bad = QUORUM_2.replace("approvals = 2", "approvals = -1\nbogus = 1").replace(
        '"auc >= 0.7"', '"auc is great"')
    with pytest.raises(nbr.InvalidInputError) as info:
        registry.set_policy(bad)
    message = str(info.value)
    assert "approvals must be a non-negative integer" in message
    assert "unknown keys: stages.production.bogus" in message
    assert "'auc is great' is not understood" in message


def test_policy_changes_are_audited(registry: nbr.Registry) -> None:
    registry.set_policy(QUORUM_2)
    assert registry.policy.rules("production").approvals == 2
    event = registry.history().to_pylist()[-1]
    assert event["action"] == "set_policy" and event["actor"] == "alice"
    assert registry.as_of(event["ts"] - timedelta(microseconds=1)).policy.rules(
        "production").approvals == 1


def test_emergency_promotion_and_ratification(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="staging")
    with pytest.raises(nbr.PolicyViolationError, match="emergency"):
        users("bob").request_promotion("credit_risk", v1, to="production", emergency=True)
    done = alice.request_promotion("credit_risk", v1, to="production", emergency=True,
                                   comment="incident 42")
    assert done.status == "promoted" and done.emergency
    mv = alice.get("credit_risk", stage="production")
    assert mv.status["emergency"] is True
    later = datetime.now(UTC) + timedelta(hours=73)
    assert alice.overdue(now=later).column("reason").to_pylist() == [
        "emergency promotion not yet ratified by approvals"]
    ratified = users("bob").approve("credit_risk", v1, comment="reviewed after the fact")
    assert ratified.ratified
    assert alice.get("credit_risk", v1).status["emergency"] is False
    assert alice.overdue(now=later).num_rows == 0
    assert alice.overdue(now=later + timedelta(days=366)).column("reason").to_pylist() == [
        "approval expired: recertification due"]


def test_data_recall_flags_versions(users: Callable[[str], nbr.Registry], tmp_path: object
                                    ) -> None:
    import pandas as pd

    from nbregistry.store import write_table

    alice = users("alice")
    uri = str(tmp_path) + "/train"  # type: ignore[operator]
    write_table(uri, pd.DataFrame({"x": [1, 2]}))
    trained = alice.register(TinyModel(), "credit_risk", training_data=uri, card=CARD)
    other = register(alice)
    flagged = alice.flag_data(uri, 0, reason="duplicated rows in the bureau extract")
    assert [mv.version for mv in flagged] == [trained.version]
    assert alice.search(status="revalidation_required").column("version").to_pylist() == [
        trained.version]
    later = alice.register(TinyModel(), "credit_risk", training_data=uri)
    assert later.status["revalidation_required"].startswith("duplicated")
    assert alice.get("credit_risk", other).status == {}
    with pytest.raises(nbr.PolicyViolationError, match="data_recall"):
        alice.request_promotion("credit_risk", trained.version, to="staging")


def _keypair() -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key, key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)


def test_signed_approvals_are_verified(users: Callable[[str], nbr.Registry]) -> None:
    from nbregistry.registry import signing

    key, pem = _keypair()
    bob, alice = users("bob"), users("alice")
    assert len(alice.register_key(pem, user="bob")) == 16  # enrolled by an admin
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="staging")
    alice.request_promotion("credit_risk", v1, to="production")
    with pytest.raises(nbr.PolicyViolationError, match="must be signed"):
        bob.approve("credit_risk", v1)
    with pytest.raises(nbr.PolicyViolationError, match="does not match"):
        bob.approve("credit_risk", v1, signing_key=_keypair()[0])
    done = bob.approve("credit_risk", v1, signing_key=key)
    assert done.approvals[0].signed
    assert alice.verify().ok
    events = alice.refresh().ledger.state.events
    approve = next(e for e in events if e.action == "approve")
    forged = type(approve)(**{**{f: getattr(approve, f) for f in approve.__slots__},
                              "payload": {**approve.payload, "comment": "forged"}})
    problems = signing.signature_problems([e if e is not approve else forged for e in events])
    assert [p.kind for p in problems] == ["signature"]


def test_keys_cannot_be_squatted_or_swapped(users: Callable[[str], nbr.Registry]) -> None:
    """Anyone could register "bob"'s key and approve as bob; now only an admin enrols a
    first key, a rotation needs the old key, and pinned keys catch a swapped log."""
    alice, bob, mallory = users("alice"), users("bob"), users("mallory")
    bob_key, bob_pem = _keypair()
    _evil_key, evil_pem = _keypair()
    with pytest.raises(nbr.PolicyViolationError, match="only an admin"):
        mallory.register_key(evil_pem, user="bob")
    with pytest.raises(nbr.PolicyViolationError, match="enrolled by an admin"):
        bob.register_key(bob_pem)  # even for oneself: the first key comes from an admin
    alice.register_key(bob_pem, user="bob")
    with pytest.raises(nbr.PolicyViolationError, match="must be signed"):
        bob.register_key(evil_pem)  # a rotation is signed by the current key
    new_key, new_pem = _keypair()
    signed_bob = nbr.open_registry(bob.uri, user="bob", signing_key=bob_key)
    signed_bob.register_key(new_pem)
    with pytest.raises(nbr.PolicyViolationError, match="does not match"):
        signed_bob.comment("credit_risk", register(alice), "old key is retired")
    nbr.open_registry(bob.uri, user="bob", signing_key=new_key).comment(
        "credit_risk", 1, "signed with the new key")
    assert alice.verify().ok
    pinned = {"bob": [bob_pem.decode(), new_pem.decode()]}
    assert alice.verify(trusted_keys=pinned).ok
    wrong = alice.verify(trusted_keys={"bob": evil_pem.decode()})
    assert {p.kind for p in wrong.problems} == {"pinned_key"}
    assert not alice.verify(trusted_keys={"alice": evil_pem.decode()}).ok  # unsigned alice


def test_grant_role_is_idempotent(registry: nbr.Registry) -> None:
    registry.grant_role("bob", "validator")
    head = registry.head
    registry.grant_role("bob", "validator")
    assert registry.head == head and registry.roles() == {"alice": ["admin"], "bob": ["validator"]}


def test_approve_rechecks_the_transition(users: Callable[[str], nbr.Registry]) -> None:
    """A request for a version archived meanwhile must not promote it to production."""
    alice, bob = users("alice"), users("bob")
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="staging")
    alice.request_promotion("credit_risk", v1, to="production")
    alice.set_policy(alice.policy.source | {"stages": {
        **alice.policy.source["stages"], "archived": {"approvals": 0}}})
    alice.request_promotion("credit_risk", v1, to="archived")
    with pytest.raises(nbr.PolicyViolationError, match="archived -> production"):
        bob.approve("credit_risk", v1, to="production")
    assert alice.get("credit_risk", v1).stage == "archived"


def test_rollback_passes_the_gates(users: Callable[[str], nbr.Registry],
                                   tmp_path: object) -> None:
    alice = users("alice")
    data = f"{tmp_path}/train"
    import pyarrow as pa

    from nbregistry.store import write_table
    write_table(data, pa.table({"x": [1, 2]}))
    v1 = alice.register(TinyModel(1), "credit_risk", metrics={"auc": 0.8}, card=CARD,
                        training_data=data).version
    to_production(users, v1)
    v2 = register(alice, 0.82)
    to_production(users, v2)
    alice.flag_data(f"file://{data}", 0, reason="label leak found")
    with pytest.raises(nbr.PolicyViolationError, match="data_recall"):
        users("bob").rollback("credit_risk", stage="production", reason="v2 misbehaves")
    assert alice.get("credit_risk", stage="production").version == v2


def test_quorum_is_reevaluated_when_it_completes(users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    alice.set_policy(QUORUM_2)
    alice.grant_role("erin", "validator")
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="production")
    users("bob").approve("credit_risk", v1)
    alice.revoke_role("bob", "validator")  # bob's approval no longer counts
    request = users("carol").approve("credit_risk", v1)
    assert request.status == "open" and alice.get("credit_risk", v1).stage == "development"
    done = users("erin").approve("credit_risk", v1)
    assert done.status == "promoted"


def test_a_tightened_quorum_applies_to_open_requests(
        users: Callable[[str], nbr.Registry]) -> None:
    alice = users("alice")
    v1 = register(alice)
    alice.request_promotion("credit_risk", v1, to="staging")
    alice.request_promotion("credit_risk", v1, to="production")  # 1 approval required
    source = alice.policy.source
    alice.set_policy(source | {"stages": {**source["stages"], "production": {
        **source["stages"]["production"], "approvals": 2}}})
    assert users("bob").approve("credit_risk", v1).status == "open"
    assert users("carol").approve("credit_risk", v1).status == "promoted"


def test_flag_data_matches_however_the_path_was_spelled(registry: nbr.Registry,
                                                        tmp_path: object) -> None:
    import pyarrow as pa

    from nbregistry.store import write_table
    data = f"{tmp_path}/t"
    write_table(data, pa.table({"x": [1]}))
    registry.register(TinyModel(), "m", training_data=f"file://{data}")
    flagged = registry.flag_data(f"{tmp_path}/./t", 0, reason="bad rows")
    assert [(mv.name, mv.version) for mv in flagged] == [("m", 1)]


def test_deployments_must_be_of_the_approved_version(users: Callable[[str], nbr.Registry]
                                                    ) -> None:
    alice = users("alice")
    v1 = register(alice)
    with pytest.raises(nbr.PolicyViolationError, match="only the version approved"):
        alice.record_deployment("credit_risk", v1, "scoring-eu")
    to_production(users, v1)
    ok = alice.record_deployment("credit_risk", v1, "scoring-eu")
    assert ok.payload["matches"] and ok.payload["request_id"]
    odd = alice.record_deployment("credit_risk", v1, "scoring-us", sha256="ab" * 32)
    assert not odd.payload["matches"]
    assert alice.deployments("credit_risk").column("seq").to_pylist() == [ok.seq, odd.seq]
    with pytest.raises(nbr.InvalidInputError, match="64 hexadecimal"):
        alice.record_deployment("credit_risk", v1, "x", sha256="nothex")
