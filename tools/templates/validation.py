# %% [markdown]
# # Model validation report
#
# Independent validation of a model version under the Federal Reserve's SR 11-7 / OCC
# Bulletin 2011-12 supervisory guidance on model risk management and SR 26-2, which replaces
# them and ties the depth of validation to the model's materiality: purpose and intended use,
# conceptual soundness, data lineage and quality, performance out of sample and in
# production, stability and sensitivity, a benchmark or challenger, limitations, the
# ongoing-monitoring plan, the findings with the validator's conclusion, and the sign-off.
# Every number is read from the registry as of the head shown below and from the Delta
# table versions listed at the end, so the report can be re-run and compared
# (`nbr.reverify`).

# %% tags=["parameters"]
from typing import Optional

registry_uri: str = None  # set by the runner
pin: Optional[dict] = None  # set by nbr.reverify: the head and table versions to re-run on
model: str = None  # the model
version: int = None  # the version under validation
target: str = "default"  # the outcome column of the data table
data: Optional[str] = None  # a Delta table to validate on (default: the version's training table)
split_column: str = "split"  # column naming the samples (train / test / oot), when present
materiality: str = "medium"  # high | medium | low (SR 26-2 tiering: the depth of the review)
trusted: bool = False  # load a pickle-based model (only for artifacts you trust)
conclusion: Optional[str] = None  # the validator's conclusion (e.g. "fit for use, with conditions")
effective_challenge: Optional[str] = None  # what the validator challenged, and the answers

# %%
from nbregistry.reports import helpers as h  # first: it keeps the report kernel's imports lean
from datetime import timedelta

import numpy as np

from nbregistry import charts
from nbregistry.domain.errors import InvalidInputError
from nbregistry.domain.timefmt import parse_window
from nbregistry.reports import findings as fx
from nbregistry.reports import monitoring as mr
from nbregistry.reports import validation as val
from nbregistry.watch.results import BaselineInfo

if materiality not in val.MATERIALITY:
    raise InvalidInputError(f"materiality must be one of {list(val.MATERIALITY)}, got "
                            f"{materiality!r}", field="materiality")
ctx = h.open_report(registry_uri, pin, title=f"Model validation: {model} v{version}")
reg = ctx.registry
mv = reg.get(model, version)
plan = reg.policy.monitoring
bands = plan.thresholds
mon = ctx.monitor(model)
figures, found = {}, []
frozen = reg.frozen_baseline(model, version) or {}
baseline = BaselineInfo(mv.reference["sha256"], frozen.get("sha256"), frozen.get("seq")) \
    if mv.reference else None
h.show(h.table([{"model": mv.name, "version": mv.version, "stage": mv.stage,
                 "registered by": mv.created_by, "registered at": mv.created_at,
                 "sha256": mv.sha256, "flavor": mv.flavor, "materiality": materiality}],
               caption="Model version"))
if baseline is not None:
    h.show(h.baseline_note(baseline))
h.show(h.note(f"Materiality {materiality}: {val.MATERIALITY[materiality]}."))

# %% [markdown]
# ## 1. Purpose and intended use
#
# SR 11-7, model development and use: the purpose, intended use and known limits, from the
# model card recorded in the registry.

# %%
card = dict(mv.card)
h.show(h.table([{"field": k, "value": v} for k, v in card.items()], caption="Model card"))
if mv.description:
    h.show(h.note(mv.description))
missing_card = [f for f in ("intended_use", "limitations") if not str(card.get(f, "")).strip()]
found += fx.card_findings(missing_card)
if missing_card:
    h.show(h.note(f"The card lacks {', '.join(missing_card)}: a validation finding.", kind="bad"))

# %% [markdown]
# ## 2. Conceptual soundness
#
# SR 11-7, evaluation of conceptual soundness: the features the model takes (the schema
# recorded at registration), its hyper-parameters, the stated assumptions and the importance
# of each feature to the fitted model (section 5).

# %%
features = [f["name"] for f in mv.features]
h.show(h.table(list(mv.features), caption="Features (recorded schema)"))
h.show(h.table([{"parameter": k, "value": v} for k, v in mv.params.items()],
               caption="Hyper-parameters"))
