# %% [markdown]
# # Ongoing monitoring report
#
# The model's production traffic in the period: volumes and outcome maturity, data quality,
# drift of every feature and of the score (PSI against the frozen baseline), realized
# performance once outcomes matured, fairness where a protected attribute is logged, every
# breach rated red / amber / green against the policy's thresholds, and the actions taken
# (alerts, automatic rollbacks, retraining requests) with who and when. Read from the
# prediction and outcome tables at the Delta versions listed at the end.

# %% tags=["parameters"]
from typing import Optional

registry_uri: str = None  # set by the runner
pin: Optional[dict] = None  # set by nbr.reverify: the head and table versions to re-run on
model: str = None  # the model
version: int = None  # the version whose traffic is reported
start: Optional[str] = None  # start of the period (ISO date or time, UTC; default: all logged)
end: Optional[str] = None  # end of the period, exclusive (default: all logged)
window: str = "1d"  # the windows of the performance trend (1d, 7d, 12h, ...)
group: Optional[str] = None  # protected attribute logged with the predictions (default: policy)

# %%
from nbregistry.reports import helpers as h  # first: it keeps the report kernel's imports lean
import pandas as pd

from nbregistry import charts
from nbregistry.domain.timefmt import parse_time

ctx = h.open_report(registry_uri, pin, title=f"Ongoing monitoring: {model} v{version}")
reg = ctx.registry
mv = reg.get(model, version)
plan = reg.policy.monitoring
bands = plan.thresholds
period = (parse_time(start, field="start") if start else None,
          parse_time(end, field="end") if end else None)
mon = ctx.monitor(model)
rows = mon.rows(*period, version=version).to_pandas() if mon.has_predictions() else pd.DataFrame()
if rows.empty:
    raise ValueError(f"{model} v{version} logged no prediction in the period: nothing to report")
figures = {}
breaches = []
h.show(h.table([{"model": model, "version": version, "stage": mv.stage,
                 "from": period[0] or rows["ts"].min(), "to (exclusive)": period[1] or "—",
                 "first prediction": rows["ts"].min(), "last prediction": rows["ts"].max()}],
               caption="Scope"))

# %% [markdown]
# ## 1. Volumes and outcome maturity

# %%
daily = rows.assign(day=rows["ts"].dt.date).groupby("day").agg(
    predictions=("prediction_id", "size"), outcomes=("actual", "count")).reset_index()
h.show(h.table(daily, caption="Predictions and matured outcomes per day"))
figures.update(predictions=len(rows), outcomes=int(rows["actual"].notna().sum()))
figures["outcome_coverage"] = figures["outcomes"] / figures["predictions"]
if len(rows) < plan.min_rows:
    breaches.append({"area": "volume", "item": "predictions", "value": len(rows),
                     "threshold": plan.min_rows, "status": "warn"})

# %% [markdown]
# ## 2. Data quality and drift
#
# Missing values per feature, and the population stability index (PSI), Kolmogorov–Smirnov
# and Jensen–Shannon distances of each feature and of the score against the baseline frozen
# from the version's reference data.

# %%
drift = mon.drift(*period, version=version).to_pylist()
psi_band = bands["psi"]
for row in drift:
    row["rag"] = h.rag(psi_band.status(row["psi"]))
    status = psi_band.status(row["psi"])
    if status in ("warn", "alert"):
        breaches.append({"area": "drift", "item": row["feature"], "value": row["psi"],
                         "threshold": psi_band.warn if status == "warn" else psi_band.alert,
                         "status": status})
h.show(h.table(drift, columns=["feature", "n", "missing_rate", "psi", "ks", "ks_pvalue", "js",
                               "drifted", "rag"], caption="Drift against the baseline"))
h.show(h.chart(charts.status_bars([{**r, "status": psi_band.status(r["psi"])} for r in drift],
                                  value="psi", thresholds=[psi_band.warn, psi_band.alert])))
figures["psi_max"] = max((r["psi"] for r in drift if r["psi"] is not None), default=None)
figures["features_drifted"] = sum(1 for r in drift if r["drifted"])
figures["missing_rate_max"] = max((r["missing_rate"] or 0.0) for r in drift)

# %% [markdown]
# ## 3. Realized performance
#
# Over predictions whose outcome has been recorded (the first outcome per prediction).

