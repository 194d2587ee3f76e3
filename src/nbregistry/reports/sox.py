"""SOX change evidence from the event log alone: a pure replay of the events, independent of
the registry's own fold (so a bug there cannot hide an exception here). Roles and the
policy are replayed too, so every test uses what was in force when the change was made.

The population is every change of a controlled stage (``production``) in the period:
promotions, rollbacks, recorded deployments and the automatic actions of monitoring.

- A promotion: segregation of duties (no approver is the requester or the registrant,
  whatever the policy allowed), the approval quorum, the gates, an emergency's
  ratification within the policy's window, and the reports the policy required before the
  approval (``reports = ["validation"]``): a report counts when its template is a known one
  (by sha256) and its recorder held a reporting role.
- A deployment: the version held the stage (was approved) before it was deployed, the
  deployed hash is the approved artifact's, the deployer holds a deploying role
  (``deployer_roles``, else any role the policy names) and is neither the registrant, the
  requester nor an approver of that promotion.
- An automatic action (a rollback or retraining request recorded by a monitoring check) is
  a change nobody approved: an approver of the stage, not who ran the check, ratifies it
  (``reg.ratify``) within the emergency window.
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..domain.entities import Event
from ..domain.errors import InvalidInputError
from ..domain.policy import DEFAULT_POLICY_TOML, Policy, parse_policy
from ..registry import reporting

DEFAULT_WINDOW_HOURS = 72.0


@dataclass
class SoxResult:
    changes: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    automatic: list[dict[str, Any]] = field(default_factory=list)
    order: list[dict[str, Any]] = field(default_factory=list)  # report -> approval -> deploy

    def figures(self) -> dict[str, int]:
        def count(*what: str) -> int:
            return sum(1 for e in self.exceptions if e["check"] in what)

        return {"production_changes": len(self.changes),
                "deployments": len(self.deployments),
                "exceptions": len(self.exceptions),
                "sod_violations": count("segregation_of_duties", "deployer_segregation"),
                "hash_mismatches": count("deployed_hash"),
                "unapproved_deployments": count("approval_before_deployment"),
                "deployer_role_violations": count("deployer_role"),
                "approvals_without_report": count("report_before_approval"),
                "unratified_emergencies": count("emergency_ratification"),
                "automatic_actions": len(self.automatic),
                "unratified_automatic_actions": count("automatic_action_ratification"),
                "role_changes": len(self.roles)}


@dataclass
class _Request:
    event: Event
    approvals: list[Event] = field(default_factory=list)
    promoted: Event | None = None
    reports: dict[str, Event | None] = field(default_factory=dict)  # required -> counting
    required: tuple[str, ...] = ()
    deployments: list[int] = field(default_factory=list)


def analyse(events: Iterable[Event], *, start: datetime | None = None,
            end: datetime | None = None, stage: str = "production",
            model: str | None = None, now: datetime | None = None) -> SoxResult:
    """Replay ``events`` (oldest first) and test every change of ``stage`` in
    ``[start, end)`` (of ``model``, or of every model). ``now`` (default: ``end``, else the
    last event) is when an unratified emergency or automatic action is judged overdue."""
    events = list(events)
    replay = _Replay(start, end, stage, model)
    for event in events:
        replay.apply(event)
    return replay.finish(now or end or (events[-1].ts if events else None))


class _Replay:
    def __init__(self, start: datetime | None, end: datetime | None, stage: str,
                 model: str | None) -> None:
        self.start, self.end, self.stage, self.model = start, end, stage, model
        self.registered: dict[tuple[str, int], Event] = {}
        self.requests: dict[str, _Request] = {}
        self.holder: dict[str, tuple[int, Event]] = {}  # model -> (version, since)
        self.promotion_of: dict[tuple[str, int], _Request] = {}
        self.roles: dict[str, set[str]] = {}
        self.policy: Policy = parse_policy(tomllib.loads(DEFAULT_POLICY_TOML))
        self.reports: dict[tuple[str, int], list[tuple[str, Event]]] = {}
        self.ratified: dict[int, list[Event]] = {}
        self.automatic: list[tuple[Event, float]] = []
        self.promotions: list[_Request] = []
        self.result = SoxResult()

    def wanted(self, event: Event, *, any_model: bool = False) -> bool:
        return ((self.start is None or event.ts >= self.start)
                and (self.end is None or event.ts < self.end)
                and (any_model or self.model is None or event.model == self.model))

    def rules(self) -> dict[str, Any]:
        found: dict[str, Any] = self.policy.source.get("stages", {}).get(self.stage, {})
        return found

    def apply(self, event: Event) -> None:
        handler = getattr(self, f"_{event.action}", None)
        if handler is not None:
            handler(event, event.payload)

    def _create_registry(self, event: Event, p: dict[str, Any]) -> None:
        self.roles.setdefault(event.actor, set()).add("admin")

    def _register(self, event: Event, p: dict[str, Any]) -> None:
        if event.version is not None and event.model:
            self.registered[(event.model, event.version)] = event

    def _set_policy(self, event: Event, p: dict[str, Any]) -> None:
        if "admin" in self.roles.get(event.actor, set()):
            with contextlib.suppress(InvalidInputError):  # the fold skips it too
                self.policy = parse_policy(p.get("policy", {}), strict=False)

    def _grant_role(self, event: Event, p: dict[str, Any]) -> None:
        if "admin" in self.roles.get(event.actor, set()):
            change = self.roles.setdefault(str(p.get("user")), set())
            (change.add if event.action == "grant_role" else change.discard)(str(p.get("role")))
            if self.wanted(event, any_model=True):
                self.result.roles.append(role_row(event))

    _revoke_role = _grant_role

    def _report(self, event: Event, p: dict[str, Any]) -> None:
        name = reporting.known_template(self.policy, p.get("template_sha256"))
        if (name is not None and event.model and event.version is not None
                and reporting.may_record(self.policy, self.roles.get(event.actor, set()))):
            self.reports.setdefault((event.model, event.version), []).append((name, event))

    def _request_promotion(self, event: Event, p: dict[str, Any]) -> None:
        if p.get("to") == self.stage:
            self.requests[p["request_id"]] = _Request(event)
        self._promoted(event, p)

    def _approve(self, event: Event, p: dict[str, Any]) -> None:
        if p.get("request_id") in self.requests:
            self.requests[p["request_id"]].approvals.append(event)
        self._promoted(event, p)

    def _promoted(self, event: Event, p: dict[str, Any]) -> None:
        request = self.requests.get(p.get("request_id", ""))
        if "promotion" not in p or request is None:
            return
        assert event.model is not None and event.version is not None
        request.promoted = event
        request.required = tuple(self.rules().get("reports", []))
        done = self.reports.get((event.model, event.version), [])
        request.reports = {t: next((e for n, e in reversed(done) if n == t), None)
                           for t in {*request.required, "validation"}}
        self.holder[event.model] = (event.version, event)
        self.promotion_of[(event.model, event.version)] = request
        if self.wanted(event):
            self.promotions.append(request)

    def _rollback(self, event: Event, p: dict[str, Any]) -> None:
        if p.get("stage") == self.stage and event.model:
            self.holder[event.model] = (p["to_version"], event)
            if self.wanted(event):
                self.result.changes.append(rollback_row(event))
                if p.get("automatic"):
                    self.automatic.append((event, self.window()))

    def _retrain_requested(self, event: Event, p: dict[str, Any]) -> None:
        if self.wanted(event):
            self.automatic.append((event, self.window()))

    def _comment(self, event: Event, p: dict[str, Any]) -> None:
        """A ratification counts from an approver of the stage (or an admin) at the time."""
        allowed = {*self.rules().get("approver_roles", []), "admin"}
        if isinstance(p.get("ratifies"), int) and self.roles.get(event.actor, set()) & allowed:
            self.ratified.setdefault(p["ratifies"], []).append(event)

    def _deploy(self, event: Event, p: dict[str, Any]) -> None:
        if p.get("stage") != self.stage or not self.wanted(event):
            return
        assert event.model is not None
        request = self.promotion_of.get((event.model, event.version or 0))
        if request is not None:
            request.deployments.append(event.seq)
        row, problems = deployment_row(event, self.registered, self.holder, request,
                                       self._deployer_problems(event, request))
        self.result.deployments.append(row)
        self.result.exceptions += [exception(event, c, t) for c, t in problems]

    def _deployer_problems(self, event: Event, request: _Request | None
                           ) -> list[tuple[str, str]]:
        held = self.roles.get(event.actor, set())
        allowed = tuple(self.rules().get("deployer_roles", []))
        problems = []
        if not (held & set(allowed) if allowed else held):
            problems.append(("deployer_role", f"{event.actor} deployed holding "
                             f"{', '.join(sorted(held)) or 'no role'}; the policy requires "
                             f"{', '.join(allowed) or 'a role it names'}"))
        if request is not None:
            involved = _involved(request, self.registered)
            if event.actor in involved:
                problems.append(("deployer_segregation", f"{event.actor} deployed a change "
                                 f"they {involved[event.actor]}"))
        return problems

    def window(self) -> float:
        return float(self.rules().get("emergency_window_hours", DEFAULT_WINDOW_HOURS))

    def finish(self, now: datetime | None) -> SoxResult:
        result = self.result
        for request in self.promotions:
            row, problems = promotion_row(request, self.registered, self.window(), now)
            result.changes.append(row)
            result.order.append(order_row(request))
            assert request.promoted is not None
            result.exceptions += [exception(request.promoted, c, t) for c, t in problems]
        for event, hours in self.automatic:
            row, problems = automatic_row(event, self.ratified.get(event.seq, []), hours,
                                          now)
            result.automatic.append(row)
            result.exceptions += [exception(event, c, t) for c, t in problems]
        result.changes.sort(key=lambda r: r["seq"])
        result.exceptions.sort(key=lambda r: r["seq"])
        return result


def _involved(request: _Request, registered: dict[tuple[str, int], Event]) -> dict[str, str]:
    """Who took part in a promotion, and how (the deployer must be none of them)."""
    opened = request.event
    out = {a.actor: "approved" for a in request.approvals}
    out[opened.actor] = "requested"
    registrant = registered.get((opened.model or "", opened.version or 0))
    if registrant is not None:
        out.setdefault(registrant.actor, "registered")
    return out


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
    problems += [("report_before_approval", f"the policy required a {t} report before "
                  f"approval; none that counts was recorded for v{opened.version} before "
                  f"event {promoted.seq}") for t in request.required if not request.reports.get(t)]
    ratified_by, ratified_at, late = _ratification(request, promoted, window_hours, now)
    if late:
        problems.append(("emergency_ratification", late))
    row = {"seq": promoted.seq, "ts": promoted.ts,
           "change": "emergency promotion" if p.get("emergency") else "promotion",
           "model": opened.model, "version": opened.version, "replaces": p.get("replaces"),
           "requested_by": opened.actor, "requested_at": opened.ts,
           "registered_by": registrant_name, "approvers": approvers,
           "approved_at": before[-1].ts if before else None,
           "approvers_independent": not conflicted,
           "gates": [f"{g['gate']}: {'pass' if g['passed'] else 'FAIL'}" for g in gates],
           "emergency": bool(p.get("emergency")), "ratified_by": ratified_by,
           "ratified_at": ratified_at, "exceptions": [c for c, _ in problems]}
    return row, problems


def _ratification(request: _Request, promoted: Event, window_hours: float,
                  now: datetime | None) -> tuple[list[str], datetime | None, str | None]:
    later = [a for a in request.approvals if a.seq > promoted.seq or a.payload.get("ratified")]
    ratified_by = [a.actor for a in later if a.payload.get("ratified")]
    ratified_at = next((a.ts for a in later if a.payload.get("ratified")), None)
    if not request.event.payload.get("emergency"):
        return ratified_by, ratified_at, None
    deadline = promoted.ts + timedelta(hours=window_hours)
    if ratified_at is None and (now is None or now > deadline):
        return ratified_by, ratified_at, (f"emergency promotion not ratified within "
                                          f"{window_hours:g} h")
    if ratified_at is not None and ratified_at > deadline:
        return ratified_by, ratified_at, (f"emergency promotion ratified after its "
                                          f"{window_hours:g} h window")
    return ratified_by, ratified_at, None


def order_row(request: _Request) -> dict[str, Any]:
    """The order of the evidence for one promotion, as the log has it: the validation
    report that counts (the newest before the approval), the approval, the deployments;
    and whether the reports the policy required came first."""
    promoted = request.promoted
    assert promoted is not None
    report = request.reports.get("validation")
    steps = ([f"validation report {report.seq}"] if report else ["no validation report"])
    steps.append(f"approval {promoted.seq}")
    steps += [f"deployment {seq}" for seq in request.deployments]
    missing = [t for t in request.required if not request.reports.get(t)]
    return {"model": request.event.model, "version": request.event.version,
            "order": " → ".join(steps),
            "validation_report_seq": report.seq if report else None,
            "validation_report_at": report.ts if report else None,
            "approval_seq": promoted.seq, "approved_at": promoted.ts,
            "deployment_seqs": list(request.deployments),
            "required_reports": list(request.required),
            "requirement": ("not required by the policy" if not request.required else
                            f"MISSING: {', '.join(missing)}" if missing else "met")}


def rollback_row(event: Event) -> dict[str, Any]:
    p = event.payload
    return {"seq": event.seq, "ts": event.ts,
            "change": "automatic rollback" if p.get("automatic") else "rollback",
            "model": event.model, "version": p["to_version"], "replaces": p["from_version"],
            "requested_by": event.actor, "requested_at": event.ts, "registered_by": None,
            "approvers": [], "approved_at": None, "approvers_independent": None,
            "gates": [f"{g['gate']}: {'pass' if g['passed'] else 'FAIL'}"
                      for g in p.get("gates", [])], "emergency": False, "ratified_by": [],
            "ratified_at": None, "exceptions": [], "reason": p.get("reason", "")}


def automatic_row(event: Event, ratifications: list[Event], hours: float,
                  now: datetime | None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """An automatic action and its ratification by an approver other than who ran the
    check."""
    valid = [r for r in ratifications if r.actor != event.actor and r.ts >= event.ts]
    first = valid[0] if valid else None
    deadline = event.ts + timedelta(hours=hours)
    problems = []
    if first is None and (now is None or now > deadline):
        problems.append(("automatic_action_ratification", f"automatic {_kind(event)} not "
                         f"ratified by an approver within {hours:g} h"))
    elif first is not None and first.ts > deadline:
        problems.append(("automatic_action_ratification", f"automatic {_kind(event)} "
                         f"ratified after its {hours:g} h window"))
    status = ("ratified" if first is not None else
              "overdue" if problems else f"pending until {deadline.isoformat(timespec='seconds')}")
    return {"seq": event.seq, "ts": event.ts, "action": _kind(event), "model": event.model,
            "version": event.version, "by": event.actor,
            "alert_seq": event.payload.get("alert_seq"),
            "reason": event.payload.get("reason", ""),
            "ratified_by": first.actor if first else None,
            "ratified_at": first.ts if first else None, "status": status}, problems


def _kind(event: Event) -> str:
    return "rollback" if event.action == "rollback" else "retraining request"


def deployment_row(event: Event, registered: dict[tuple[str, int], Event],
                   holder: dict[str, tuple[int, Event]], request: _Request | None,
                   deployer: list[tuple[str, str]]
                   ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
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
    problems += deployer
    row = {"seq": event.seq, "ts": event.ts, "deployed_by": event.actor, "model": event.model,
           "version": event.version, "target": p["target"], "deployed_sha256": p["sha256"],
           "approved_sha256": approved_sha, "hash_matches": matches,
           "approved_before": approved_before,
           "approval_seq": held[1].seq if held is not None else None,
           "requested_by": request.event.actor if request else None,
           "approvers": [a.actor for a in request.approvals] if request else [],
           "deployer_ok": not deployer, "exceptions": [c for c, _ in problems]}
    return row, problems


def exception(event: Event, check: str, text: str) -> dict[str, Any]:
    return {"seq": event.seq, "ts": event.ts, "model": event.model, "version": event.version,
            "check": check, "finding": text}