h.show(h.note("Assumptions: " + str(card.get("assumptions", "none stated in the model card"))))
fitted = reg.load(model, version, trusted=trusted)

# %% [markdown]
# ## 3. Data lineage and quality
#
# SR 11-7, data quality and relevance: the data the model is validated on. The table given
# (`data=`), else the training table pinned in the version's lineage (at the Delta version
# recorded when it was registered), else the reference sample registered with the version.

# %%
lineage = dict(mv.lineage)
h.show(h.table([{"item": k, "value": v} for k, v in lineage.items() if k != "packages"],
               caption="Lineage"))
h.show(h.table([{"package": k, "version": v} for k, v in lineage.get("packages", {}).items()],
               caption="Environment at registration"))
source = val.validation_data(ctx, mv, data=data, target=target)
frame = source.frame
quality = val.data_quality(source.table)
h.show(h.table(quality, caption=f"Data quality: {source.table.num_rows:,} rows of "
                                f"{source.label}"))
absent = [c for c in [*features, target] if c not in frame.columns]
if absent:
    raise InvalidInputError(f"the data lacks the columns {absent}: pass target= (the outcome "
                            "column) or data= (a table with the model's features)",
                            field="data")
figures.update(rows=source.table.num_rows, data_source=source.kind,
               missing_rate_max=max(q["missing_rate"] for q in quality if q["column"] in features),
               duplicate_rows=int(frame.duplicated().sum()))
found += fx.data_findings(source.kind, quality, features)

# %% [markdown]
# ## 4. Performance
#
# SR 11-7, outcomes analysis: discrimination (AUC with DeLong's 95% interval, Gini, KS with a
# bootstrap 95% interval) and calibration (Brier score, log loss) on each sample, ordered
# training (in-sample), hold-out, out-of-time; then on production traffic whose outcomes
# have matured under the policy's `maturity_days`.

# %%
frame["_score"] = val.positive_scores(fitted, frame[features])
split = split_column in frame.columns
samples = (val.order_samples(frame[split_column].dropna().unique().tolist()) if split
           else ["reference" if source.kind == "reference" else "all"])


def part(sample):
    return frame[frame[split_column] == sample] if split else frame


performance, roc = [], []
for sample in samples:
    metrics = val.classification_metrics(part(sample)[target], part(sample)["_score"],
                                         intervals=True)
    performance.append({"sample": sample, "role": val.sample_role(sample), **metrics})
    roc += val.roc_points(part(sample)[target], part(sample)["_score"], str(sample))
    figures.update({f"auc_{sample}": metrics["auc"], f"auc_{sample}_low": metrics["auc_low"],
                    f"auc_{sample}_high": metrics["auc_high"], f"ks_{sample}": metrics["ks"],
                    f"ks_{sample}_low": metrics["ks_low"],
                    f"ks_{sample}_high": metrics["ks_high"]})
outside = [p["sample"] for p in performance if p["role"] != "in-sample"]
figures["in_sample_only"] = not outside
if not outside:
    h.show(h.note("IN-SAMPLE ONLY: every figure in this section is measured on the data the "
                  "model was trained on; there is no hold-out or out-of-time sample, so how it "
                  "performs on unseen data is unknown (a high finding).", kind="bad"))
rule = mr.maturity(mon, plan.maturity_days) if mon.has_predictions() else None
traffic = mon.rows(version=version).to_pandas() if rule else None
production = None
if traffic is not None and len(traffic):
    served = traffic[(traffic["ts"] <= rule.cutoff) & traffic["actual"].notna()]
    h.show(h.note(f"Production maturity: {rule.describe()}. {len(served):,} of "
                  f"{len(traffic):,} logged predictions of v{version} have matured with an "
                  "outcome."))
    if len(served):
        production = val.classification_metrics(served["actual"].astype(int), served["score"],
                                                intervals=True)
        performance.append({"sample": "production (matured)", "role": "production",
                            **production})
        roc += val.roc_points(served["actual"].astype(int), served["score"], "production")
        figures.update(auc_production=production["auc"],
                       auc_production_low=production["auc_low"],
                       auc_production_high=production["auc_high"])
