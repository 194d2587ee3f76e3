"""SOX change evidence from the raw event log (no kernel: the pure analysis)."""

from __future__ import annotations

from datetime import timedelta

import nbregistry as nbr
from nbregistry.reports import sox
from reportworld import governed


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
    assert first["sod_ok"] and first["exceptions"] == []
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
        ("revoked", "carol", "risk_officer")]
    figures = result.figures()
    assert figures["hash_mismatches"] == 1 and figures["unratified_emergencies"] == 1
    assert figures["production_changes"] == 4 and figures["deployments"] == 2


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
    assert result.changes[0]["sod_ok"] is False


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
    assert [e["check"] for e in result.exceptions] == ["approval_before_deployment"]
