"""Policy as code: lifecycle, approvals, segregation of duties and gates, validated."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from .canonical import is_finite_number, shown
from .errors import InvalidInputError
from .monitoring_policy import MAX_DAYS, MONITORING_GATES, MonitoringPolicy, parse_monitoring
from .report_policy import FairLendingPolicy, ReportsPolicy, parse_fair_lending, parse_reports

DEFAULT_POLICY_TOML = '''\
# nbregistry default policy: safe out of the box. Change it with reg.set_policy(...).
roles = ["admin", "validator", "risk_officer", "data_scientist"]

[lifecycle]
stages = ["development", "staging", "production", "archived"]
initial = "development"
exclusive = ["staging", "production"]   # one version at a time
replaced_to = "archived"               # where the replaced holder goes

[lifecycle.transitions]
development = ["staging", "archived"]
staging = ["production", "development", "archived"]
production = ["archived"]
archived = ["development"]

[stages.staging]
approvals = 0

[stages.production]
approvals = 1
approver_roles = ["validator", "risk_officer"]
distinct_from = ["registrant", "requester"]
card_fields = ["intended_use", "limitations"]
approval_ttl_days = 365
emergency_roles = ["admin"]
emergency_window_hours = 72
'''

_METRIC_GATE = re.compile(
    r"\s*(?P<metric>[A-Za-z_][\w.\-]*)\s*(?P<op>>=|<=|==|>|<)\s*"
    r"(?:(?P<value>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<stage>[A-Za-z_][\w\-]*)\."
    r"(?P<ref>[A-Za-z_][\w.\-]*)\s*(?:(?P<sign>[-+])\s*(?P<delta>\d+(?:\.\d*)?))?)\s*")
SEPARABLE = ("registrant", "requester")


@dataclass(frozen=True, slots=True)
class MetricGate:
    """``auc >= 0.75`` or ``auc >= production.auc - 0.01`` (relative to a stage's holder)."""

    text: str
    metric: str
    op: str
    value: float | None = None
    stage: str | None = None
    ref_metric: str | None = None
    delta: float = 0.0

    @classmethod
    def parse(cls, text: str) -> MetricGate:
        match = _METRIC_GATE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidInputError(
                f"metric gate {text!r} is not understood: write '<metric> <op> <number>' or "
                "'<metric> <op> <stage>.<metric> [+|- <number>]', e.g. 'auc >= 0.75' or "
                "'auc >= production.auc - 0.01'", field="metrics", value=text)
        g = match.groupdict()
        delta = float(g["delta"] or 0) * (-1 if g["sign"] == "-" else 1)
        return cls(text.strip(), g["metric"], g["op"],
                   float(g["value"]) if g["value"] is not None else None, g["stage"], g["ref"],
                   delta)


@dataclass(frozen=True, slots=True)
class StagePolicy:
    approvals: int = 0
    approver_roles: tuple[str, ...] = ()
    requester_roles: tuple[str, ...] = ()
    distinct_from: tuple[str, ...] = SEPARABLE
    metrics: tuple[MetricGate, ...] = ()
    card_fields: tuple[str, ...] = ()
    reports: tuple[str, ...] = ()
    approval_ttl_days: float | None = None
    emergency_roles: tuple[str, ...] = ()
    emergency_window_hours: float = 72.0
    monitoring: tuple[str, ...] = ()  # gates that read monitoring data (MONITORING_GATES)
    # Who may deploy a version of this stage; empty: anyone holding a role the policy names.
    deployer_roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadingPolicy:
    """Who and what ``load`` trusts without ``trusted=True`` (``[loading]``)."""

    trusted_registrants: tuple[str, ...] = ()  # their pickle-based artifacts load
    trusted_types: tuple[str, ...] = ()        # reviewed types the skops loader accepts


@dataclass(frozen=True, slots=True)
class Policy:
    roles: tuple[str, ...]
    stages: tuple[str, ...]
    initial: str
    exclusive: frozenset[str]
    replaced_to: str
    transitions: dict[str, tuple[str, ...]]
    stage_rules: dict[str, StagePolicy] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    # Sections and keys this version does not know (a newer writer's), kept in ``source``.
    unknown: tuple[str, ...] = ()
    loading: LoadingPolicy = field(default_factory=LoadingPolicy)
    monitoring: MonitoringPolicy = field(default_factory=MonitoringPolicy)
    reports: ReportsPolicy = field(default_factory=ReportsPolicy)
    fair_lending: FairLendingPolicy = field(default_factory=FairLendingPolicy)

    def rules(self, stage: str) -> StagePolicy:
        return self.stage_rules.get(stage, StagePolicy())

    def check_stage(self, stage: str) -> str:
        if stage not in self.stages:
            raise InvalidInputError(f"unknown stage {stage!r}; the policy's stages are "
                                    f"{', '.join(self.stages)}", field="stage", value=stage)
        return stage

    def check_role(self, role: str) -> str:
        if role not in self.roles:
            raise InvalidInputError(f"unknown role {role!r}; the policy's roles are "
                                    f"{', '.join(self.roles)} (add it under roles = [...])",
                                    field="role", value=role)
        return role


def parse_policy(data: dict[str, Any], *, strict: bool = True) -> Policy:
    """Build a Policy from a parsed TOML/YAML/JSON document; every mistake is reported.

    ``strict=False`` is for reading the log: sections and keys this version does not know
    (written by a newer nbregistry) are listed in ``Policy.unknown`` instead of refused."""
    errors: list[str] = []
    unknown: list[str] = []
    roles = _strings(data.get("roles", ["admin"]), "roles", errors)
    if "admin" not in roles:
        errors.append("roles must include 'admin' (admins grant roles and change the policy)")
    life = data.get("lifecycle", {})
    stages = _strings(life.get("stages", []), "lifecycle.stages", errors)
    if not stages:
        errors.append("lifecycle.stages must list at least one stage")
    initial = life.get("initial", stages[0] if stages else "")
    replaced_to = life.get("replaced_to", initial)
    for key, value in (("initial", initial), ("replaced_to", replaced_to)):
        if value not in stages:
            errors.append(f"lifecycle.{key} = {value!r} is not one of lifecycle.stages")
    exclusive = _strings(life.get("exclusive", []), "lifecycle.exclusive", errors)
    transitions: dict[str, tuple[str, ...]] = {}
    for source, targets in dict(life.get("transitions", {})).items():
        transitions[source] = _strings(targets, f"lifecycle.transitions.{source}", errors)
    for name in [*exclusive, *transitions, *(t for ts in transitions.values() for t in ts)]:
        if name not in stages:
            errors.append(f"stage {name!r} is used in lifecycle but not listed in its stages")
    rules = {name: _stage_rules(name, body, roles, stages, errors, unknown)
             for name, body in dict(data.get("stages", {})).items()}
    loading = _loading(data.get("loading", {}), errors, unknown)
    monitoring = parse_monitoring(data.get("monitoring", {}), errors, unknown)
    if isinstance(data.get("monitoring"), dict) and "action_roles" in data["monitoring"]:
        errors += [f"monitoring.action_roles: {r!r} is not one of the policy's roles"
                   for r in monitoring.action_roles if r not in roles]
    else:  # the default names roles a custom policy may not have
        monitoring = dataclasses.replace(monitoring, action_roles=tuple(
            r for r in monitoring.action_roles if r in roles))
    reports = parse_reports(data.get("reports", {}), roles, errors, unknown)
    fair_lending = parse_fair_lending(data.get("fair_lending", {}), errors, unknown)
    unknown += sorted(set(data) - KNOWN_SECTIONS)
    if strict and unknown:
        errors.append(f"unknown keys: {', '.join(unknown)} (known top-level keys: "
                      f"{', '.join(sorted(KNOWN_SECTIONS))})")
    if errors:
        raise InvalidInputError("the policy is invalid:\n  - " + "\n  - ".join(errors),
                                field="policy")
    return Policy(roles, stages, initial, frozenset(exclusive), replaced_to, transitions, rules,
                  data, tuple(unknown), loading, monitoring, reports, fair_lending)


KNOWN_SECTIONS = frozenset({"roles", "lifecycle", "stages", "loading", "monitoring", "reports",
                            "fair_lending"})


def _loading(body: Any, errors: list[str], unknown: list[str]) -> LoadingPolicy:
    if not isinstance(body, dict):
        errors.append("[loading] must be a table")
        return LoadingPolicy()
    unknown += [f"loading.{k}" for k in sorted(set(body) - {"trusted_registrants",
                                                            "trusted_types"})]
    return LoadingPolicy(
        _strings(body.get("trusted_registrants", []), "loading.trusted_registrants", errors),
        _strings(body.get("trusted_types", []), "loading.trusted_types", errors))


_STAGE_KEYS = {"approvals", "approver_roles", "requester_roles", "distinct_from", "metrics",
               "card_fields", "reports", "approval_ttl_days", "emergency_roles",
               "emergency_window_hours", "monitoring", "deployer_roles"}


def _stage_rules(name: str, body: dict[str, Any], roles: tuple[str, ...],
                 stages: tuple[str, ...], errors: list[str], unknown: list[str]
                 ) -> StagePolicy:
    where = f"stages.{name}"
    if name not in stages:
        errors.append(f"[{where}] names a stage that is not in lifecycle.stages")
    unknown += [f"{where}.{key}" for key in sorted(set(body) - _STAGE_KEYS)]
    approvals = body.get("approvals", 0)
    if isinstance(approvals, bool) or not isinstance(approvals, int) or approvals < 0:
        errors.append(f"{where}.approvals must be a non-negative integer, got {approvals!r}")
        approvals = 0
    role_lists = {k: _strings(body.get(k, []), f"{where}.{k}", errors)
                  for k in ("approver_roles", "requester_roles", "emergency_roles",
                            "deployer_roles")}
    for key, values in role_lists.items():
        for role in values:
            if role not in roles:
                errors.append(f"{where}.{key} names unknown role {role!r}")
    if approvals and not role_lists["approver_roles"]:
        errors.append(f"{where} needs approvals but lists no approver_roles")
    distinct = _strings(body.get("distinct_from", list(SEPARABLE)), f"{where}.distinct_from",
                        errors)
    for item in distinct:
        if item not in SEPARABLE:
            errors.append(f"{where}.distinct_from: {item!r} is not one of {SEPARABLE}")
    gates = []
    for text in _strings(body.get("metrics", []), f"{where}.metrics", errors):
        try:
            gates.append(MetricGate.parse(text))
        except InvalidInputError as exc:
            errors.append(f"{where}.metrics: {exc}")
    ttl = body.get("approval_ttl_days")
    if ttl is not None and (not is_finite_number(ttl) or not 0 < ttl <= MAX_DAYS):
        errors.append(f"{where}.approval_ttl_days must be a number of days above 0 and at "
                      f"most {MAX_DAYS:,}, got {shown(ttl)}")
        ttl = None
    watched = _strings(body.get("monitoring", []), f"{where}.monitoring", errors)
    for gate in watched:
        if gate not in MONITORING_GATES:
            errors.append(f"{where}.monitoring: {gate!r} is not one of "
                          f"{', '.join(MONITORING_GATES)}")
    window = body.get("emergency_window_hours", 72.0)
    if not is_finite_number(window) or not 0 < window <= MAX_DAYS * 24:
        errors.append(f"{where}.emergency_window_hours must be a number of hours above 0 and "
                      f"at most {MAX_DAYS * 24:,}, got {shown(window)}")
        window = 72.0
    return StagePolicy(approvals, role_lists["approver_roles"], role_lists["requester_roles"],
                       distinct, tuple(gates),
                       _strings(body.get("card_fields", []), f"{where}.card_fields", errors),
                       _strings(body.get("reports", []), f"{where}.reports", errors),
                       ttl, role_lists["emergency_roles"], float(window), watched,
                       role_lists["deployer_roles"])


def _strings(value: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        errors.append(f"{where} must be a list of non-empty strings, got {value!r}")
        return ()
    return tuple(value)
