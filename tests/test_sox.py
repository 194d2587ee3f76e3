"""SOX change evidence from the raw event log (no kernel: the pure analysis)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import nbregistry as nbr
from nbregistry.registry.reporting import shipped_templates
from nbregistry.reports import sox
from reportworld import CARD, deployers, governed, users


def _events(reg: nbr.Registry) -> list[nbr.Event]:
    return reg.events()


def test_population_and_exceptions(registry_uri: str) -> None:
    world = governed(registry_uri)
    events = _events(world["alice"])
    result = sox.analyse(events, model="credit", now=events[-1].ts + timedelta(hours=100))
    kinds = [c["change"] for c in result.changes]
    assert kinds == ["promotion", "emergency promotion", "emergency promotion", "rollback"]
    first = result.changes[0]
    assert first["requested_by"] == "alice" and first["approvers"] == ["bob"]
    assert first["approvers_independent"] and first["exceptions"] == []
    assert [d["hash_matches"] for d in result.deployments] == [True, False]
    assert all(d["approved_before"] for d in result.deployments)
    checks = sorted((e["check"], e["version"]) for e in result.exceptions)
    # the unapproved hash, and v2's emergency never ratified; v3's ratification by bob is fine
    assert checks == [("deployed_hash", 1), ("emergency_ratification", 2)]
    bad = next(e for e in result.exceptions if e["check"] == "deployed_hash")
    assert bad["seq"] == world["bad_deploy"].seq and "abababab" in bad["finding"]
    assert result.changes[2]["ratified_by"] == ["bob"]
    assert [(r["change"], r["user"], r["role"]) for r in result.roles] == [
        ("granted", "bob", "validator"), ("granted", "carol", "risk_officer"),
        ("granted", "dave", "deployer"), ("revoked", "carol", "risk_officer")]
    assert all(d["deployed_by"] == "dave" and d["deployer_ok"] for d in result.deployments)
    figures = result.figures()
    assert figures["hash_mismatches"] == 1 and figures["unratified_emergencies"] == 1
    assert figures["production_changes"] == 4 and figures["deployments"] == 2
    assert figures["sod_violations"] == figures["deployer_role_violations"] == 0


def test_an_emergency_within_its_window_is_not_yet_an_exception(registry_uri: str) -> None:
    world = governed(registry_uri)
    events = _events(world["alice"])
    result = sox.analyse(events, now=events[-1].ts)  # v2's 72 h have not passed
    assert [e["check"] for e in result.exceptions] == ["deployed_hash"]


def test_the_period_filters_the_population(registry_uri: str) -> None:
    world = governed(registry_uri)
    events = _events(world["alice"])
    cut = world["bad_deploy"].ts + timedelta(microseconds=1)
    before = sox.analyse(events, end=cut)
    after = sox.analyse(events, start=cut)
    assert len(before.deployments) == 2 and not after.deployments
    assert len(before.changes) + len(after.changes) == 4


def test_self_approval_allowed_by_the_policy_is_still_an_exception(registry_uri: str) -> None:
    from conftest import TinyModel

    alice = nbr.open_registry(registry_uri, user="alice", create=True)
    source = alice.policy.source
    stages = {**source["stages"], "production": {**source["stages"]["production"],
                                                 "distinct_from": [],
                                                 "approver_roles": ["admin"]}}
    alice.set_policy({**source, "stages": stages})
    alice.register(TinyModel(1.0), "credit", card={"intended_use": "a", "limitations": "b"})
    alice.request_promotion("credit", 1, to="staging")
    alice.request_promotion("credit", 1, to="production")
    alice.approve("credit", 1)
    result = sox.analyse(_events(alice))
    assert [e["check"] for e in result.exceptions] == ["segregation_of_duties"]
    assert result.changes[0]["approvers_independent"] is False


def test_a_deployment_the_log_does_not_show_approved_is_an_exception() -> None:
    from datetime import UTC, datetime

    from nbregistry.domain.entities import Event

    def event(seq: int, action: str, version: int, payload: dict[str, object]) -> Event:
        return Event(seq, f"e{seq}", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq),
                     "mallory", action, "credit", version, payload, "{}", "", "")

    forged = [event(1, "register", 1, {"sha256": "cd" * 32}),
              event(2, "deploy", 1, {"target": "prod", "stage": "production",
                                     "sha256": "cd" * 32, "approved_sha256": "cd" * 32,
                                     "matches": True, "request_id": None, "comment": ""})]
    result = sox.analyse(forged)
    assert [e["check"] for e in result.exceptions] == ["approval_before_deployment",
                                                        "deployer_role"]


def test_the_deployer_holds_a_deploying_role_and_is_none_of_the_change_makers(
        registry_uri: str) -> None:
    """ds-alice registered, requested and deployed: the approval's segregation passed, the
    deployment's did not; a deployment by a user holding no role is flagged too."""
    from conftest import TinyModel

    people = users(registry_uri)
    alice, bob = people["alice"], people["bob"]
    alice.register(TinyModel(1.0), "credit", card=CARD)
    alice.request_promotion("credit", 1, to="staging")
    alice.request_promotion("credit", 1, to="production")
    bob.approve("credit", 1)
    by_alice = alice.record_deployment("credit", 1, "scoring-eu")
    by_erin = nbr.open_registry(registry_uri, user="erin").record_deployment("credit", 1, "eu")
    deployers(alice)  # now only a 'deployer' may deploy: bob, a validator, may not
    by_bob = bob.record_deployment("credit", 1, "scoring-us")
    result = sox.analyse(_events(alice))
    found = sorted((e["seq"], e["check"]) for e in result.exceptions)
    assert found == [(by_alice.seq, "deployer_segregation"), (by_erin.seq, "deployer_role"),
                     (by_bob.seq, "deployer_role"), (by_bob.seq, "deployer_segregation")]
    finding = {e["seq"]: e["finding"] for e in result.exceptions
               if e["check"] == "deployer_segregation"}
    assert "alice deployed a change they requested" in finding[by_alice.seq]
    assert "bob deployed a change they approved" in finding[by_bob.seq]
    assert result.changes[0]["approvers_independent"] and not result.deployments[0]["deployer_ok"]
    assert result.figures()["sod_violations"] == 2
    assert result.figures()["deployer_role_violations"] == 2


