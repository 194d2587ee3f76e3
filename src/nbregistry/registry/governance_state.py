"""How governance events change the registry state (the fold side of governance)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..domain.entities import Approval, Event, GateResult, PromotionRequest
from ..domain.policy import parse_policy
from .state import ModelState, RegistryState, handles, ts_text


@handles("set_policy")
def _set_policy(state: RegistryState, event: Event) -> None:
    state.policy = parse_policy(event.payload["policy"])


@handles("grant_role")
def _grant(state: RegistryState, event: Event) -> None:
    state.roles.setdefault(event.payload["user"], set()).add(event.payload["role"])


@handles("revoke_role")
def _revoke(state: RegistryState, event: Event) -> None:
    state.roles.get(event.payload["user"], set()).discard(event.payload["role"])


@handles("register_key")
def _register_key(state: RegistryState, event: Event) -> None:
    state.keys.setdefault(event.actor, []).append((event.seq, event.payload["public_key"]))


@handles("request_promotion")
def _request(state: RegistryState, event: Event) -> None:
    assert event.model is not None and event.version is not None
    p = event.payload
    request = PromotionRequest(
        request_id=p["request_id"], model=event.model, version=event.version, to=p["to"],
        from_stage=p["from"], requested_by=event.actor, requested_at=event.ts,
        comment=p.get("comment", ""), emergency=p.get("emergency", False),
        replaces=p.get("replaces"), required=p["required"])
    state.requests[request.request_id] = request
    if "promotion" in p:
        _promote(state, event, request, p["promotion"])


@handles("approve")
def _approve(state: RegistryState, event: Event) -> None:
    p = event.payload
    request = state.requests[p["request_id"]]
    approval = Approval(event.actor, event.ts, p.get("comment", ""), "signature" in p)
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


@handles("reject")
def _reject(state: RegistryState, event: Event) -> None:
    _close(state, event, "rejected")


@handles("withdraw")
def _withdraw(state: RegistryState, event: Event) -> None:
    _close(state, event, "withdrawn")


def _close(state: RegistryState, event: Event, status: str) -> None:
    request = state.requests[event.payload["request_id"]]
    note = Approval(event.actor, event.ts, event.payload.get("comment", ""))
    rejections = (*request.rejections, note) if status == "rejected" else request.rejections
    state.requests[request.request_id] = dataclasses.replace(
        request, status=status, closed_at=event.ts, rejections=rejections)


def _promote(state: RegistryState, event: Event, request: PromotionRequest,
             promotion: dict[str, Any]) -> None:
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
    gates = tuple(GateResult(**g) for g in promotion.get("gates", ()))
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


@handles("rollback")
def _rollback(state: RegistryState, event: Event) -> None:
    assert event.model is not None
    p = event.payload
    model = state.models[event.model]
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


@handles("set_card")
def _set_card(state: RegistryState, event: Event) -> None:
    assert event.model is not None and event.version is not None
    model = state.models[event.model]
    base = model.versions[event.version]
    model.versions[event.version] = dataclasses.replace(
        base, card={**base.card, **event.payload["card"]})
    model.changed(event.version)


@handles("flag_data")
def _flag_data(state: RegistryState, event: Event) -> None:
    p = event.payload
    state.flagged_data[(p["uri"], p["data_version"])] = p["reason"]
    for name, version in p["affected"]:
        state.models[name].status_of.setdefault(version, {})["revalidation_required"] = (
            p["reason"])
        state.models[name].changed(version)


@handles("report")
def _report(state: RegistryState, event: Event) -> None:
    assert event.model is not None and event.version is not None
    runs = state.reports.setdefault((event.model, event.version), {})
    runs[event.payload["template"]] = {**event.payload, "seq": event.seq}
