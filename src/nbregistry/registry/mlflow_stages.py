"""MLflow's stages, carried over through the registry's own governance.

MLflow's ``Staging``/``Production`` are labels anyone with edit rights sets, with no
approval behind them. An import therefore never sets a stage itself: each imported version
starts in the policy's initial stage, its MLflow stage is kept in its lineage, and the
importer *requests* the mapped stage, step by step along the policy's transitions, exactly
as a person would. Steps that need no approval happen at once; a step that needs approvals
stays an open request for the approvers; a failing gate or a refused role stops the walk and
is reported. Running the import again after the approvals continues the walk; a request
that was rejected or withdrawn is never asked again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..domain.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
)
from ..domain.policy import Policy

if TYPE_CHECKING:
    from .registry import Registry

MLFLOW_STAGES = ("None", "Staging", "Production", "Archived")


def stage_map(policy: Policy, overrides: Mapping[str, str | None] | None
              ) -> dict[str, str | None]:
    """MLflow stage -> policy stage (None: stays in the initial stage). By default each
    MLflow stage maps to the policy stage of the same name in lower case, if there is one."""
    given = dict(overrides or {})
    unknown = sorted(set(given) - set(MLFLOW_STAGES))
    if unknown:
        raise InvalidInputError(f"unknown MLflow stage(s) {', '.join(unknown)}: MLflow's "
                                f"stages are {', '.join(MLFLOW_STAGES)}", field="stages")
    out: dict[str, str | None] = {}
    for stage in MLFLOW_STAGES:
        if stage in given:
            target = given[stage] or None
            if target is not None:
                policy.check_stage(target)
        else:
            lower = stage.lower()
            target = lower if stage != "None" and lower in policy.stages else None
        out[stage] = None if target == policy.initial else target
    return out


@dataclass(frozen=True, slots=True)
class Target:
    """One imported version and the stage its MLflow stage maps to."""

    version: int
    mlflow_version: int
    mlflow_stage: str
    stage: str


def path(policy: Policy, start: str, goal: str) -> list[str] | None:
    """The shortest list of stages to pass through from ``start`` to ``goal`` (excluding
    ``start``), following the policy's transitions; None when there is no way."""
    came: dict[str, str] = {}
    queue = deque([start])
    while queue:
        stage = queue.popleft()
        if stage == goal:
            steps = []
            while stage != start:
                steps.append(stage)
                stage = came[stage]
            return steps[::-1]
        for nxt in policy.transitions.get(stage, ()):
            if nxt not in came and nxt != start:
                came[nxt] = stage
                queue.append(nxt)
    return None


def request_stages(reg: Registry, name: str, targets: list[Target], comment: str
                   ) -> tuple[list[str], int]:
    """Walk each target towards its stage; (one line per target saying where it stands,
    the number of promotion requests written)."""
    policy = reg.policy
    lines, written = [], 0
    chosen, superseded = _one_per_exclusive(policy, targets)
    for target in superseded:
        lines.append(f"{_who(name, target)}: not requested: {target.stage} holds one "
                     "version and a later MLflow version had that stage too")
    pending = {t.version for t in chosen}
    order = sorted(chosen, key=lambda t: (-len(path(policy, policy.initial, t.stage) or []),
                                          -t.mlflow_version))
    for target in order:
        line, count = _walk(reg, name, target, pending, comment)
        lines.append(f"{_who(name, target)}: {line}")
        written += count
    return lines, written


def _who(name: str, target: Target) -> str:
    return f"{name} v{target.version} (MLflow v{target.mlflow_version}, {target.mlflow_stage})"


def _one_per_exclusive(policy: Policy, targets: list[Target]
                       ) -> tuple[list[Target], list[Target]]:
    """MLflow lets several versions hold Production; an exclusive stage holds one, so only
    the newest MLflow version is requested."""
    newest: dict[str, Target] = {}
    for target in targets:
        if target.stage in policy.exclusive:
            held = newest.get(target.stage)
            if held is None or target.mlflow_version > held.mlflow_version:
                newest[target.stage] = target
    chosen = [t for t in targets if t.stage not in policy.exclusive or newest[t.stage] is t]
    return chosen, [t for t in targets if t not in chosen]


def _walk(reg: Registry, name: str, target: Target, pending: set[int], comment: str
          ) -> tuple[str, int]:
    policy, version = reg.policy, target.version
    current = reg.get(name, version).stage
    if current == target.stage:
        return f"in {target.stage}", 0
    full = path(policy, policy.initial, target.stage)
    if full is None:
        return (f"not requested: the policy has no way from {policy.initial} to "
                f"{target.stage}"), 0
    if current != policy.initial and current not in full:
        return f"left alone: it is in {current} in this registry now", 0
    steps = full[full.index(current) + 1:] if current in full else full
    held = _previous_answer(reg, name, version, full)
    if held:
        return held, 0
    failed = [f"{stage}: {g.detail}" for stage in steps
              for g in reg.check_gates(name, version, stage) if not g.passed]
    if failed:
        return (f"not requested: {'; '.join(failed)}; fix that and run the import again"), 0
    written = 0
    for stage in steps:
        rival = _rival(reg, name, stage, version, pending)
        if rival is not None:
            return (f"waits: {stage} is taken by v{rival} (which the import put or asked "
                    f"there), and the policy's way to {target.stage} passes through it; run "
                    f"the import again once v{rival} has moved on, or request it yourself"
                    ), written
        try:
            request = reg.request_promotion(
                name, version, to=stage, comment=f"{comment}; MLflow v{target.mlflow_version} "
                f"was in {target.mlflow_stage} there")
        except (PolicyViolationError, ConflictError, InvalidInputError) as exc:
            return f"stopped before {stage}: {exc}", written
        written += 1
        if request.status == "open":
            rules = policy.rules(stage)
            return (f"{stage} requested: awaits {rules.approvals} approval(s) by "
                    f"{' or '.join(rules.approver_roles)}"), written
    return f"now in {target.stage}", written


def _previous_answer(reg: Registry, name: str, version: int, stages: list[str]) -> str:
    """Why not to ask now: a request still open, or one already refused."""
    for request in reg.requests(name, status="all"):
        if request.version != version or request.to not in stages:
            continue
        if request.status == "open":
            return f"{request.to} requested: awaits approval (request {request.request_id})"
        if request.status in ("rejected", "withdrawn"):
            return (f"not requested again: the request for {request.to} was "
                    f"{request.status}")
    return ""


def _rival(reg: Registry, name: str, stage: str, version: int, pending: set[int]
           ) -> int | None:
    """Another version this import moves that holds, or awaits approval for, ``stage``:
    moving this one there would push it out (an exclusive stage holds one version)."""
    if stage not in reg.policy.exclusive:
        return None
    try:
        holders = [reg.get(name, stage=stage).version]
    except NotFoundError:
        holders = []
    holders += [r.version for r in reg.requests(name) if r.to == stage]
    return next((v for v in holders if v != version and v in pending), None)
