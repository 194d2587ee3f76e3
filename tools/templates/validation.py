# %% [markdown]
# # Model validation report
#
# Independent validation of a model version under the Federal Reserve's SR 11-7 / OCC
# Bulletin 2011-12 supervisory guidance on model risk management and SR 26-2, which replaces
# them and ties the depth of validation to the model's materiality: purpose and intended use,
# conceptual soundness, data lineage and quality, performance in and out of time, stability
# and sensitivity, a challenger comparison, limitations, the ongoing-monitoring plan and the
# sign-off. Every number is read from the registry as of the head shown below and from the
# Delta table versions listed at the end, so the report can be re-run and compared
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

# %%
from nbregistry.reports import helpers as h  # first: it keeps the report kernel's imports lean
import numpy as np

from nbregistry import charts
from nbregistry.reports import validation as val

if materiality not in val.MATERIALITY:
    raise ValueError(f"materiality must be one of {list(val.MATERIALITY)}, got {materiality!r}")
ctx = h.open_report(registry_uri, pin, title=f"Model validation: {model} v{version}")
reg = ctx.registry
mv = reg.get(model, version)
figures = {}
h.show(h.table([{"model": mv.name, "version": mv.version, "stage": mv.stage,
                 "registered by": mv.created_by, "registered at": mv.created_at,
                 "sha256": mv.sha256, "flavor": mv.flavor, "materiality": materiality}],
               caption="Model version"))
h.show(h.note(f"Materiality {materiality}: {val.MATERIALITY[materiality]}."))

# %% [markdown]
# ## 1. Purpose and intended use
#
# From the model card recorded in the registry.

# %%
card = dict(mv.card)
h.show(h.table([{"field": k, "value": v} for k, v in card.items()], caption="Model card"))
if mv.description:
    h.show(h.note(mv.description))
missing_card = [f for f in ("intended_use", "limitations") if not str(card.get(f, "")).strip()]
if missing_card:
    h.show(h.note(f"The card lacks {', '.join(missing_card)}: a validation finding.", kind="bad"))

# %% [markdown]
# ## 2. Conceptual soundness
#
# The features the model takes (the schema recorded at registration), its hyper-parameters,
# the stated assumptions and the importance of each feature to the fitted model.

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
# The data the model is validated on: the training table pinned in the version's lineage (at
# the Delta version recorded when it was registered) unless another table was given.

# %%
lineage = dict(mv.lineage)
source = lineage.get("training_data") or {}
h.show(h.table([{"item": k, "value": v} for k, v in lineage.items() if k != "packages"],
               caption="Lineage"))
h.show(h.table([{"package": k, "version": v} for k, v in lineage.get("packages", {}).items()],
               caption="Environment at registration"))
if data is None and source.get("format") != "delta":
    raise ValueError(f"{model} v{version} was not registered with a Delta training table: pass "
                     "data=<Delta table URI> to validate on")
table = ctx.read_table(data or source["uri"], None if data else source["version"])
frame = table.to_pandas()
quality = val.data_quality(table)
h.show(h.table(quality, caption=f"Data quality: {table.num_rows:,} rows of "
               f"{data or source['uri']}"))
absent = [c for c in [*features, target] if c not in frame.columns]
if absent:
    raise ValueError(f"the data lacks the columns {absent}")
figures.update(rows=table.num_rows,
               missing_rate_max=max(q["missing_rate"] for q in quality if q["column"] in features),
               duplicate_rows=int(frame.duplicated().sum()))

# %% [markdown]
# ## 4. Performance
#
# Discrimination (AUC, Gini, KS) and calibration (Brier score, log loss) on each sample of
# the data, and on production traffic whose outcomes have matured (out of time).

# %%
frame["_score"] = val.positive_scores(fitted, frame[features])
samples = (sorted(frame[split_column].dropna().unique().tolist())
           if split_column in frame.columns else ["all"])
performance, roc = [], []
for sample in samples:
    part = frame if sample == "all" else frame[frame[split_column] == sample]
    metrics = val.classification_metrics(part[target], part["_score"])
    performance.append({"sample": sample, **metrics})
    roc += val.roc_points(part[target], part["_score"], str(sample))
    figures[f"auc_{sample}"] = metrics["auc"]
    figures[f"ks_{sample}"] = metrics["ks"]
mon = ctx.monitor(model)
production = None
traffic = mon.rows(version=version).to_pandas() if mon.has_predictions() else None
if traffic is not None and len(traffic):
    served = traffic[traffic["actual"].notna()]
    if len(served):
        production = val.classification_metrics(served["actual"].astype(int), served["score"])
        performance.append({"sample": "production (matured)", **production})
        roc += val.roc_points(served["actual"].astype(int), served["score"], "production")
        figures["auc_production"] = production["auc"]