# %%
if figures["outcomes"]:
    overall = mon.performance(None, start=period[0], end=period[1], version=version).to_pylist()[0]
    trend = mon.performance(window, start=period[0], end=period[1], version=version).to_pylist()
    metric = "roc_auc" if "roc_auc" in overall else "rmse"
    h.show(h.table([overall], columns=[c for c in overall if c not in ("window_start",
                                                                     "window_end")],
                   caption="Whole period"))
    h.show(h.table(trend, caption=f"Per {window} window"))
    h.show(h.chart(charts.metric_over_time(trend, metric=metric)))
    figures[metric] = overall[metric]
    band = bands.get(metric)
    if band is not None and band.status(overall[metric]) in ("warn", "alert"):
        breaches.append({"area": "performance", "item": metric, "value": overall[metric],
                         "threshold": band.warn, "status": band.status(overall[metric])})
else:
    h.show(h.note("No outcome has matured yet: realized performance is not available.",
                  kind="warn"))

# %% [markdown]
# ## 4. Fairness
#
# Selection rate of the favorable decision per group of the protected attribute, with the
# adverse impact ratio against the most favored group and the four-fifths rule.

# %%
attribute = group or plan.fairness_group
if attribute and attribute in rows.columns:
    fair = mon.fairness(attribute, plan.fairness_favorable, start=period[0], end=period[1],
                        version=version).to_pylist()
    air_band = bands["air"]
    for row in fair:
        row["rag"] = h.rag(air_band.status(row["air"]))
        if air_band.status(row["air"]) in ("warn", "alert"):
            breaches.append({"area": "fairness", "item": f"{attribute}={row['group']}",
                             "value": row["air"], "threshold": air_band.warn,
                             "status": air_band.status(row["air"])})
    h.show(h.table(fair, caption=f"Fairness by {attribute}"))
    h.show(h.chart(charts.air_bars(fair)))
    figures["air_min"] = min((r["air"] for r in fair if r["air"] is not None), default=None)
else:
    h.show(h.note("No protected attribute is logged with the predictions (set the policy's "
                  "monitoring.fairness_group or the group parameter)."))

# %% [markdown]
# ## 5. Breaches (red / amber / green)

# %%
for b in breaches:
    b["rag"] = h.rag(b["status"])
red = sum(1 for b in breaches if b["status"] == "alert")
amber = sum(1 for b in breaches if b["status"] == "warn")
h.show(h.note(f"{red} red, {amber} amber." if breaches else "All green: no breach.",
              kind="bad" if red else "warn" if amber else "good"))
h.show(h.table(breaches, columns=["area", "item", "value", "threshold", "rag"],
               caption="Breaches"))
figures.update(red=red, amber=amber)

# %% [markdown]
# ## 6. Actions taken
#
# Alerts raised by `check()`, automatic and manual rollbacks, retraining requests and seals
# of the monitoring tables, from the audit log.

# %%
def in_period(event):
    window_ = event.payload.get("window")
    if event.action == "alert" and window_:
        lo, hi = parse_time(window_[0]), parse_time(window_[1])
        return (period[1] is None or lo < period[1]) and (period[0] is None or hi > period[0])
    return (period[0] is None or event.ts >= period[0]) and (period[1] is None or
                                                            event.ts < period[1])


kinds = ("alert", "rollback", "retrain_requested", "seal")
actions = [e for e in ctx.events() if e.model == model and e.action in kinds and in_period(e)]
h.show(h.table([{"seq": e.seq, "at": e.ts, "by": e.actor, "action": e.action,
                 "version": e.version,
                 "detail": (f"{e.payload['metric']} {e.payload.get('feature') or ''} = "
                            f"{e.payload['value']:.4g} ({e.payload['status']}); action "
                            f"{e.payload.get('action') or 'none'}" if e.action == "alert" else
                            f"v{e.payload['from_version']} -> v{e.payload['to_version']} "
                            f"{'(automatic) ' if e.payload.get('automatic') else ''}"
                            f"{e.payload['reason']}" if e.action == "rollback" else
                            e.payload.get("reason", "") if e.action == "retrain_requested"
                            else ", ".join(e.payload["tables"]))}
                for e in actions], caption="Actions in the audit log"))
figures.update(alerts=sum(e.action == "alert" for e in actions),
               rollbacks=sum(e.action == "rollback" for e in actions),
               retrain_requests=sum(e.action == "retrain_requested" for e in actions))

# %% [markdown]
# ## Key figures

# %%
h.record_figures(figures)

# %%
h.close(ctx)