for p in performance:
    p.update(auc_95ci=h.ci_text(p["auc_low"], p["auc_high"]),
             ks_95ci=h.ci_text(p["ks_low"], p["ks_high"]))
h.show(h.table(performance, columns=["sample", "role", "n", "event_rate", "auc", "auc_95ci",
                                     "gini", "ks", "ks_95ci", "brier", "log_loss", "accuracy"],
               caption="Performance by sample"))
h.show(h.chart(charts.roc_curves(roc)))
found += fx.performance_findings([p for p in performance if p["role"] != "production"], bands)

# %% [markdown]
# ## 5. Stability and sensitivity
#
# SR 11-7, evaluation of conceptual soundness and outcomes analysis: population stability
# (PSI) of each feature and of the score of every sample against the training sample, and of
# production traffic against the monitoring baseline in each of the policy's windows (a
# feature breaches only when it drifted: adjusted p-value below 0.05 and PSI of at least
# 0.1); the mean change of the score when one feature moves by one standard deviation.

# %%
psi_band = bands["psi"]
base = part(samples[0])
stability = []
for other in samples[1:]:
    for name in [*features, "_score"]:
        if np.issubdtype(frame[name].dtype, np.number):
            psi = val.psi_between(base[name], part(other)[name])
            stability.append({"feature": name.strip("_"), "compared": f"{samples[0]} vs {other}",
                              "psi": psi, "rag": h.rag(psi_band.status(psi))})
h.show(h.table(stability, caption=f"PSI between samples (reference: {samples[0]})"))
if stability:
    figures["psi_max_samples"] = max(s["psi"] for s in stability if s["psi"] is not None)
found += fx.stability_findings(stability, psi_band)
alerts = [e for e in reg.alerts(model) if e.version == version]
worst_drift = []
if traffic is None or not len(traffic):
    h.show(h.note(f"v{version} has scored no logged production traffic: no production PSI."))
elif mv.reference is None:
    h.show(h.note(f"v{version} was registered without reference data, so it has no monitoring "
                  "baseline: drift of its production traffic is not measured.", kind="bad"))
    found.append(fx.finding("medium", "5. Stability", "No monitoring baseline (no "
                            "reference data at registration): production drift is not "
                            "measured."))
else:
    stop = traffic["ts"].max().to_pydatetime() + timedelta(microseconds=1)
    spans = mr.windows(traffic["ts"].min().to_pydatetime(), stop, parse_window(plan.window))
    by_window = mr.drift_by_window(mon, spans, version, psi_band, plan.min_rows)
    worst_drift = mr.worst_by_feature(by_window)
    for r in worst_drift:
        r.update(window=f"{mr.when(r['window_start'])} .. {mr.when(r['window_end'])}",
                 rag=h.rag(r["rating"]), p_shown=h.p_text(r["p_adjusted"]))
    h.show(h.table(worst_drift, columns=["feature", "window", "n", "psi", "test", "p_shown",
                                         "drifted", "rag"],
                   caption=f"Production traffic vs the baseline: each feature's worst "
                           f"{plan.window} window of {len(spans)} (p_shown: adjusted p-value)"))
    h.show(h.chart(charts.status_bars([{**r, "status": r["rating"]} for r in worst_drift],
                                      value="psi", thresholds=[psi_band.warn, psi_band.alert])))
    rated = [r for r in by_window if r["rating"] != "insufficient"]
    figures["psi_max_production"] = max((r["psi"] for r in rated if r["psi"] is not None),
                                        default=None)
    figures["drift_rating_production"] = mr.worst(by_window)
found += fx.production_findings(worst_drift, production, alerts, bands, plan.maturity_days)
depth = {"high": len(features), "medium": min(5, len(features)), "low": 0}[materiality]
shifts = val.sensitivity(lambda X: val.positive_scores(fitted, X), base[features].copy(),
                         features)[: depth or None] if depth else []
h.show(h.table(shifts, caption=f"Sensitivity on the {samples[0]} sample: mean score change for "
                               "±1 standard deviation"))
try:
    from nbregistry.monitoring.importance import feature_importance
    import pyarrow as pa

    importance = feature_importance(fitted, pa.Table.from_pandas(base[features],
                                                                 preserve_index=False),
                                    base[target].to_numpy())
    h.show(h.chart(charts.value_bars(importance.values,
                                     title=f"importance ({importance.method})")))