def _record_validation(reg: nbr.Registry, version: int) -> nbr.Event:
    """A validation report event as the runner records it (outputs in the store)."""
    shipped = next(s for s, n in shipped_templates().items() if n == "validation")
    stored = reg.ledger.blobs.put(f"notebook of v{version}".encode())
    return reg.record_report("validation", model="credit", version=version,
                             parameters={"model": "credit", "version": version}, tables={},
                             head=list(reg.head), outputs={"validation.ipynb": stored},
                             sha256=stored, output_dir="/tmp/x", template_sha256=shipped)


def test_the_order_of_validation_report_approval_and_deployment(registry_uri: str) -> None:
    from conftest import TinyModel

    people = users(registry_uri)
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    deployers(alice)
    alice.grant_role("dave", "deployer")
    alice.register(TinyModel(1.0), "credit", card=CARD)
    alice.request_promotion("credit", 1, to="staging")
    alice.request_promotion("credit", 1, to="production")
    source = alice.policy.source  # from now on, production needs a validation report
    required = {**source["stages"]["production"], "reports": ["validation"]}
    alice.set_policy({**source, "stages": {**source["stages"], "production": required}})
    with pytest.raises(nbr.PolicyViolationError, match="report:validation"):
        bob.approve("credit", 1)  # the gate: no validation report yet
    with pytest.raises(nbr.PolicyViolationError, match="may not record a report"):
        _record_validation(nbr.open_registry(registry_uri, user="erin"), 1)
    report = _record_validation(carol, 1)
    approved = bob.approve("credit", 1)
    deployed = nbr.open_registry(registry_uri, user="dave").record_deployment("credit", 1, "eu")
    result = sox.analyse(_events(alice))
    assert result.exceptions == []
    order = result.order[0]
    assert order["validation_report_seq"] == report.seq < order["approval_seq"]
    assert order["deployment_seqs"] == [deployed.seq] and order["requirement"] == "met"
    assert order["order"] == (f"validation report {report.seq} → approval "
                              f"{order['approval_seq']} → deployment {deployed.seq}")
    assert approved.gates[-1].evidence["seq"] == report.seq


