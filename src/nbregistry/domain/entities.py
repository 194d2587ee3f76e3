"""Entities: immutable facts read from the event log."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .events import RequestStatus


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the append-only, hash-chained event log."""

    seq: int
    event_id: str
    ts: datetime
    actor: str
    action: str
    model: str | None
    version: int | None
    payload: dict[str, Any]
    payload_json: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A registered model version as the registry knows it at one point of the log."""

    name: str
    version: int
    sha256: str
    size: int
    flavor: str
    created_at: datetime
    created_by: str
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    features: tuple[dict[str, str], ...] = ()
    reference: dict[str, Any] | None = None
    stage: str = "development"
    aliases: tuple[str, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def __repr__(self) -> str:
        aliases = f" @{',@'.join(self.aliases)}" if self.aliases else ""
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(self.metrics.items())[:4])
        return (f"<ModelVersion {self.name} v{self.version} [{self.stage}]{aliases} "
                f"sha256={self.sha256[:12]} {metrics}>")

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = [("stage", self.stage), ("aliases", ", ".join(self.aliases) or "—"),
                ("sha256", self.sha256[:16] + "…"), ("created", f"{self.created_at:%Y-%m-%d %H:%M} "
                                                     f"UTC by {self.created_by}")]
        rows += [(f"metric {k}", f"{v:.6g}") for k, v in sorted(self.metrics.items())]
        rows += [(f"param {k}", str(v)) for k, v in sorted(self.params.items())]
        rows += [(f"tag {k}", v) for k, v in sorted(self.tags.items())]
        body = "".join(
            f"<tr><th style='text-align:left;padding:2px 8px'>{esc(k)}</th>"
            f"<td style='padding:2px 8px'>{esc(str(v))}</td></tr>" for k, v in rows)
        return (f"<div><b>{esc(self.name)}</b> v{self.version}"
                f"<div style='color:#555'>{esc(self.description)}</div>"
                f"<table style='border-collapse:collapse'>{body}</table></div>")


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of an audit-trail check."""

    kind: str
    message: str
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One check ``verify`` ran, whether it passed, and what passing proves (and not)."""

    name: str
    ok: bool
    proves: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of ``Registry.verify()``; ``ok`` is true only when no problem was found."""

    ok: bool
    events: int
    artifacts: int
    head_seq: int
    head_hash: str
    problems: tuple[Problem, ...] = ()
    # Not failures: what a newer nbregistry wrote that this one keeps but does not interpret.
    notices: tuple[Problem, ...] = ()
    checks: tuple[Check, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        state = "OK" if self.ok else f"{len(self.problems)} PROBLEM(S)"
        lines = [f"<VerifyReport {state}: {self.events} events, {self.artifacts} artifacts, "
                 f"head seq {self.head_seq} {self.head_hash[:12]}>"]
        lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.proves}" for c in self.checks]
        lines += [f"  - [{p.kind}] {p.message}" for p in self.problems[:20]]
        lines += [f"  * note [{p.kind}] {p.message}" for p in self.notices[:20]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#cf222e"
        title = "Audit trail verified" if self.ok else "Audit trail BROKEN"
        items = "".join(f"<li><code>{html.escape(p.kind)}</code> {html.escape(p.message)}</li>"
                        for p in self.problems)
        items += "".join(f"<li style='color:#57606a'>note <code>{html.escape(p.kind)}</code> "
                         f"{html.escape(p.message)}</li>" for p in self.notices)
        items += "".join(f"<li>{'✔' if c.ok else '✘'} <b>{html.escape(c.name)}</b>: "
                         f"<span style='color:#57606a'>{html.escape(c.proves)}</span></li>"
                         for c in self.checks)
        return (f"<div style='border-left:4px solid {color};padding:4px 8px'>"
                f"<b style='color:{color}'>{title}</b> — {self.events} events, "
                f"{self.artifacts} artifacts, head "
                f"<code>{self.head_seq}:{self.head_hash[:12]}</code><ul>{items}</ul></div>")


@dataclass(frozen=True, slots=True)
class Approval:
    user: str
    at: datetime
    comment: str = ""
    signed: bool = False


@dataclass(frozen=True, slots=True)
class GateResult:
    """One policy gate's verdict for a promotion, with the evidence it was decided on."""

    gate: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<GateResult {'PASS' if self.passed else 'FAIL'} {self.gate}: {self.detail}>"


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    """A request to move a version to a stage, and what happened to it."""

    request_id: str
    model: str
    version: int
    to: str
    from_stage: str
    requested_by: str
    requested_at: datetime
    comment: str = ""
    emergency: bool = False
    status: RequestStatus = "open"
    approvals: tuple[Approval, ...] = ()
    rejections: tuple[Approval, ...] = ()
    replaces: int | None = None
    required: int = 0
    gates: tuple[GateResult, ...] = ()
    closed_at: datetime | None = None
    ratified: bool = False

    def __repr__(self) -> str:
        who = ", ".join(a.user for a in self.approvals) or "nobody"
        flag = " EMERGENCY" if self.emergency else ""
        return (f"<PromotionRequest {self.model} v{self.version} {self.from_stage}->{self.to} "
                f"[{self.status}]{flag} approvals {len(self.approvals)}/{self.required} "
                f"({who})>")

    def _repr_html_(self) -> str:
        esc = html.escape
        color = {"promoted": "#1a7f37", "rejected": "#cf222e", "open": "#9a6700"}.get(
            self.status, "#57606a")
        gates = "".join(
            f"<li><span style='color:{'#1a7f37' if g.passed else '#cf222e'}'>"
            f"{'✔' if g.passed else '✘'}</span> <b>{esc(g.gate)}</b>: {esc(g.detail)}</li>"
            for g in self.gates)
        cell = "style='text-align:left;padding:2px 8px;border-bottom:1px solid #eaeef2'"
        approvals = "".join(
            f"<tr><td {cell}>{esc(a.user)}</td><td {cell}>{a.at:%Y-%m-%d %H:%M:%S}</td>"
            f"<td {cell}>{esc(a.comment) or '—'}</td><td {cell}>{'yes' if a.signed else 'no'}"
            "</td></tr>" for a in self.approvals)
        table = (f"<table style='border-collapse:collapse'><tr><th {cell}>approved by</th>"
                 f"<th {cell}>at</th><th {cell}>comment</th><th {cell}>signed</th></tr>"
                 f"{approvals}</table>" if approvals else
                 "<div style='color:#57606a'>no approvals yet</div>")
        return (f"<div style='font-family:sans-serif;font-size:12px'><b>{esc(self.model)}</b> "
                f"v{self.version}: {esc(self.from_stage)} → <b>{esc(self.to)}</b> "
                f"<code style='color:{color}'>{esc(self.status)}</code>"
                f"{' <b style=color:#cf222e>EMERGENCY</b>' if self.emergency else ''}"
                f"<div style='color:#57606a'>requested by {esc(self.requested_by)} at "
                f"{self.requested_at:%Y-%m-%d %H:%M:%S} UTC: {esc(self.comment) or '(no comment)'}"
                f"</div><div>approvals ({len(self.approvals)}/{self.required})</div>{table}"
                f"<ul>{gates}</ul></div>")