except Exception as exc:  # importance is context, not a figure: say why it is missing
    h.show(h.note(f"feature importance unavailable: {exc}", kind="warn"))

# %% [markdown]
# ## 6. Benchmark or challenger
#
# SR 11-7, benchmarking: the version against the production version (or the one it replaced
# in production), replayed on logged production traffic with matured outcomes when
# monitoring has it, else both scored on the last out-of-sample data sample; with neither, a
# simple benchmark (logistic regression on the model's numeric features, fitted on the
# training sample) on that sample. DeLong's test for the AUC difference, with its 95%
# interval; the replay's other metrics with paired-bootstrap intervals.

# %%
from nbregistry.watch.replay import RESAMPLES

holder = val.incumbent(reg, model, version)
last = outside[-1] if outside else samples[-1]
evaluation = part(last)
compared = None
replayed = None
if holder is not None and mon.has_predictions() and reg.get(model, holder).stage == "production":
    try:
        replayed = mon.replay(version, served=holder, trusted=trusted)
    except InvalidInputError as exc:
        h.show(h.note(f"replay on production traffic not possible: {exc}", kind="warn"))
if replayed is not None:
    floor = h.bootstrap_floor(RESAMPLES)
    h.show(h.table([{"metric": m, f"v{holder} (served)": a, f"v{version}": b,
                     "difference": b - a,
                     "95% interval": h.ci_text(*replayed.intervals.get(m, (None, None)),
                                               digits=4, signed=True),
                     "test": "DeLong" if m == "roc_auc" else "paired bootstrap",
                     "p_value": h.p_text(replayed.p_values.get(m),
                                         floor=None if m == "roc_auc" else floor)}
                    for m, (a, b) in replayed.metrics.items()],
                   caption=f"Replay on {replayed.n:,} logged production rows with matured "
                           f"outcomes: v{version} against v{holder}"))
    low, high = replayed.intervals["roc_auc"]
    compared = {"name": f"v{holder} (production)", "sample": "production traffic",
                "diff": replayed.diff, "low": low, "high": high,
                "p_value": replayed.p_values["roc_auc"], "in_sample": False}
    figures.update(challenger_auc_diff=replayed.diff,
                   challenger_p_value=replayed.p_values.get("roc_auc"))
else:
    if holder is not None:
        other = reg.load(model, holder, trusted=trusted)
        names = [f["name"] for f in reg.get(model, holder).features] or features
        other_scores, who = val.positive_scores(other, evaluation[names]), f"v{holder}"
    else:
        numeric = val.numeric_features(frame, features)
        simple = val.benchmark(base[numeric], base[target])
        other_scores = val.positive_scores(simple, evaluation[numeric])
        who = "the logistic-regression benchmark"
    compared = val.compare(evaluation[target], evaluation["_score"], other_scores, name=who,
                           sample=last, in_sample=val.sample_role(last) == "in-sample")
    h.show(h.table([{"model": f"v{version}", "auc": compared["auc_model"],
                     "95% CI": h.ci_text(*compared["model_ci"])},
                    {"model": who, "auc": compared["auc_other"],
                     "95% CI": h.ci_text(*compared["other_ci"])},
                    {"model": f"difference (v{version} minus {who})", "auc": compared["diff"],
                     "95% CI": h.ci_text(compared["low"], compared["high"], digits=4,
                                         signed=True),
                     "DeLong p": h.p_text(compared["p_value"])}],
                   caption=f"v{version} against {who} on the same {compared['n']:,} rows of "
                           f"the {last} sample" + (" (in-sample: both were fitted on it)"
                                                   if compared["in_sample"] else "")))
    prefix = "challenger" if holder is not None else "benchmark"
    figures.update({f"{prefix}_auc_diff": compared["diff"],
                    f"{prefix}_p_value": compared["p_value"],
                    f"{prefix}_auc_diff_low": compared["low"],
                    f"{prefix}_auc_diff_high": compared["high"]})
found += fx.benchmark_findings(compared)

