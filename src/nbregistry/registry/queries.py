"""Read-only governance questions; they work on the live registry and on ``as_of`` views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from ..domain import validate
from ..domain.entities import GateResult, PromotionRequest
from ..domain.errors import InvalidInputError, NotFoundError
from ..domain.policy import Policy
from . import gates
from .state import RegistryState

STATUSES = ("open", "promoted", "rejected", "withdrawn", "stale", "all")


class GovernanceQueries:
    def _current(self) -> RegistryState:
        raise NotImplementedError

    @property
    def policy(self) -> Policy:
        """The policy in force (at this view's point in time)."""
        return self._current().policy

    def roles(self) -> dict[str, list[str]]:
        """Who holds which roles."""
        return {u: sorted(r) for u, r in sorted(self._current().roles.items()) if r}

    def check_gates(self, name: str, version: int | str, to: str) -> list[GateResult]:
        """Every gate of stage ``to`` evaluated for this version, pass or fail, with evidence."""
        state = self._current()
        model = state.model(validate.model_name(name))
        number = validate.version_number(version)
        state.policy.check_stage(to)
        if number not in model.versions:
            raise NotFoundError(f"model {name!r} has no version {number}", model=name)
        return gates.evaluate(state, model, number, to)

    def requirements(self, name: str, version: int | str, to: str) -> list[GateResult]:
        """The gates plus the approval quorum (who still has to sign off): the whole
        checklist a reviewer sees."""
        number = validate.version_number(version)
        return [*self.check_gates(name, number, to),
                _approvals(self._current(), name, number, to)]

    def requests(self, name: str | None = None, *, status: str = "open"
                 ) -> list[PromotionRequest]:
        """Promotion requests, oldest first; ``status="all"`` for every one."""
        if status not in STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}",
                                    field="status", value=status)
        state = self._current()
        if name is not None:
            state.model(validate.model_name(name))
        return [r for r in state.requests.values()
                if (name is None or r.model == name) and status in ("all", r.status)]

    def stages(self, name: str) -> dict[str, list[int]]:
        """Which versions are in each stage (exclusive stages hold at most one)."""
        model = self._current().model(validate.model_name(name))
        out: dict[str, list[int]] = {}
        for version in sorted(model.versions):
            out.setdefault(model.view(version).stage, []).append(version)
        return out

    def overdue(self, *, now: datetime | None = None) -> pa.Table:
        """Versions whose approval has expired (approval_ttl_days) or whose emergency
        promotion was not ratified within its window."""
        state = self._current()
        moment = now or datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        for model in state.models.values():
            for version in model.versions:
                mv = model.view(version)
                rules = state.policy.rules(mv.stage)
                promoted = mv.status.get("promoted_at")
                if mv.status.get("promoted_to") != mv.stage or not promoted:
                    continue
                since = datetime.fromisoformat(promoted.replace("Z", "+00:00"))
                approved = mv.status.get("approved_at")
                if mv.status.get("emergency"):
                    due = since + timedelta(hours=rules.emergency_window_hours)
                    reason = "emergency promotion not yet ratified by approvals"
                elif rules.approval_ttl_days:
                    base = datetime.fromisoformat((approved or promoted).replace("Z", "+00:00"))
                    due = base + timedelta(days=rules.approval_ttl_days)
                    reason = "approval expired: recertification due"
                else:
                    continue
                if due <= moment:
                    rows.append({"model": model.name, "version": version, "stage": mv.stage,
                                 "since": since, "due": due, "reason": reason})
        schema = pa.schema([("model", pa.string()), ("version", pa.int64()),
                            ("stage", pa.string()), ("since", pa.timestamp("us", "UTC")),
                            ("due", pa.timestamp("us", "UTC")), ("reason", pa.string())])
        return pa.Table.from_pylist(rows, schema=schema)


def _approvals(state: RegistryState, name: str, number: int, to: str) -> GateResult:
    """Not a gate the promotion evaluates (the quorum is counted by approve), but part of what
    a reviewer needs to see on the checklist."""
    rules = state.policy.rules(to)
    request = next((r for r in state.requests.values() if (r.model, r.version, r.to, r.status)
                    == (name, number, to, "open")), None)
    have = [a.user for a in request.approvals] if request else []
    who = f" from {'/'.join(rules.approver_roles)}" if rules.approver_roles else ""
    excluded = f", not the {' or '.join(rules.distinct_from)}" if rules.distinct_from else ""
    detail = (f"{len(have)} of {rules.approvals} approval(s){who}{excluded}"
              + (f" (by {', '.join(have)})" if have else ""))
    return GateResult("approvals", len(have) >= rules.approvals, detail,
                      {"required": rules.approvals, "approved_by": have,
                       "roles": list(rules.approver_roles), "open_request": bool(request)})
