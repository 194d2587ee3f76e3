"""Governance decisions: pure functions of (state, acting user, arguments) -> event payload.

Each runs inside the commit against the freshest state, so a refusal (an exception) writes
nothing and a race is decided by the log. ``Registry`` methods are thin shells over these.
"""

from __future__ import annotations

import errno
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..domain import validate
from ..domain.canonical import canonical_json
from ..domain.entities import GateResult, PromotionRequest
from ..domain.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
)
from ..domain.policy import StagePolicy
from . import gates, reporting
from .state import ModelState, RegistryState

Decision = tuple[int | None, dict[str, Any]]


def require_admin(state: RegistryState, user: str, what: str) -> None:
    if not state.has_role(user, ["admin"]):
        raise PolicyViolationError(f"{user!r} is not an admin; only admins may {what} "
                                   f"(admins: {', '.join(holders(state, 'admin'))})",
                                   rule="admin")


def role_change(state: RegistryState, actor: str, action: str, user: str, role: str
                ) -> Decision | None:
    require_admin(state, actor, "grant or revoke roles")
    state.policy.check_role(role)
    held = state.roles.get(user, set())
    if action == "grant_role" and role in held:
        return None  # already held: nothing to record
    if action == "revoke_role":
        if role not in held:
            raise NotFoundError(f"user {user!r} does not hold role {role!r} (they hold: "
                                f"{', '.join(sorted(held)) or 'no roles'})")
        if role == "admin" and holders(state, "admin") == [user]:
            raise PolicyViolationError("cannot revoke the last admin; grant admin to "
                                       "someone else first", rule="last_admin")
    return None, {"user": user, "role": role}


def request(state: RegistryState, user: str, *, name: str, number: int, to: str,
            comment: str, emergency: bool, request_id: str, seen_holder: int | None,
            measured: Sequence[GateResult] = ()) -> Decision:
    model = state.model(name)
    rules = check_request(state, model, number, to, user, emergency)
    holder = model.holder(to) if to in state.policy.exclusive else None
    urgent = emergency and rules.approvals > 0  # nothing to ratify otherwise
    payload: dict[str, Any] = {"request_id": request_id, "to": to, "comment": comment,
                               "from": model.view(number).stage, "replaces": holder,
                               "emergency": urgent, "required": rules.approvals}
    results = passing_gates(state, model, number, to, measured=measured)
    if rules.approvals == 0 or urgent:
        if holder != seen_holder and to in state.policy.exclusive:
            raise ConflictError(f"{to} of {name!r} changed while you were requesting "
                                f"(now v{holder}); check and request again")
        payload["promotion"] = {"replaces": holder, "gates": results}
    return number, payload


def approve(state: RegistryState, user: str, *, name: str, number: int, to: str | None,
            comment: str, measured: Sequence[GateResult] = ()) -> Decision:
    """The approval that completes the quorum promotes, after re-checking everything a
    promotion needs *now*: the transition, the approvers' roles, the gates."""
    found = find_request(state, name, number, to, for_approval=True)
    model = state.model(name)
    check_approver(state, model, found, user)
    payload: dict[str, Any] = {"request_id": found.request_id, "comment": comment}
    if found.status == "promoted":  # emergency: approvals ratify afterwards
        payload["ratified"] = len(valid_approvers(state, model, found)) + 1 >= found.required
        return number, payload
    rules = state.policy.rules(found.to)
    if len(valid_approvers(state, model, found)) + 1 >= max(found.required, rules.approvals):
        check_transition(state, model, number, found.to)
        holder = model.holder(found.to) if found.to in state.policy.exclusive else None
        if holder != found.replaces:
            raise ConflictError(f"{found.to} of {name!r} changed since the request "
                                f"(now v{holder}); request again")
        payload["promotion"] = {"replaces": holder,
                                "gates": passing_gates(state, model, number, found.to,
                                                       measured=measured)}
    return number, payload


def valid_approvers(state: RegistryState, model: ModelState, found: PromotionRequest
                    ) -> list[str]:
    """Earlier approvers who still qualify under the policy in force now: a revoked role
    or a tightened segregation rule un-counts an approval (re-evaluated at completion)."""
    out = []
    for approval in found.approvals:
        try:
            check_approver(state, model, found, approval.user, again=True)
        except PolicyViolationError:
            continue
        out.append(approval.user)
    return out


