"""Read-only governance questions over one state (used by ``RegistryView``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from ..domain.entities import GateResult
from ..domain.timefmt import parse_time
from .state import RegistryState

OVERDUE_SCHEMA = pa.schema([("model", pa.string()), ("version", pa.int64()),
                            ("stage", pa.string()), ("since", pa.timestamp("us", "UTC")),
                            ("due", pa.timestamp("us", "UTC")), ("reason", pa.string())])


def overdue(state: RegistryState, now: datetime | str | None) -> pa.Table:
    moment = datetime.now(UTC) if now is None else parse_time(now, field="now")
    rows: list[dict[str, Any]] = []
    for model in state.models.values():
        for version in model.versions:
            mv = model.view(version)
            rules = state.policy.rules(mv.stage)
            promoted = mv.status.get("promoted_at")
            if mv.status.get("promoted_to") != mv.stage or not promoted:
                continue
            since = parse_time(promoted)
            if mv.status.get("emergency"):
                due = since + timedelta(hours=rules.emergency_window_hours)
                reason = "emergency promotion not yet ratified by approvals"
            elif rules.approval_ttl_days:
                base = parse_time(mv.status.get("approved_at") or promoted)
                due = base + timedelta(days=rules.approval_ttl_days)
                reason = "approval expired: recertification due"
            else:
                continue
            if due <= moment:
                rows.append({"model": model.name, "version": version, "stage": mv.stage,
                             "since": since, "due": due, "reason": reason})
    return pa.Table.from_pylist(rows, schema=OVERDUE_SCHEMA)


def approvals(state: RegistryState, name: str, number: int, to: str) -> GateResult:
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
