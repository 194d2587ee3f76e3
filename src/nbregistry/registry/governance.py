"""Governance use-cases: policy, roles, promotion requests, approvals, rollback, data recall."""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..domain import validate
from ..domain.canonical import canonical_json
from ..domain.entities import Event, GateResult, ModelVersion, PromotionRequest
from ..domain.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
)
from ..domain.policy import Policy, parse_policy
from . import gates, signing
from .state import ModelState, RegistryState

Build = Callable[[RegistryState], tuple[int | None, dict[str, Any]] | None]


class Governance:
    """Mixed into Registry: every method validates against the freshest state inside the
    commit, so a refusal writes nothing and a race is decided by the log."""

    user: str
    _state: RegistryState

    def _commit(self, action: str, model: str | None, build: Build) -> Event | None:
        raise NotImplementedError

    def _current(self) -> RegistryState:
        raise NotImplementedError

    def _record(self, action: str, model: str | None, build: Build) -> Event:
        event = self._commit(action, model, build)
        assert event is not None, "this build always records an event"
        return event

    # -- policy and roles --------------------------------------------------------------
    def set_policy(self, policy: str | os.PathLike[str] | Mapping[str, Any]) -> Policy:
        """Replace the policy (admins only). Accepts TOML/YAML/JSON text, a file path, or a
        dict; the whole document is validated and every mistake is listed."""
        document = load_policy_document(policy)
        parsed = parse_policy(document)

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            self._require_admin(state, "change the policy")
            return None, {"policy": document}

        self._commit("set_policy", None, build)
        return parsed

    def grant_role(self, user: str, role: str) -> None:
        """Give ``user`` a role of the policy (admins only; granting a held role is a no-op)."""
        self._role_change("grant_role", user, role)

    def revoke_role(self, user: str, role: str) -> None:
        self._role_change("revoke_role", user, role)

    def _role_change(self, action: str, user: str, role: str) -> None:
        user = validate.text(user, what="user", max_len=200).strip()
        if not user:
            raise InvalidInputError("user is empty: name the person, e.g. 'bob'", field="user")

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]] | None:
            self._require_admin(state, "grant or revoke roles")
            state.policy.check_role(role)
            held = state.roles.get(user, set())
            if action == "grant_role" and role in held:
                return None  # already held: nothing to record
            if action == "revoke_role":
                if role not in held:
                    raise NotFoundError(f"user {user!r} does not hold role {role!r} (they hold: "
                                        f"{', '.join(sorted(held)) or 'no roles'})")
                admins = [u for u, r in state.roles.items() if "admin" in r]
                if role == "admin" and admins == [user]:
                    raise PolicyViolationError("cannot revoke the last admin; grant admin to "
                                               "someone else first", rule="last_admin")
            return None, {"user": user, "role": role}

        self._commit(action, None, build)

    def register_key(self, public_key: bytes | str) -> str:
        """Register your Ed25519 public key (PEM); your approvals must then be signed."""
        pem, fingerprint = signing.public_key_pem(public_key)
        self._commit("register_key", None,
                     lambda state: (None, {"public_key": pem, "fingerprint": fingerprint}))
        return fingerprint

    def _require_admin(self, state: RegistryState, what: str) -> None:
        if not state.has_role(self.user, ["admin"]):
            raise PolicyViolationError(f"{self.user!r} is not an admin; only admins may {what} "
                                       f"(admins: {', '.join(_holders(state, 'admin'))})",
                                       rule="admin")

    # -- promotion lifecycle -----------------------------------------------------------
    def request_promotion(self, name: str, version: int | str, to: str, *, comment: str = "",
                          emergency: bool = False) -> PromotionRequest:
        """Ask for ``version`` to enter stage ``to``. Gates are checked now; with no
        approvals required (or ``emergency`` by an allowed role) it is promoted at once."""
        name, number = validate.model_name(name), validate.version_number(version)
        comment = validate.text(comment, what="comment")
        seen_holder = self._current().model(name).holder(to)
        request_id = uuid.uuid4().hex

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            model = state.model(name)
            rules = _check_request(state, model, number, to, self.user, emergency)
            holder = model.holder(to) if to in state.policy.exclusive else None
            urgent = emergency and rules.approvals > 0  # nothing to ratify otherwise
            payload: dict[str, Any] = {"request_id": request_id, "to": to, "comment": comment,
                                       "from": model.view(number).stage, "replaces": holder,
                                       "emergency": urgent, "required": rules.approvals}
            results = _passing_gates(state, model, number, to)
            if rules.approvals == 0 or urgent:
                if holder != seen_holder and to in state.policy.exclusive:
                    raise ConflictError(f"{to} of {name!r} changed while you were requesting "
                                        f"(now v{holder}); check and request again")
                payload["promotion"] = {"replaces": holder, "gates": results}
            return number, payload

        self._commit("request_promotion", name, build)
        return self._current().requests[request_id]

    def approve(self, name: str, version: int | str, *, comment: str = "",
                to: str | None = None, signing_key: Any = None) -> PromotionRequest:
        """Approve the open request for this version; the approval that completes the quorum
        promotes it (after re-checking every gate)."""
        name, number = validate.model_name(name), validate.version_number(version)
        comment = validate.text(comment, what="comment")

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            request = _find_request(state, name, number, to, for_approval=True)
            model = state.model(name)
            _check_approver(state, model, request, self.user)
            payload: dict[str, Any] = {"request_id": request.request_id, "comment": comment}
            count = len(request.approvals) + 1
            if request.status == "promoted":  # emergency: approvals ratify afterwards
                payload["ratified"] = count >= request.required
            elif count >= request.required:
                holder = model.holder(request.to) if request.to in state.policy.exclusive else None
                if holder != request.replaces:
                    raise ConflictError(f"{request.to} of {name!r} changed since the request "
                                        f"(now v{holder}); request again")
                payload["promotion"] = {"replaces": holder,
                                        "gates": _passing_gates(state, model, number, request.to)}
            signing.sign_into(payload, state, self.user, name, number, signing_key)
            return number, payload

        event = self._record("approve", name, build)
        return self._current().requests[event.payload["request_id"]]

    def reject(self, name: str, version: int | str, *, comment: str,
               to: str | None = None) -> PromotionRequest:
        """Reject the open request (approver roles only); a comment saying why is required."""
        return self._close("reject", name, version, comment, to)

    def withdraw(self, name: str, version: int | str, *, comment: str = "",
                 to: str | None = None) -> PromotionRequest:
        """Withdraw your own open request (or any, as admin)."""
        return self._close("withdraw", name, version, comment, to)

    def _close(self, action: str, name: str, version: int | str, comment: str,
               to: str | None) -> PromotionRequest:
        name, number = validate.model_name(name), validate.version_number(version)
        comment = validate.text(comment, what="comment")
        if action == "reject" and not comment.strip():
            raise InvalidInputError("a rejection needs a comment saying why", field="comment")

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            request = _find_request(state, name, number, to)
            rules = state.policy.rules(request.to)
            if action == "reject" and not state.has_role(self.user, rules.approver_roles):
                raise PolicyViolationError(
                    f"{self.user!r} may not reject: {request.to} approvals need one of the "
                    f"roles {', '.join(rules.approver_roles) or '(none configured)'}",
                    rule="role")
            if action == "withdraw" and self.user != request.requested_by and not (
                    state.has_role(self.user, ["admin"])):
                raise PolicyViolationError(f"only {request.requested_by!r} (the requester) or "
                                           "an admin may withdraw this request", rule="withdraw")
            return number, {"request_id": request.request_id, "comment": comment}

        event = self._record(action, name, build)
        return self._current().requests[event.payload["request_id"]]

    def comment(self, name: str, version: int | str, text: str) -> None:
        name, number = validate.model_name(name), validate.version_number(version)
        text = validate.text(text, what="comment")
        if not text.strip():
            raise InvalidInputError("the comment is empty", field="comment")

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            _version(state.model(name), number)
            return number, {"text": text}

        self._commit("comment", name, build)

    def rollback(self, name: str, *, stage: str, reason: str = "") -> ModelVersion:
        """Return ``stage`` to the version that held it before the current one."""
        name = validate.model_name(name)
        reason = validate.text(reason, what="reason")

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            model = state.model(name)
            state.policy.check_stage(stage)
            rules = state.policy.rules(stage)
            if rules.approvals and not state.has_role(self.user,
                                                      [*rules.approver_roles, "admin"]):
                raise PolicyViolationError(f"{self.user!r} may not roll back {stage}: needs "
                                           f"one of {', '.join(rules.approver_roles)} or admin",
                                           rule="role")
            stack = model.stage_stack.get(stage, [])
            current = model.holder(stage)
            if current is None or len(stack) < 2 or stack[-1] != current:
                raise NotFoundError(f"{name!r} has no earlier {stage} version to roll back to",
                                    model=name, ref=stage)
            return stack[-2], {"stage": stage, "from_version": current, "to_version": stack[-2],
                               "reason": reason}

        event = self._record("rollback", name, build)
        assert event.version is not None
        return self._current().models[name].view(event.version)

    def set_card(self, name: str, version: int | str, card: Mapping[str, Any]) -> ModelVersion:
        """Add or replace model-card fields of a version (kept as an event)."""
        name, number = validate.model_name(name), validate.version_number(version)
        fields = validate.json_mapping(card, what="card")
        if not fields:
            raise InvalidInputError("card is empty: pass fields such as {'limitations': ...}",
                                    field="card")

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            _version(state.model(name), number)
            return number, {"card": fields}

        self._commit("set_card", name, build)
        return self._current().models[name].view(number)

    def flag_data(self, table_uri: str, version: int, *, reason: str) -> list[ModelVersion]:
        """Recall a training-data version: every model version trained on it (now or later)
        is marked ``revalidation_required`` and can't be promoted."""
        uri = _normalized_uri(table_uri)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInputError(f"version must be the Delta table version (an integer "
                                    f">= 0), got {version!r}", field="version", value=version)
        reason = validate.text(reason, what="reason")
        if not reason.strip():
            raise InvalidInputError("say why the data is recalled (reason=...)", field="reason")
        affected: list[list[Any]] = []

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            affected[:] = [[m.name, v] for m in state.models.values()
                           for v, mv in m.versions.items()
                           if (mv.lineage.get("training_data") or {}).get("uri") == uri
                           and mv.lineage["training_data"].get("version") == version]
            return None, {"uri": uri, "data_version": version, "reason": reason,
                          "affected": affected}

        self._commit("flag_data", None, build)
        state = self._current()
        return [state.models[n].view(v) for n, v in affected]