def close(state: RegistryState, user: str, action: str, *, name: str, number: int,
          to: str | None, comment: str) -> Decision:
    found = find_request(state, name, number, to)
    rules = state.policy.rules(found.to)
    if action == "reject" and not state.has_role(user, rules.approver_roles):
        raise PolicyViolationError(
            f"{user!r} may not reject: {found.to} approvals need one of the roles "
            f"{', '.join(rules.approver_roles) or '(none configured)'}", rule="role")
    if action == "withdraw" and user != found.requested_by and not (
            state.has_role(user, ["admin"])):
        raise PolicyViolationError(f"only {found.requested_by!r} (the requester) or "
                                   "an admin may withdraw this request", rule="withdraw")
    return number, {"request_id": found.request_id, "comment": comment}


def rollback(state: RegistryState, user: str, *, name: str, stage: str, reason: str,
             automatic: bool = False, from_version: int | None = None) -> Decision:
    """Back to the version that held ``stage`` before; it must still pass the stage's
    gates (a version trained on since-recalled data is not restored). ``from_version``:
    refused unless it still holds the stage (a racing rollback acted first)."""
    model = state.model(name)
    state.policy.check_stage(stage)
    rules = state.policy.rules(stage)
    if not automatic and rules.approvals and not state.has_role(
            user, [*rules.approver_roles, "admin"]):
        raise PolicyViolationError(f"{user!r} may not roll back {stage}: needs "
                                   f"one of {', '.join(rules.approver_roles)} or admin",
                                   rule="role")
    stack = model.stage_stack.get(stage, [])
    current = model.holder(stage)
    if from_version is not None and current != from_version:
        raise ConflictError(f"{stage} of {name!r} no longer holds v{from_version} (now "
                            f"{_holder_text(model, stage)}): another check or a person acted "
                            "first")
    if current is None or len(stack) < 2 or stack[-1] != current:
        raise NotFoundError(f"{name!r} has no earlier {stage} version to roll back to",
                            model=name, ref=stage)
    target = stack[-2]
    if automatic:
        _automatic_rollback_allowed(state, user, model, stage, current, target)
    results = passing_gates(state, model, target, stage, verb="be restored to")
    return target, {"stage": stage, "from_version": current, "to_version": target,
                    "reason": reason, "gates": results}


def _automatic_rollback_allowed(state: RegistryState, user: str, model: ModelState,
                                stage: str, current: int, target: int) -> None:
    """What monitoring may do on its own: roll back only when run by a role the policy
    names, one step from a version a person put in ``stage`` (never down the stack after
    an earlier rollback), and never to a version someone moved on purpose since it left."""
    roles = state.policy.monitoring.action_roles
    if not state.has_role(user, roles):
        raise PolicyViolationError(f"{user!r} may not run a check that rolls {stage} back "
                                   f"(monitoring.action_roles: {', '.join(roles) or 'none'})",
                                   rule="action_role")
    held = model.view(current).status
    if "restored_at" in held and held.get("restored_at", "") >= held.get("promoted_at", ""):
        raise PolicyViolationError(f"v{current} holds {stage} after a rollback: a second "
                                   "automatic rollback in the same episode is refused (a "
                                   "person decides what comes next)", rule="episode")
    status = model.view(target).status
    if model.view(target).stage != state.policy.replaced_to or status.get(
            "promoted_to") != stage:
        raise PolicyViolationError(f"v{target} was moved on purpose since it left {stage} "
                                   f"(now {model.view(target).stage}): monitoring does not "
                                   "restore it", rule="retired")


def flag_data(state: RegistryState, *, uri: str, version: int, reason: str) -> Decision:
    affected = [[m.name, v] for m in state.models.values()
                for v, mv in m.versions.items()
                if (mv.lineage.get("training_data") or {}).get("uri") == uri
                and mv.lineage["training_data"].get("version") == version]
    return None, {"uri": uri, "data_version": version, "reason": reason, "affected": affected}


def deploy(state: RegistryState, *, name: str, number: int, target: str, stage: str,
           sha256: str | None, comment: str) -> Decision:
    """A deployment must be of a version approved for ``stage`` (it holds the stage now);
    the hash actually deployed is recorded, and a mismatch is kept as evidence."""
    model = state.model(name)
    mv = model.require(number)
    state.policy.check_stage(stage)
    if model.view(number).stage != stage:
        raise PolicyViolationError(
            f"{name} v{number} is in {model.view(number).stage}, not {stage}: only the "
            f"version approved for {stage} may be deployed there (now: "
            f"{_holder_text(model, stage)})", rule="deploy")
    deployed = sha256 or mv.sha256
    return number, {"target": target, "stage": stage, "sha256": deployed,
                    "approved_sha256": mv.sha256, "matches": deployed == mv.sha256,
                    "request_id": model.view(number).status.get("request_id"),
                    "comment": comment}