# %% [markdown]
# ## 7. Limitations
#
# SR 11-7, limitations and assumptions: what the card says, what the registry records, and
# what the data shows.

# %%
limits = [{"source": "model card", "limitation": card.get("limitations", "none stated")}]
limits += [{"source": "registry", "limitation": f"{k}: {v}"} for k, v in mv.status.items()
           if k in ("revalidation_required", "retrain_requested")]
limits += [{"source": "data", "limitation": f"{q['column']} is {q['missing_rate']:.1%} missing"}
           for q in quality if q["column"] in features and q["missing_rate"] > 0.05]
limits += [{"source": "sample", "limitation": f"{p['sample']}: only {p['n']} rows"}
           for p in performance if p["n"] < 500]
h.show(h.table(limits, caption="Known limitations"))
found += fx.status_findings(mv.status)

# %% [markdown]
# ## 8. Ongoing-monitoring plan
#
# SR 11-7, ongoing monitoring: the thresholds, windows and actions of the registry's policy
# in force at the head.

# %%
h.show(h.table([{"setting": "window", "value": plan.window},
                {"setting": "outcome maturity (days)", "value": plan.maturity_days},
                {"setting": "minimum rows per window", "value": plan.min_rows},
                {"setting": "action on alert", "value": plan.on_alert},
                {"setting": "fairness attribute", "value": plan.fairness_group},
                {"setting": "production gates", "value":
                 list(reg.policy.rules("production").monitoring)}], caption="Monitoring"))
h.show(h.table([{"metric": k, "warn": b.warn, "alert": b.alert, "direction": b.direction}
                for k, b in plan.thresholds.items()], caption="Thresholds (warn / alert)"))

# %% [markdown]
# ## 9. Findings and conclusion
#
# SR 11-7, validation reporting and effective challenge: every finding above against the
# policy's thresholds (high: in the alert band, or no out-of-sample evidence; medium: in the
# warn band; low: a caveat), then the validator's conclusion and challenge as given to this
# run, and who ran it.

# %%
found = fx.ordered(found)
counts = {s: sum(f["severity"] == s for f in found) for s in ("high", "medium", "low")}
h.show(h.note(f"{len(found)} finding(s): {counts['high']} high, {counts['medium']} medium, "
              f"{counts['low']} low.", kind="bad" if counts["high"] else
              "warn" if counts["medium"] else "good"))
h.show(h.table([{**f, "severity": h.severity(f["severity"])} for f in found],
               columns=["severity", "section", "finding"], caption="Findings"))
h.show(h.table([{"item": "validator (ran this report)", "value": ctx.live.user},
                {"item": "conclusion", "value": conclusion or "not given"},
                {"item": "effective challenge", "value": effective_challenge or "not given"}],
               caption="Validator's conclusion"))
if not conclusion:
    h.show(h.note("No conclusion was given to this run: the validator states it with the "
                  "conclusion parameter (and the challenge with effective_challenge); the "
                  "findings are the evidence, not the conclusion.", kind="warn"))
figures.update(findings_high=counts["high"], findings_medium=counts["medium"],
               findings_low=counts["low"])

# %% [markdown]
# ## 10. Sign-off
#
# SR 11-7, governance: the promotion requests of this version and their approvals, as
# recorded (and signed, where the approver has an enrolled key) in the audit log, with the
# gate evidence.

# %%
requests = [r for r in reg.requests(model, status="all") if r.version == version]
h.show(h.table([{"request": r.request_id[:8], "to": r.to, "status": r.status,
                 "requested by": r.requested_by, "requested at": r.requested_at,
                 "emergency": r.emergency, "required": r.required} for r in requests],
               caption="Promotion requests"))
h.show(h.table([{"to": r.to, "approved by": a.user, "at": a.at, "signed": a.signed,
                 "comment": a.comment} for r in requests for a in r.approvals],
               caption="Approvals"))
h.show(h.table([{"to": r.to, "gate": g.gate, "passed": g.passed, "detail": g.detail}
                for r in requests for g in r.gates], caption="Gate evidence"))
figures["approvals"] = sum(len(r.approvals) for r in requests)

# %% [markdown]
# ## Key figures

# %%
h.record_figures(figures)

# %%
h.close(ctx)