h.show(h.table(performance, caption="Performance by sample"))
h.show(h.chart(charts.roc_curves(roc)))

# %% [markdown]
# ## 5. Stability and sensitivity
#
# Population stability (PSI) of each feature and of the score between the first sample and
# the others, and against production traffic (the monitoring baseline); the mean change of
# the score when one feature moves by one standard deviation.

# %%
base = frame if samples == ["all"] else frame[frame[split_column] == samples[0]]
stability = []
for other in samples[1:]:
    part = frame[frame[split_column] == other]
    for name in [*features, "_score"]:
        if np.issubdtype(frame[name].dtype, np.number):
            stability.append({"feature": name.strip("_"), "compared": f"{samples[0]} vs {other}",
                              "psi": val.psi_between(base[name], part[name])})
h.show(h.table(stability, caption="PSI between samples"))
if stability:
    figures["psi_max_samples"] = max(s["psi"] for s in stability if s["psi"] is not None)
if traffic is None or not len(traffic):
    h.show(h.note(f"v{version} has scored no logged production traffic: no production PSI."))
else:
    drift = mon.drift(version=version)
    h.show(h.table(drift, columns=["feature", "n", "psi", "ks", "ks_pvalue", "status",
                                   "drifted"], caption="Production traffic vs the baseline"))
    h.show(h.chart(charts.status_bars(drift.to_pylist(), value="psi",
                                      thresholds=[0.1, 0.25])))
    figures["psi_max_production"] = max(v for v in drift.column("psi").to_pylist()
                                        if v is not None)
depth = {"high": len(features), "medium": min(5, len(features)), "low": 0}[materiality]
shifts = val.sensitivity(lambda X: val.positive_scores(fitted, X), base[features].copy(),
                         features)[: depth or None] if depth else []
h.show(h.table(shifts, caption="Sensitivity: mean score change for ±1 standard deviation"))
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
# ## 6. Challenger comparison
#
# The version under validation against the version in production: replayed on logged
# production traffic with matured outcomes when monitoring has it (DeLong's test for AUC),
# else both scored on the validation data.

# %%
try:
    holder = reg.get(model, stage="production").version
except Exception:
    holder = None
if holder is None or holder == version:
    h.show(h.note(f"v{version} is the production version (or there is none): no challenger "
                  "comparison." if holder == version else "No version is in production."))
else:
    replayed = None
    if mon.has_predictions():
        try:
            replayed = mon.replay(version, served=holder, trusted=trusted)
        except Exception as exc:
            h.show(h.note(f"replay on production traffic not possible: {exc}", kind="warn"))
    if replayed is not None:
        h.show(replayed)
        figures["challenger_auc_diff"] = replayed.diff
        figures["challenger_p_value"] = replayed.p_values.get("roc_auc")
    else:
        from nbregistry.monitoring.significance import delong

        incumbent = reg.load(model, holder, trusted=trusted)
        last = frame if samples == ["all"] else frame[frame[split_column] == samples[-1]]
        test = delong(last[target].to_numpy(), val.positive_scores(incumbent, last[features]),
                      last["_score"].to_numpy())
        h.show(h.table([{"sample": samples[-1], f"auc v{holder}": test.auc_a,
                         f"auc v{version}": test.auc_b, "p_value": test.p_value}],
                       caption="Challenger on the validation data (DeLong)"))
        figures["challenger_auc_diff"] = test.auc_b - test.auc_a
        figures["challenger_p_value"] = test.p_value

# %% [markdown]
# ## 7. Limitations

# %%
limits = [{"source": "model card", "limitation": card.get("limitations", "none stated")}]
limits += [{"source": "registry", "limitation": f"{k}: {v}"} for k, v in mv.status.items()
           if k in ("revalidation_required", "retrain_requested")]
limits += [{"source": "data", "limitation": f"{q['column']} is {q['missing_rate']:.1%} missing"}
           for q in quality if q["column"] in features and q["missing_rate"] > 0.05]
limits += [{"source": "sample", "limitation": f"{p['sample']}: only {p['n']} rows"}
           for p in performance if p["n"] < 500]
h.show(h.table(limits, caption="Known limitations"))

# %% [markdown]
# ## 8. Ongoing-monitoring plan
#
# The thresholds, windows and actions of the registry's policy in force at the head.

# %%
plan = reg.policy.monitoring
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
# ## 9. Sign-off
#
# The promotion requests of this version and their approvals, as recorded (and signed, where
# the approver has an enrolled key) in the audit log, with the gate evidence.

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