def _holder_text(model: ModelState, stage: str) -> str:
    held = model.holder(stage)
    return "nobody" if held is None else f"v{held}"


def load_policy_document(policy: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(policy, Mapping):
        return dict(json.loads(canonical_json(dict(policy))))
    text = os.fspath(policy)
    if "\n" not in text and _is_file(text):
        text = Path(text).read_text()
    try:
        document: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as toml_error:
        document = _yaml(text)
        if not isinstance(document, dict):
            raise InvalidInputError(f"the policy is not valid TOML ({toml_error}) nor a YAML "
                                    "mapping", field="policy") from toml_error
    return dict(json.loads(canonical_json(document)))


def _is_file(text: str) -> bool:
    """Is this one-line policy text a file name? A line too long to be a path (the OS says
    so) is policy text, not an error."""
    try:
        return Path(text).is_file()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise InvalidInputError(f"cannot read the policy file {text[:80]!r}: {exc}",
                                field="policy") from exc


def _yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def holders(state: RegistryState, role: str) -> list[str]:
    return sorted(u for u, r in state.roles.items() if role in r)


def check_transition(state: RegistryState, model: ModelState, number: int, to: str) -> None:
    policy = state.policy
    current = model.view(number).stage
    if to == current:
        raise InvalidInputError(f"v{number} is already in {to}", field="to")
    if to not in policy.transitions.get(current, ()):
        allowed = ", ".join(policy.transitions.get(current, ())) or "nowhere"
        raise PolicyViolationError(f"the policy does not allow {current} -> {to} (from "
                                   f"{current}: {allowed})", rule="transition")


def check_request(state: RegistryState, model: ModelState, number: int, to: str, user: str,
                  emergency: bool) -> StagePolicy:
    model.require(number)
    state.policy.check_stage(to)
    check_transition(state, model, number, to)
    rules = state.policy.rules(to)
    if rules.requester_roles and not state.has_role(user, rules.requester_roles):
        raise PolicyViolationError(f"{user!r} may not request {to}: needs one of the roles "
                                   f"{', '.join(rules.requester_roles)}", rule="role")
    if emergency and not (rules.emergency_roles and state.has_role(user, rules.emergency_roles)):
        raise PolicyViolationError(f"{user!r} may not make an emergency promotion to {to} "
                                   f"(allowed roles: {', '.join(rules.emergency_roles) or 'none'})",
                                   rule="emergency")
    for other in state.requests.values():
        if (other.model, other.version, other.to, other.status) == (model.name, number, to, "open"):
            raise ConflictError(f"{other.requested_by!r} already requested {model.name} "
                                f"v{number} -> {to}; approve, reject or withdraw that first")
    return rules


def passing_gates(state: RegistryState, model: ModelState, number: int, to: str, *,
                  verb: str = "enter", measured: Sequence[GateResult] = ()
                  ) -> list[dict[str, Any]]:
    """Every gate must pass; ``measured`` are the gates computed from monitoring data just
    before the commit (the data tables are append-only, so they can't go stale)."""
    results = [*gates.evaluate(state, model, number, to, compare=verb == "enter"), *measured]
    failed = [g for g in results if not g.passed]
    if failed:
        raise PolicyViolationError(
            f"{model.name} v{number} cannot {verb} {to}: " + "; ".join(
                f"gate {g.gate!r} failed: {g.detail}" for g in failed), rule="gate")
    return [gate_dict(g) for g in results]


def gate_dict(gate: GateResult) -> dict[str, Any]:
    return {"gate": gate.gate, "passed": gate.passed, "detail": gate.detail,
            "evidence": gate.evidence}


def find_request(state: RegistryState, name: str, number: int, to: str | None, *,
                 for_approval: bool = False) -> PromotionRequest:
    mine = [r for r in state.requests.values() if r.model == name and r.version == number
            and (to is None or r.to == to)]
    live = [r for r in mine if r.status == "open" or (
        for_approval and r.status == "promoted" and r.emergency and not r.ratified)]
    if len(live) > 1:
        raise InvalidInputError(f"{name} v{number} has open requests to "
                                f"{', '.join(r.to for r in live)}; pass to=...", field="to")
    if live:
        return live[0]
    if mine:
        last = max(mine, key=lambda r: r.requested_at)
        raise ConflictError(f"the request for {name} v{number} -> {last.to} is already "
                            f"{last.status}" + (" (another promotion to that stage won); "
                                                "request again" if last.status == "stale" else ""))
    raise NotFoundError(f"there is no open promotion request for {name} v{number}; create one "
                        f"with reg.request_promotion({name!r}, {number}, to=...)", model=name)


def check_approver(state: RegistryState, model: ModelState, found: PromotionRequest,
                   user: str, *, again: bool = False) -> None:
    """May ``user`` approve ``found``? ``again`` re-checks an approval already given."""
    rules = state.policy.rules(found.to)
    if not state.has_role(user, rules.approver_roles):
        raise PolicyViolationError(
            f"{user!r} may not approve {found.to}: needs one of the roles "
            f"{', '.join(rules.approver_roles) or '(none configured)'}; an admin can "
            f"grant one with reg.grant_role({user!r}, ...)", rule="role")
    registrant = model.versions[found.version].created_by
    if "registrant" in rules.distinct_from and user == registrant:
        raise PolicyViolationError(f"self-approval refused: {user!r} registered v"
                                   f"{found.version}; another approver must sign off",
                                   rule="segregation")
    if "requester" in rules.distinct_from and user == found.requested_by:
        raise PolicyViolationError(f"self-approval refused: {user!r} requested this promotion; "
                                   "another approver must sign off", rule="segregation")
    if not again and any(a.user == user for a in found.approvals):
        raise PolicyViolationError(f"{user!r} already approved this request; the quorum needs "
                                   "distinct approvers", rule="quorum")


def report(template: str, *, parameters: Mapping[str, Any], tables: Mapping[str, int],
           head: Sequence[Any], outputs: Mapping[str, str], sha256: str, output_dir: str,
           template_sha256: str, provenance: Mapping[str, Any] | None = None,
           show_code: bool = False) -> dict[str, Any]:
    """The ``report`` event's payload, every field checked (nothing is written otherwise)."""
    if len(head) != 2 or isinstance(head[0], bool) or not isinstance(head[0], int):
        raise InvalidInputError(f"head must be (seq, hash), got {head!r}", field="head")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in tables.values()):
        raise InvalidInputError("tables maps each table read to its Delta version (an "
                                "integer >= 0)", field="tables")
    outputs = {str(k): validate.sha256(v) for k, v in outputs.items()}
    sha256 = validate.sha256(sha256)
    if sha256 not in outputs.values():
        raise InvalidInputError("sha256 (the executed notebook's) must be one of the outputs",
                                field="sha256")
    payload = {"template": validate.text(template, what="template"),
               "parameters": validate.json_mapping(parameters, what="parameters"),
               "tables": {str(k): int(v) for k, v in tables.items()},
               "head": [head[0], validate.sha256(head[1])], "outputs": outputs,
               "sha256": sha256, "output_dir": validate.text(output_dir, what="output_dir"),
               "template_sha256": validate.sha256(template_sha256),
               "show_code": bool(show_code)}
    if provenance is not None:
        payload["provenance"] = validate.json_mapping(provenance, what="provenance")
    return payload


