"""The fold: how each event changes the registry state, as one explicit table.

Folding is lenient and explicit, because a log outlives the code that wrote it: an action
this version does not know (a newer writer's) is kept in the history and listed in
``state.notices``; an event whose payload is malformed, or that names something that does
not exist, is skipped and listed in ``state.skipped``. Neither stops a registry opening;
``verify()`` reports both. Only a broken hash chain refuses to open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Literal, cast

from ..domain import events as ev
from ..domain.entities import Approval, Event, GateResult, Problem, PromotionRequest
from ..domain.errors import IntegrityError, InvalidInputError, PolicyViolationError
from ..domain.events import FORMAT_VERSION, read_problem
from ..domain.policy import parse_policy
from ..domain.timefmt import ts_text
from . import reporting, signing
from .chain import link_problem
from .state import ModelState, RegistryState, Versions, record

Handler = Callable[[RegistryState, Event], None]


class Skip(Exception):
    """The event cannot be applied to this state (it names something that isn't there)."""


def apply(state: RegistryState, event: Event) -> None:
    problem = link_problem(event, state.seq, state.head_hash)
    if problem is not None:
        raise IntegrityError(f"the audit trail is broken at seq {event.seq}: "
                             f"{problem.message}. Run `nbregistry verify` for a full "
                             "report and restore the log from backup.",
                             problems=[problem.message])
    interpret(state, event)


def interpret(state: RegistryState, event: Event) -> None:
    """``apply`` for an event whose link to the state's head the caller has checked."""
    state.mutations += 1
    try:
        _interpret(state, event)
    finally:
        state.mutations += 1


def _interpret(state: RegistryState, event: Event) -> None:
    handler = HANDLERS.get(event.action)
    if handler is None:
        state.notices.append(Problem("newer_writer", f"event {event.seq} has action "
                                     f"{event.action!r}, written by a newer nbregistry; it is "
                                     "kept in the history but not interpreted", event.seq))
    else:
        shape = read_problem(event.action, event.payload)
        try:
            if shape is not None:
                raise Skip(shape)
            handler(state, event)
        except (Skip, KeyError, TypeError, ValueError, InvalidInputError) as exc:
            state.skipped.append(Problem("malformed", f"event {event.seq} ({event.action} by "
                                         f"{event.actor}) was not applied: {exc}", event.seq))
    if not state.lean:
        state.events.append(event)
    state.seq, state.head_hash = event.seq, event.hash
    if state.last_ts is None or event.ts > state.last_ts:
        state.last_ts = event.ts


def fold(state: RegistryState, events: Iterable[Event]) -> RegistryState:
    for event in events:
        apply(state, event)
    return state


def _model(state: RegistryState, event: Event) -> ModelState:
    if event.model is None or event.model not in state.models:
        raise Skip(f"no model {event.model!r}")
    return state.models[event.model]


def _numbered(state: RegistryState, event: Event) -> tuple[ModelState, int]:
    model = _model(state, event)
    if event.version is None or event.version not in model.versions:
        raise Skip(f"{event.model!r} has no version {event.version}")
    return model, event.version


def _request(state: RegistryState, event: Event) -> PromotionRequest:
    request = state.requests.get(event.payload["request_id"])
    if request is None:
        raise Skip(f"no promotion request {event.payload['request_id']!r}")
    return request


def _create(state: RegistryState, event: Event) -> None:
    p = cast(ev.CreateRegistry, event.payload)
    state.creator, state.registry_id = event.actor, event.hash
    state.format = p["format"]
    state.roles.setdefault(event.actor, set()).add("admin")
    if state.format > FORMAT_VERSION:
        state.notices.append(Problem("newer_writer", f"the registry was created in event "
                                     f"format {state.format} by a newer nbregistry; this one "
                                     f"reads format {FORMAT_VERSION}", event.seq))


def _register(state: RegistryState, event: Event) -> None:
    if event.model is None or event.version is None:
        raise Skip("a registration needs a model and a version")
    model = state.models.get(event.model)
    if model is None:
        model = state.models[event.model] = ModelState(
            event.model, event.ts, event.actor, Versions(event.model, state.loader))
    if event.version in model.versions:
        raise Skip(f"{event.model!r} v{event.version} is already registered")
    mv = record(event)  # also what checks the payload holds a version's fields
    model.versions.seqs[event.version] = event.seq
    if not state.lean:
        model.versions[event.version] = mv
    model.latest = max(model.latest, event.version)
    model.changed(event.version)
    model.stage_of[event.version] = state.policy.initial
    frozen = (mv.reference or {}).get("baseline")
    if isinstance(frozen, str):
        state.baselines[(event.model, event.version)] = {
            "sha256": frozen, "source": {"reference": mv.reference["sha256"]},  # type: ignore[index]
            "seq": event.seq}
    data = mv.lineage.get("training_data") or {}
    reason = state.flagged_data.get((data.get("uri", ""), data.get("version", -1)))
    if reason is not None:
        model.status_of.setdefault(event.version, {})["revalidation_required"] = reason


def _set_alias(state: RegistryState, event: Event) -> None:
    p = cast(ev.SetAlias, event.payload)
    model, version = _numbered(state, event)
    model.set_alias(p["alias"], version)


def _delete_alias(state: RegistryState, event: Event) -> None:
    p = cast(ev.DeleteAlias, event.payload)
    _model(state, event).delete_alias(p["alias"])


def _admin(state: RegistryState, event: Event) -> None:
    """Only admins change roles and the policy: an event written past the writer's check
    (straight into storage) by anyone else does not take effect."""
    if not state.has_role(event.actor, ["admin"]):
        raise Skip(f"{event.actor!r} was not an admin")


def _set_policy(state: RegistryState, event: Event) -> None:
    p = cast(ev.SetPolicy, event.payload)
    _admin(state, event)
    policy = parse_policy(p["policy"], strict=False)
    if policy.unknown:
        state.notices.append(Problem("newer_writer", f"the policy of event {event.seq} has "
                                     f"sections this nbregistry does not know "
                                     f"({', '.join(policy.unknown)}), written by a newer "
                                     "nbregistry; they are kept but not enforced", event.seq))
    state.policy = policy


def _grant(state: RegistryState, event: Event) -> None:
    p = cast(ev.RoleChange, event.payload)
    _admin(state, event)
    state.roles.setdefault(p["user"], set()).add(p["role"])


def _revoke(state: RegistryState, event: Event) -> None:
    p = cast(ev.RoleChange, event.payload)
    _admin(state, event)
    state.roles.get(p["user"], set()).discard(p["role"])


def _register_key(state: RegistryState, event: Event) -> None:
    p = cast(ev.RegisterKey, event.payload)
    user = p.get("user", event.actor)
    try:
        signing.enrolment(state, event.actor, user)
    except PolicyViolationError as exc:
        raise Skip(str(exc)) from None
    state.keys.setdefault(user, []).append((event.seq, p["public_key"]))


def _open_request(state: RegistryState, event: Event) -> None:
    p = cast(ev.RequestPromotion, event.payload)
    model, version = _numbered(state, event)
    if p["request_id"] in state.requests:
        raise Skip(f"request id {p['request_id']!r} is already taken")
    request = PromotionRequest(
        request_id=p["request_id"], model=model.name, version=version, to=p["to"],
        from_stage=p["from"], requested_by=event.actor, requested_at=event.ts,
        comment=p["comment"], emergency=p["emergency"], replaces=p["replaces"],
        required=p["required"])
    state.requests[request.request_id] = request
    if "promotion" in p:
        _promote(state, event, request, p["promotion"])


def _approve(state: RegistryState, event: Event) -> None:
    p = cast(ev.Approve, event.payload)
    request = _request(state, event)
    approval = Approval(event.actor, event.ts, p["comment"], "signature" in p)
    request = dataclasses.replace(request, approvals=(*request.approvals, approval))
    if p.get("ratified"):
        request = dataclasses.replace(request, ratified=True)
        status = state.models[request.model].status_of.setdefault(request.version, {})
        status["emergency"] = False
        status["approved_by"] = [a.user for a in request.approvals]
        status["approved_at"] = ts_text(event.ts)
        state.models[request.model].changed(request.version)
    state.requests[request.request_id] = request
    if "promotion" in p:
        _promote(state, event, request, p["promotion"])


def _reject(state: RegistryState, event: Event) -> None:
    _close(state, event, "rejected")


def _withdraw(state: RegistryState, event: Event) -> None:
    _close(state, event, "withdrawn")


def _close(state: RegistryState, event: Event,
           status: Literal["rejected", "withdrawn"]) -> None:
    request = _request(state, event)
    note = Approval(event.actor, event.ts, event.payload["comment"])
    rejections = (*request.rejections, note) if status == "rejected" else request.rejections
    state.requests[request.request_id] = dataclasses.replace(
        request, status=status, closed_at=event.ts, rejections=rejections)


def _promote(state: RegistryState, event: Event, request: PromotionRequest,
             promotion: ev.Promotion) -> None:
    model = state.models[request.model]
    to = request.to
    replaced = promotion.get("replaces")
    if replaced is not None and model.stage_of.get(replaced) == to:
        model.stage_of[replaced] = state.policy.replaced_to
        model.changed(replaced)
    model.stage_of[request.version] = to
    if to in state.policy.exclusive:
        model.stage_stack.setdefault(to, []).append(request.version)
    model.status_of[request.version] = {
        "promoted_to": to, "promoted_at": ts_text(event.ts), "request_id": request.request_id,
        "approved_by": [a.user for a in request.approvals],
        "approved_at": ts_text(event.ts) if request.approvals else None,
        "emergency": request.emergency,
        **{k: v for k, v in model.status_of.get(request.version, {}).items()
           if k == "revalidation_required"}}
    model.changed(request.version)
    gates = tuple(GateResult(g["gate"], g["passed"], g["detail"], g["evidence"])
                  for g in promotion["gates"])
    state.requests[request.request_id] = dataclasses.replace(
        request, status="promoted", closed_at=event.ts, gates=gates)
    _stale_others(state, model, request)


def _stale_others(state: RegistryState, model: ModelState, winner: PromotionRequest) -> None:
    """Open requests to the same exclusive stage were made against the old holder."""
    if winner.to not in state.policy.exclusive:
        return
    for rid, other in list(state.requests.items()):
        if other.model == model.name and other.to == winner.to and other.status == "open":
            state.requests[rid] = dataclasses.replace(other, status="stale")


def _rollback(state: RegistryState, event: Event) -> None:
    p = cast(ev.Rollback, event.payload)
    model = _model(state, event)
    if p["from_version"] not in model.versions or p["to_version"] not in model.versions:
        raise Skip("the rollback names a version that does not exist")
    stack = model.stage_stack.get(p["stage"], [])
    if stack and stack[-1] == p["from_version"]:
        stack.pop()
    model.stage_of[p["from_version"]] = state.policy.replaced_to
    model.stage_of[p["to_version"]] = p["stage"]
    model.status_of.setdefault(p["to_version"], {})["restored_at"] = ts_text(event.ts)
    model.changed(p["from_version"], p["to_version"])
    for rid, other in list(state.requests.items()):
        if other.model == model.name and other.to == p["stage"] and other.status == "open":
            state.requests[rid] = dataclasses.replace(other, status="stale")


def _set_card(state: RegistryState, event: Event) -> None:
    p = cast(ev.SetCard, event.payload)
    model, version = _numbered(state, event)
    cards = model.versions.cards
    cards[version] = {**cards.get(version, {}), **p["card"]}
    if version in model.versions._loaded:
        base = model.versions[version]
        model.versions[version] = dataclasses.replace(
            base, card={**base.card, **p["card"]})
    model.changed(version)


def _flag_data(state: RegistryState, event: Event) -> None:
    p = cast(ev.FlagData, event.payload)
    affected = [(name, version) for name, version in p["affected"]
                if name in state.models and version in state.models[name].versions]
    state.flagged_data[(p["uri"], p["data_version"])] = p["reason"]
    for name, version in affected:
        state.models[name].status_of.setdefault(version, {})["revalidation_required"] = (
            p["reason"])
        state.models[name].changed(version)


def _report(state: RegistryState, event: Event) -> None:
    """A report carrying its template's sha256 (the evidence kind) counts only when its
    recorder held a reporting role; one without (an older writer's) never replaces one
    with, so a planted old-style event cannot hide a report that counts."""
    p = cast(ev.Report, event.payload)
    model, version = _numbered(state, event)
    runs = state.reports.setdefault((model.name, version), {})
    if "template_sha256" in p:
        if not reporting.may_record(state.policy, state.roles.get(event.actor, set())):
            raise Skip(f"{event.actor!r} held no reporting role")
    elif "template_sha256" in runs.get(p["template"], {}):
        return
    runs[p["template"]] = {**event.payload, "seq": event.seq}


def _deploy(state: RegistryState, event: Event) -> None:
    _numbered(state, event)
    state.deployments.append(event)


def _alert(state: RegistryState, event: Event) -> None:
    _numbered(state, event)
    state.alerts.append(event)


def _seal(state: RegistryState, event: Event) -> None:
    p = cast(ev.Seal, event.payload)
    for table, seal in p["tables"].items():
        state.seals[table] = (event.seq, seal)
    if "check" in p and event.model is not None:
        # the check of the newest window stands: a backfilled check (an earlier now=)
        # recorded later does not hide what the latest window found
        latest = state.checks.get(event.model)
        if latest is None or p["check"]["window"][1] >= latest.payload["check"]["window"][1]:
            state.checks[event.model] = event


def _snapshot(state: RegistryState, event: Event) -> None:
    state.snapshots.append(event)


def _retrain(state: RegistryState, event: Event) -> None:
    p = cast(ev.RetrainRequested, event.payload)
    model, version = _numbered(state, event)
    model.status_of.setdefault(version, {})["retrain_requested"] = p["reason"]
    model.changed(version)


def _baseline(state: RegistryState, event: Event) -> None:
    p = cast(ev.SetBaseline, event.payload)
    model, version = _numbered(state, event)
    if (model.name, version) in state.baselines:  # a racing freeze: the first one stands
        raise Skip(f"{model.name} v{version} already has a frozen baseline")
    # the whole payload, as snapshots have always stored it (verify recomputes them)
    state.baselines[(model.name, version)] = {**p, "seq": event.seq}


def _noted(state: RegistryState, event: Event) -> None:
    """Events that change no state the registry folds (comments; kept in the history)."""


HANDLERS: dict[str, Handler] = {
    "create_registry": _create,
    "register": _register,
    "set_alias": _set_alias,
    "delete_alias": _delete_alias,
    "set_policy": _set_policy,
    "grant_role": _grant,
    "revoke_role": _revoke,
    "register_key": _register_key,
    "request_promotion": _open_request,
    "approve": _approve,
    "reject": _reject,
    "withdraw": _withdraw,
    "comment": _noted,
    "rollback": _rollback,
    "set_card": _set_card,
    "flag_data": _flag_data,
    "report": _report,
    "deploy": _deploy,
    "set_baseline": _baseline,
    "alert": _alert,
    "seal": _seal,
    "retrain_requested": _retrain,
    "snapshot": _snapshot,
    "tamper_alarm": _noted,
}