def load_policy_document(policy: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(policy, Mapping):
        return dict(json.loads(canonical_json(dict(policy))))
    text = os.fspath(policy)
    if "\n" not in text and Path(text).is_file():
        text = Path(text).read_text()
    try:
        document: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as toml_error:
        document = _yaml(text)
        if not isinstance(document, dict):
            raise InvalidInputError(f"the policy is not valid TOML ({toml_error}) nor a YAML "
                                    "mapping", field="policy") from toml_error
    return dict(json.loads(canonical_json(document)))


def _yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _holders(state: RegistryState, role: str) -> list[str]:
    return sorted(u for u, r in state.roles.items() if role in r)


def _version(model: ModelState, number: int) -> None:
    if number not in model.versions:
        raise NotFoundError(f"model {model.name!r} has no version {number} (versions 1.."
                            f"{model.latest})", model=model.name, ref=str(number))


def _check_request(state: RegistryState, model: ModelState, number: int, to: str, user: str,
                   emergency: bool) -> Any:
    _version(model, number)
    policy = state.policy
    policy.check_stage(to)
    current = model.view(number).stage
    if to == current:
        raise InvalidInputError(f"v{number} is already in {to}", field="to")
    if to not in policy.transitions.get(current, ()):
        allowed = ", ".join(policy.transitions.get(current, ())) or "nowhere"
        raise PolicyViolationError(f"the policy does not allow {current} -> {to} (from "
                                   f"{current}: {allowed})", rule="transition")
    rules = policy.rules(to)
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


def _passing_gates(state: RegistryState, model: ModelState, number: int, to: str
                   ) -> list[dict[str, Any]]:
    results = gates.evaluate(state, model, number, to)
    failed = [g for g in results if not g.passed]
    if failed:
        raise PolicyViolationError(
            f"{model.name} v{number} cannot enter {to}: " + "; ".join(
                f"gate {g.gate!r} failed: {g.detail}" for g in failed), rule="gate")
    return [_gate_dict(g) for g in results]


def _gate_dict(gate: GateResult) -> dict[str, Any]:
    return {"gate": gate.gate, "passed": gate.passed, "detail": gate.detail,
            "evidence": gate.evidence}


def _find_request(state: RegistryState, name: str, number: int, to: str | None, *,
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


def _check_approver(state: RegistryState, model: ModelState, request: PromotionRequest,
                    user: str) -> None:
    rules = state.policy.rules(request.to)
    if not state.has_role(user, rules.approver_roles):
        raise PolicyViolationError(
            f"{user!r} may not approve {request.to}: needs one of the roles "
            f"{', '.join(rules.approver_roles) or '(none configured)'}; an admin can "
            f"grant one with reg.grant_role({user!r}, ...)", rule="role")
    registrant = model.versions[request.version].created_by
    if "registrant" in rules.distinct_from and user == registrant:
        raise PolicyViolationError(f"self-approval refused: {user!r} registered v"
                                   f"{request.version}; another approver must sign off",
                                   rule="segregation")
    if "requester" in rules.distinct_from and user == request.requested_by:
        raise PolicyViolationError(f"self-approval refused: {user!r} requested this promotion; "
                                   "another approver must sign off", rule="segregation")
    if any(a.user == user for a in request.approvals):
        raise PolicyViolationError(f"{user!r} already approved this request; the quorum needs "
                                   "distinct approvers", rule="quorum")


def _normalized_uri(uri: str) -> str:
    text = os.fspath(uri)
    return text if "://" in text else str(Path(text).expanduser().resolve())