def record_report(state: RegistryState, user: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A report is recorded by a holder of a reporting role, from a known template."""
    policy = state.policy
    reporting.check_recorder(policy, user, state.roles.get(user, set()))
    reporting.check_template(policy, payload["template"], payload["template_sha256"])
    return payload


AUTOMATIC = ("rollback", "retrain_requested")


def ratify(state: RegistryState, user: str, *, name: str, event: Any, comment: str
           ) -> Decision:
    """A person accepts an automatic action (a rollback or retraining request that a
    monitoring check recorded): an approver of the stage, not who ran the check."""
    if (event.model != name or event.action not in AUTOMATIC
            or (event.action == "rollback" and not event.payload.get("automatic"))):
        raise InvalidInputError(f"event {event.seq} is not an automatic rollback or "
                                f"retraining request of {name!r}", field="seq")
    stage = event.payload.get("stage", "production")
    rules = state.policy.rules(stage)
    if not state.has_role(user, [*rules.approver_roles, "admin"]):
        raise PolicyViolationError(f"{user!r} may not ratify a change of {stage}: needs one "
                                   f"of {', '.join([*rules.approver_roles, 'admin'])}",
                                   rule="role")
    if user == event.actor:
        raise PolicyViolationError(f"self-ratification refused: {user!r} ran the check that "
                                   f"recorded event {event.seq}", rule="segregation")
    text = validate.text(comment, what="comment").strip()
    if not text:
        raise InvalidInputError("say why the automatic action is accepted (comment=...)",
                                field="comment")
    return event.version, {"text": text, "ratifies": event.seq}