def test_an_approval_the_policy_required_a_report_for_is_an_exception_without_one() -> None:
    """What the gate stops through the API, written straight into storage: a promotion to
    production with no validation report before it while the policy required one, and a
    report of an unknown template (it does not count)."""
    from datetime import UTC, datetime

    from nbregistry.domain.entities import Event

    def event(seq: int, actor: str, action: str, payload: dict[str, object],
              version: int | None = 1) -> Event:
        return Event(seq, f"e{seq}", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq),
                     actor, action, "credit" if version else None, version, payload, "{}",
                     "", "")

    source = sox.parse_policy(sox.tomllib.loads(sox.DEFAULT_POLICY_TOML)).source
    required = {**source["stages"]["production"], "reports": ["validation"]}
    forged = [event(1, "alice", "create_registry", {"format": 1, "creator": "alice"}, None),
              event(2, "alice", "set_policy", {"policy": {**source, "stages": {
                  **source["stages"], "production": required}}}, None),
              event(3, "alice", "register", {"sha256": "cd" * 32}),
              event(4, "alice", "report", {"template": "validation", "outputs": {},
                                           "template_sha256": "ef" * 32}),
              event(5, "alice", "request_promotion", {
                  "request_id": "r1", "to": "production", "emergency": False, "required": 0,
                  "promotion": {"gates": []}})]
    result = sox.analyse(forged)
    assert [e["check"] for e in result.exceptions] == ["report_before_approval"]
    assert result.order[0]["validation_report_seq"] is None
    assert result.order[0]["requirement"] == "MISSING: validation"
    assert result.order[0]["order"] == "no validation report → approval 5"
    assert result.figures()["approvals_without_report"] == 1


def test_automatic_actions_are_changes_needing_ratification(registry_uri: str) -> None:
    from conftest import TinyModel
    from nbregistry.registry.monitoring_events import MonitoringEvents

    people = users(registry_uri)
    alice, bob = people["alice"], people["bob"]
    for weight in (1.0, 2.0):
        alice.register(TinyModel(weight), "credit", card=CARD)
        alice.request_promotion("credit", int(weight), to="staging")
        alice.request_promotion("credit", int(weight), to="production")
        bob.approve("credit", int(weight))
    alice.grant_role("ops", "data_scientist")
    alice.set_policy({**alice.policy.source, "monitoring": {"action_roles": ["data_scientist"]}})
    ops = nbr.open_registry(registry_uri, user="ops")
    writes = MonitoringEvents(ops.ledger)
    retrain = writes.request_retraining("credit", 2, reason="psi alert", alert_seq=None)
    rollback = writes.roll_back("credit", from_version=2, reason="auc alert",
                                alert_seq=retrain.seq)
    late = rollback.ts + timedelta(hours=100)
    result = sox.analyse(_events(alice), now=late)
    rows = {r["seq"]: r for r in result.automatic}
    assert [rows[s]["action"] for s in (retrain.seq, rollback.seq)] == [
        "retraining request", "rollback"]
    assert all(r["status"] == "overdue" and r["by"] == "ops" for r in rows.values())
    assert sorted(e["seq"] for e in result.exceptions
                  if e["check"] == "automatic_action_ratification") == [retrain.seq, rollback.seq]
    pending = sox.analyse(_events(alice), now=rollback.ts)
    assert pending.exceptions == [] and pending.automatic[0]["status"].startswith("pending")
    with pytest.raises(nbr.PolicyViolationError, match="may not ratify"):
        ops.ratify("credit", retrain.seq, comment="fine")
    with pytest.raises(nbr.InvalidInputError, match="not an automatic"):
        bob.ratify("credit", 2, comment="fine")
    bob.ratify("credit", retrain.seq, comment="retraining agreed")
    bob.ratify("credit", rollback.seq, comment="rollback reviewed")
    done = sox.analyse(_events(alice), now=late)
    assert done.exceptions == [] and {r["ratified_by"] for r in done.automatic} == {"bob"}
    assert done.figures()["automatic_actions"] == 2
    assert done.figures()["unratified_automatic_actions"] == 0
