"""Evaluate a stage's gates for one version; each verdict carries its evidence."""

from __future__ import annotations

import operator
from collections.abc import Callable

from ..domain.entities import GateResult, ModelVersion
from ..domain.policy import MetricGate, StagePolicy
from . import reporting
from .state import ModelState, RegistryState

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}


def evaluate(state: RegistryState, model: ModelState, version: int, to: str, *,
             compare: bool = True) -> list[GateResult]:
    """Every gate of stage ``to`` for ``version``. ``compare=False`` (a rollback) skips
    gates relative to the stage's holder: the holder is the version being replaced."""
    rules = state.policy.rules(to)
    mv = model.view(version)
    results = [_metric(gate, mv, model) for gate in rules.metrics
               if compare or gate.value is not None]
    results += _card(rules, mv)
    results += [_report(state, mv, template) for template in rules.reports]
    if "revalidation_required" in mv.status:
        results.append(GateResult("data_recall", False,
                                  f"trained on recalled data: {mv.status['revalidation_required']}"
                                  "; retrain on corrected data and register a new version",
                                  {"lineage": mv.lineage.get("training_data")}))
    return results


def _metric(gate: MetricGate, mv: ModelVersion, model: ModelState) -> GateResult:
    value = mv.metrics.get(gate.metric)
    if value is None:
        return GateResult(gate.text, False, f"v{mv.version} has no metric {gate.metric!r}",
                          {"metrics": dict(mv.metrics)})
    if gate.value is not None:
        threshold, against = gate.value, None
    else:
        assert gate.stage is not None and gate.ref_metric is not None
        holder = model.holder(gate.stage)
        if holder is None or holder == mv.version:
            return GateResult(gate.text, True, f"no other version in {gate.stage} to compare "
                              "against", {gate.metric: value})
        ref = model.versions[holder].metrics.get(gate.ref_metric)
        if ref is None:
            return GateResult(gate.text, False, f"{gate.stage} holder v{holder} has no metric "
                              f"{gate.ref_metric!r}", {gate.metric: value})
        threshold, against = ref + gate.delta, holder
    passed = OPS[gate.op](value, threshold)
    evidence = {gate.metric: value, "threshold": threshold}
    if against is not None:
        evidence["compared_with_version"] = against
    return GateResult(gate.text, passed,
                      f"{gate.metric} = {value:.6g} {'meets' if passed else 'fails'} "
                      f"{gate.op} {threshold:.6g}", evidence)


def _card(rules: StagePolicy, mv: ModelVersion) -> list[GateResult]:
    if not rules.card_fields:
        return []
    missing = [f for f in rules.card_fields if not str(mv.card.get(f, "")).strip()]
    detail = ("all required card fields present" if not missing else
              f"model card lacks {', '.join(missing)}; add them with reg.set_card(...) or "
              "%%modelcard")
    return [GateResult("card_fields", not missing, detail,
                       {"required": list(rules.card_fields), "missing": missing})]


def _report(state: RegistryState, mv: ModelVersion, template: str) -> GateResult:
    """The newest run of ``template`` that counts: its template is known by sha256 (shipped,
    or registered in the policy) and its recorder held a reporting role (the fold applies
    no other). Its outputs were in the artifact store when it was recorded; verify()
    checks they still are."""
    runs = state.reports.get((mv.name, mv.version), {}).values()
    counting = [r for r in runs
                if reporting.known_template(state.policy, r.get("template_sha256")) == template]
    if not counting:
        older = [r["seq"] for r in runs if r.get("template") == template]
        why = (f"the {template} report at event {older[-1]} does not count (no known "
               "template sha256: recorded by an older nbregistry or not by its runner)"
               if older else f"no {template} report for v{mv.version}")
        return GateResult(f"report:{template}", False,
                          f"{why}; run nbr.run_report({template!r}, model={mv.name!r}, "
                          f"version={mv.version}) as a holder of a reporting role", {})
    run = max(counting, key=lambda r: int(r["seq"]))
    return GateResult(f"report:{template}", True, f"{template} report at event {run['seq']}",
                      {"seq": run["seq"], "sha256": run.get("sha256"),
                       "template_sha256": run["template_sha256"]})
