"""SOX change evidence from the event log alone: a pure replay of the events, independent of
the registry's own fold (so a bug there cannot hide an exception here).

The population is every change of a controlled stage (``production``) in the period:
promotions, rollbacks and recorded deployments. Each promotion is tested for segregation of
duties (no approver is the requester or the registrant, whatever the policy allowed), its
approval quorum, its gates, and, for an emergency, ratification within the policy's window.
Each deployment is tested for approval before deployment and for the deployed artifact's
hash being the approved (registered) one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..domain.entities import Event

DEFAULT_WINDOW_HOURS = 72.0


@dataclass
class SoxResult:
    changes: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, int]:
        def count(what: str) -> int:
            return sum(1 for e in self.exceptions if e["check"] == what)

        return {"production_changes": len(self.changes),
                "deployments": len(self.deployments),
                "exceptions": len(self.exceptions),
                "sod_violations": count("segregation_of_duties"),
                "hash_mismatches": count("deployed_hash"),
                "unapproved_deployments": count("approval_before_deployment"),
                "unratified_emergencies": count("emergency_ratification"),
                "role_changes": len(self.roles)}


@dataclass
class _Request:
    event: Event
    approvals: list[Event] = field(default_factory=list)
    promoted: Event | None = None


def analyse(events: Iterable[Event], *, start: datetime | None = None,
            end: datetime | None = None, stage: str = "production",
            model: str | None = None, now: datetime | None = None) -> SoxResult:
    """Replay ``events`` (oldest first) and test every change of ``stage`` in
    ``[start, end)`` (of ``model``, or of every model). ``now`` (default: ``end``, else the
    last event) is when an unratified emergency is judged overdue."""
    events = list(events)
    now = now or end or (events[-1].ts if events else None)
    registered: dict[tuple[str, int], Event] = {}
    requests: dict[str, _Request] = {}
    holder: dict[str, tuple[int, Event]] = {}  # model -> (version holding stage, since)
    window = DEFAULT_WINDOW_HOURS
    result = SoxResult()
    promotions: list[_Request] = []

    def wanted(event: Event) -> bool:
        return ((start is None or event.ts >= start) and (end is None or event.ts < end)
                and (model is None or event.model == model))

    for event in events:
        p = event.payload
        if event.action == "register" and event.version is not None and event.model:
            registered[(event.model, event.version)] = event
        elif event.action == "set_policy":
            rules = p.get("policy", {}).get("stages", {}).get(stage, {})
            window = float(rules.get("emergency_window_hours", DEFAULT_WINDOW_HOURS))
        elif event.action in ("grant_role", "revoke_role") and wanted_role(event, start, end):
            result.roles.append(role_row(event))
        elif event.action == "request_promotion" and p.get("to") == stage:
            requests[p["request_id"]] = _Request(event)
        elif event.action == "approve" and p.get("request_id") in requests:
            requests[p["request_id"]].approvals.append(event)
        if "promotion" in p and p.get("request_id") in requests and event.action in (
                "request_promotion", "approve"):
            request = requests[p["request_id"]]
            request.promoted = event
            assert event.model is not None and event.version is not None
            holder[event.model] = (event.version, event)
            if wanted(event):
                promotions.append(request)
        elif event.action == "rollback" and p.get("stage") == stage and event.model:
            holder[event.model] = (p["to_version"], event)
            if wanted(event):
                result.changes.append(rollback_row(event))
        elif event.action == "deploy" and p.get("stage") == stage and wanted(event):
            row = deployment_row(event, registered, holder)
            result.deployments.append(row)
            result.exceptions += [exception(event, check, text) for check, text in row.pop(
                "_problems")]
    for request in promotions:
        row, problems = promotion_row(request, registered, window, now)
        result.changes.append(row)
        assert request.promoted is not None
        result.exceptions += [exception(request.promoted, c, t) for c, t in problems]
    result.changes.sort(key=lambda r: r["seq"])
    result.exceptions.sort(key=lambda r: r["seq"])
    return result


def wanted_role(event: Event, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or event.ts >= start) and (end is None or event.ts < end)


def role_row(event: Event) -> dict[str, Any]:
    p = event.payload
    return {"seq": event.seq, "ts": event.ts, "by": event.actor,
            "change": "granted" if event.action == "grant_role" else "revoked",
            "user": p.get("user"), "role": p.get("role"),
            "note": "self-granted" if event.actor == p.get("user") and
            event.action == "grant_role" else ""}


def promotion_row(request: _Request, registered: dict[tuple[str, int], Event],
                  window_hours: float, now: datetime | None
                  ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    opened, promoted = request.event, request.promoted
    assert promoted is not None and opened.model is not None and opened.version is not None
    p = opened.payload
    registrant = registered.get((opened.model, opened.version))
    registrant_name = registrant.actor if registrant else None
    before = [a for a in request.approvals if a.seq <= promoted.seq]
    later = [a for a in request.approvals if a.seq > promoted.seq or a.payload.get("ratified")]
    approvers = [a.actor for a in before]
    problems: list[tuple[str, str]] = []
    conflicted = sorted({a.actor for a in request.approvals}
                        & {opened.actor, registrant_name} - {None})
    if conflicted:
        problems.append(("segregation_of_duties", f"{', '.join(conflicted)} approved a change "
                         "they requested or registered"))
    if not p.get("emergency") and len(set(approvers)) < int(p.get("required", 0)):
        problems.append(("approval_quorum", f"{len(set(approvers))} distinct approval(s) of "
                         f"{p.get('required')} required before promotion"))
    gates = promoted.payload["promotion"].get("gates", [])
    failed = [g["gate"] for g in gates if not g.get("passed")]
    if failed and not p.get("emergency"):
        problems.append(("gates", f"promoted with failed gate(s): {', '.join(failed)}"))
    ratified_by = [a.actor for a in later if a.payload.get("ratified")]
    ratified_at = next((a.ts for a in later if a.payload.get("ratified")), None)
    if p.get("emergency"):
        deadline = promoted.ts + timedelta(hours=window_hours)
        if ratified_at is None and (now is None or now > deadline):
            problems.append(("emergency_ratification", "emergency promotion not ratified "
                             f"within {window_hours:g} h"))
        elif ratified_at is not None and ratified_at > deadline:
            problems.append(("emergency_ratification", "emergency promotion ratified after "
                             f"its {window_hours:g} h window"))
    row = {"seq": promoted.seq, "ts": promoted.ts,
           "change": "emergency promotion" if p.get("emergency") else "promotion",
           "model": opened.model, "version": opened.version, "replaces": p.get("replaces"),
           "requested_by": opened.actor, "requested_at": opened.ts,
           "registered_by": registrant_name, "approvers": approvers,
           "approved_at": before[-1].ts if before else None,
           "sod_ok": not conflicted, "gates": [f"{g['gate']}: {'pass' if g['passed'] else 'FAIL'}"
                                              for g in gates],
           "emergency": bool(p.get("emergency")), "ratified_by": ratified_by,
           "ratified_at": ratified_at, "exceptions": [c for c, _ in problems]}
    return row, problems


def rollback_row(event: Event) -> dict[str, Any]:
    p = event.payload
    return {"seq": event.seq, "ts": event.ts,
            "change": "automatic rollback" if p.get("automatic") else "rollback",
            "model": event.model, "version": p["to_version"], "replaces": p["from_version"],
            "requested_by": event.actor, "requested_at": event.ts, "registered_by": None,
            "approvers": [], "approved_at": None, "sod_ok": True,
            "gates": [f"{g['gate']}: {'pass' if g['passed'] else 'FAIL'}"
                      for g in p.get("gates", [])], "emergency": False, "ratified_by": [],
            "ratified_at": None, "exceptions": [], "reason": p.get("reason", "")}


def deployment_row(event: Event, registered: dict[tuple[str, int], Event],
                   holder: dict[str, tuple[int, Event]]) -> dict[str, Any]:
    p = event.payload
    assert event.model is not None
    registrant = registered.get((event.model, event.version or 0))
    approved_sha = registrant.payload["sha256"] if registrant else None
    held = holder.get(event.model)
    approved_before = held is not None and held[0] == event.version and held[1].seq < event.seq
    matches = approved_sha is not None and p["sha256"] == approved_sha
    problems = []
    if not approved_before:
        problems.append(("approval_before_deployment", f"v{event.version} did not hold "
                         f"{p['stage']} (approved) when it was deployed to {p['target']}"))
    if not matches:
        problems.append(("deployed_hash", f"deployed sha256 {p['sha256'][:12]}… is not the "
                         f"approved artifact {str(approved_sha)[:12]}…"))
    return {"seq": event.seq, "ts": event.ts, "deployed_by": event.actor, "model": event.model,
            "version": event.version, "target": p["target"], "deployed_sha256": p["sha256"],
            "approved_sha256": approved_sha, "hash_matches": matches,
            "approved_before": approved_before,
            "approval_seq": held[1].seq if held is not None else None,
            "exceptions": [c for c, _ in problems], "_problems": problems}


def exception(event: Event, check: str, text: str) -> dict[str, Any]:
    return {"seq": event.seq, "ts": event.ts, "model": event.model, "version": event.version,
            "check": check, "finding": text}
