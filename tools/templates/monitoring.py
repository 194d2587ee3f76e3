# %% [markdown]
# # Ongoing monitoring report
#
# Ongoing monitoring of a model in use, as SR 11-7 / OCC 2011-12 ("ongoing monitoring ...
# to confirm that the model is appropriately implemented and is being used and performing
# as intended") and ECOA / Regulation B (fair treatment of applicants) expect: the
# production traffic of one version in the period, window by window under the policy's
# rules. Volumes and outcome maturity; drift of every feature and of the score against the
# frozen baseline, per window and per day; realized performance on matured outcomes only;
# fairness by the protected attribute; every breach rated red / amber / green, the period
# rated by its worst window and never better than an alert in the audit log; the actions
# taken, with who and when. Read from the prediction and outcome tables at the Delta
# versions listed at the end, and from the audit log at the head shown below.

# %% tags=["parameters"]
from typing import Optional

registry_uri: str = None  # set by the runner
pin: Optional[dict] = None  # set by nbr.reverify: the head and table versions to re-run on
model: str = None  # the model
version: int = None  # the version whose traffic is reported
start: Optional[str] = None  # start of the period (ISO date or time, UTC; default: all logged)
end: Optional[str] = None  # end of the period, exclusive (default: all logged)
window: Optional[str] = None  # the windows rated (1d, 7d, 12h, ...; default: the policy's)
group: Optional[str] = None  # protected attribute logged with the predictions (default: policy)

# %%
from nbregistry.reports import helpers as h  # first: it keeps the report kernel's imports lean
from datetime import timedelta

import pandas as pd

from nbregistry import charts
from nbregistry.domain.errors import InvalidInputError
from nbregistry.domain.timefmt import parse_time, parse_window
from nbregistry.reports import monitoring as mr

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
    raise InvalidInputError(f"{model} v{version} logged no prediction in the period: nothing "
                            "to report (check the version, start and end)", field="version")
step = parse_window(window or plan.window, field="window")
begin = period[0] or rows["ts"].min().to_pydatetime()
stop = period[1] or rows["ts"].max().to_pydatetime() + timedelta(microseconds=1)
spans = mr.windows(begin, stop, step)
rule = mr.maturity(mon, plan.maturity_days)
pooled = mon.drift(*period, version=version)
figures, breaches, rated = {}, [], []


def label(lo, hi):
    return f"{mr.when(lo)} .. {mr.when(hi)}"


def shown(rows_, *names):
    """Display copies with p-values printed at their resolution."""
    return [{**r, **{n: h.p_text(r.get(n)) for n in names}} for r in rows_]


def in_period(event):
    window_ = event.payload.get("window")
    if event.action == "alert" and window_:
        lo, hi = parse_time(window_[0]), parse_time(window_[1])
        return (period[1] is None or lo < period[1]) and (period[0] is None or hi > period[0])
    return (period[0] is None or event.ts >= period[0]) and (period[1] is None or
                                                            event.ts < period[1])


h.show(h.table([{"model": model, "version": version, "stage": mv.stage,
                 "from": begin, "to": f"{end} (exclusive)" if end else
                 "the last prediction (included)",
                 "first prediction": rows["ts"].min(), "last prediction": rows["ts"].max(),
                 "windows rated": f"{len(spans)} of {window or plan.window} (policy window "
                                  f"{plan.window}), counted back from the end",
                 "minimum rows per window": plan.min_rows}], caption="Scope"))
h.show(h.baseline_note(pooled.baseline))

# %% [markdown]
# ## 1. Volumes and outcome maturity
#
# SR 11-7, ongoing monitoring: is the data flowing, and which outcomes can be judged yet.
# An outcome is due the policy's `maturity_days` after its prediction; only predictions that
# old are "matured", and only their outcomes feed realized performance. Outcomes that arrived
# earlier are counted but not used: early outcomes are not a random sample of the period.

# %%
daily = mr.daily_volumes(rows, rule)
h.show(h.table(daily, caption="Predictions, outcomes and maturity per day (UTC)"))
matured = rows[rows["ts"] <= rule.cutoff] if rule else rows.iloc[:0]
resolved = matured[matured["actual"].notna()]
early = int(rows["actual"].notna().sum()) - len(resolved)
figures.update(predictions=len(rows), outcomes=int(rows["actual"].notna().sum()),
               matured_predictions=len(matured), matured_outcomes=len(resolved),
               outcome_coverage=len(resolved) / len(matured) if len(matured) else None,
               early_outcomes=early)
h.show(h.note("Maturity: " + (rule.describe() if rule else "nothing logged") + f". "
              f"{len(matured):,} of {len(rows):,} predictions have matured, {len(resolved):,} "
              f"of them with an outcome; {early:,} early outcome(s) of predictions not yet "
              "matured are not used."))
if len(matured) and len(resolved) < len(matured):
    h.show(h.note(f"{len(matured) - len(resolved):,} matured prediction(s) have no outcome: "
                  "realized performance covers only those with one.", kind="warn"))
if len(rows) < plan.min_rows:
    breaches.append(mr.breach("volume", "predictions", len(rows), None, "warn",
                              threshold=plan.min_rows))

# %% [markdown]
# ## 2. Data quality and drift
#
# SR 11-7, ongoing monitoring (are the inputs still the population the model was built
# for?). Per window of the policy: the population stability index (PSI) of each feature and
# of the score against the baseline frozen from the version's reference data, the feature's
# test (Kolmogorov–Smirnov for numbers, chi-square for categories), its p-value adjusted for
# the number of features (Benjamini–Hochberg) and `drifted` (adjusted p below 0.05 AND PSI
# of at least 0.1). A window is rated only with the policy's minimum rows, and a feature
# only breaches when it drifted; it is then rated by the policy's PSI band.

# %%
psi_band = bands["psi"]
by_window = mr.drift_by_window(mon, spans, version, psi_band, plan.min_rows)
for r in by_window:
    r["window"], r["rag"] = label(r["window_start"], r["window_end"]), h.rag(r["rating"])
    rated.append(r["rating"])
    if r["rating"] in ("warn", "alert"):
        breaches.append(mr.breach("drift", r["feature"], r["psi"], psi_band, r["rating"],
                                  window=(r["window_start"], r["window_end"])))
h.show(h.table(shown(by_window, "p_value", "p_adjusted"),
               columns=["window", "feature", "n", "missing_rate", "psi", "test", "p_value",
                        "p_adjusted", "drifted", "rag"],
               caption=f"Drift per {window or plan.window} window (PSI band: warn "
                       f"{psi_band.warn:g}, alert {psi_band.alert:g})"))
worst_drift = mr.worst_by_feature(by_window)
h.show(h.chart(charts.status_bars([{**r, "status": r["rating"]} for r in worst_drift],
                                  value="psi", thresholds=[psi_band.warn, psi_band.alert])))
heat_start = begin if period[0] else begin.replace(hour=0, minute=0, second=0, microsecond=0)
daily_drift = mon.drift_windows("1d", start=heat_start, end=stop, version=version,
                                progress=False).to_pylist()
h.show(h.chart(charts.drift_heatmap([{**r, "window": f"{r['window_start']:%m-%d}"}
                                     for r in daily_drift], warn=psi_band.warn,
                                    alert=psi_band.alert)))
h.show(h.note("The heat map shows PSI per feature and UTC day (the colour is the PSI band "
              "only; significance and minimum rows rate the windows above)."))
h.show(h.table(shown(mr.drift_rows(pooled.table, psi_band, plan.min_rows), "ks_pvalue",
                     "chi2_pvalue", "p_adjusted"),
               columns=["feature", "kind", "n", "missing_rate", "psi", "ks", "ks_pvalue",
                        "chi2_pvalue", "js", "p_adjusted", "drifted"],
               caption="The whole period pooled (context: pooling dilutes a drift confined "
                       "to some windows, so the rating rests on the windows above)"))
rated_drift = [r for r in by_window if r["rating"] != "insufficient"]
figures.update(psi_max=max((r["psi"] for r in rated_drift if r["psi"] is not None),
                           default=None),
               psi_max_pooled=max((v for v in pooled.column("psi").to_pylist()
                                   if v is not None), default=None),
               features_drifted=len({r["feature"] for r in rated_drift if r["drifted"]}),
               drift_rating=mr.worst(by_window),
               missing_rate_max=max((v or 0.0) for v in pooled.column("missing_rate")
                                    .to_pylist()))

# %% [markdown]
# ## 3. Realized performance
#
# SR 11-7, outcomes analysis: the model's predictions against actual outcomes, on matured
# predictions only (the first outcome recorded per prediction), per window and over the
# matured part of the period, with DeLong's 95% interval of the AUC.

# %%
task = mon.task(version)
metric = "roc_auc" if task == "classification" else "rmse"
metric_band = bands.get(metric)
trend = mr.performance_by_window(mon, spans, rows, rule, version=version, metric=metric,
                                band=metric_band, min_rows=plan.min_rows)
for row in trend:
    row.update(window=label(row["window_start"], row["window_end"]), rag=h.rag(row["rating"]),
               auc_95ci=h.ci_text(row.get("auc_low"), row.get("auc_high")))
    if row["matured"] != "no":
        rated.append(row["rating"])
    if row["rating"] in ("warn", "alert"):
        breaches.append(mr.breach("performance", metric, row[metric], metric_band,
                                  row["rating"], window=(row["window_start"],
                                                         row["window_end"])))
if len(resolved):
    whole = mon.performance(None, start=begin, end=min(stop, rule.end),
                            version=version).to_pylist()[0]
    low, high = (mr.auc_interval(resolved["actual"], resolved["score"]) if metric == "roc_auc"
                 else None) or (None, None)
    first, last = resolved["ts"].min(), resolved["ts"].max()
    covered = f"{first.date()} .. {last.date()}"
    h.show(h.table([{k: v for k, v in whole.items() if k not in ("window_start", "window_end")}
                    | {"auc_95ci": h.ci_text(low, high)}],
                   caption=f"Matured predictions of the period: {len(resolved):,} made "
                           f"{mr.when(first)} .. {mr.when(last)} (days {covered})"))
    figures.update({metric: whole[metric], f"{metric}_low": low, f"{metric}_high": high,
                    "performance_days": covered})
else:
    h.show(h.note("No prediction in the period has matured with an outcome yet: realized "
                  "performance is not rated (" + (rule.describe() if rule else "no data")
                  + ").", kind="warn"))
    figures[metric] = None
h.show(h.table(trend, columns=["window", "predictions", "matured", "n", metric, "auc_95ci",
                               "log_loss", "brier", "note", "rag"],
               caption=f"Per {window or plan.window} window (matured predictions only"
                       + (f"; {metric} band warn {metric_band.warn:g}, alert "
                          f"{metric_band.alert:g}" if metric_band else
                          "; the policy sets no band for " + metric) + ")"))
if any(r.get(metric) is not None for r in trend):
    h.show(h.chart(charts.performance_trend(trend, metric,
                                            warn=metric_band.warn if metric_band else None,
                                            alert=metric_band.alert if metric_band else None)))

# %% [markdown]
# ## 4. Fairness
#
# ECOA / Regulation B, disparate impact: the selection rate of the favorable decision per
# group of the protected attribute, the adverse impact ratio (AIR) against the most favored
# group with Katz's 95% interval, rated by the policy's AIR band (four-fifths: an AIR below
# 0.8 fails); per window, and pooled over the period for context. Error rates (FPR, FNR)
# use matured outcomes only.

# %%
attribute = group or plan.fairness_group
if attribute and attribute in rows.columns:
    air_band = bands["air"]

    def fairness_rows(lo, hi):
        found, reference_ = mr.fairness_rows(mon, attribute, plan.fairness_favorable, lo, hi,
                                             version=version, band=air_band,
                                             min_rows=plan.min_rows)
        for r in found:
            r.update(air_95ci=h.ci_text(r["air_low"], r["air_high"]),
                     window=label(lo, hi) if lo and hi else "the period",
                     rag=h.rag(r["rating"]))
        return found, reference_

    fair, reference = fairness_rows(*period)
    errors = {}
    if len(resolved):
        errors = {r["group"]: r for r in mon.fairness(
            attribute, plan.fairness_favorable, start=begin, end=min(stop, rule.end),
            version=version).to_pylist()}
    for r in fair:
        r.update(fpr=errors.get(r["group"], {}).get("fpr"),
                 fnr=errors.get(r["group"], {}).get("fnr"))
    h.show(h.table(shown(fair, "p_value"), columns=[
        "group", "n", "favorable", "selection_rate", "air", "air_95ci", "four-fifths rule",
        "test", "p_value", "fpr", "fnr"],
        caption=f"Fairness by {attribute}, the period pooled (reference group: {reference})"))
    h.show(h.chart(charts.air_bars(fair)))
    per_window = []
    for lo, hi in spans:
        try:
            per_window += fairness_rows(lo, hi)[0]
        except InvalidInputError as exc:
            if exc.field != "where":  # only an empty window is skipped
                raise
    for r in per_window:
        rated.append(r["rating"])
        if r["rating"] in ("warn", "alert"):
            breaches.append(mr.breach("fairness", f"{attribute}={r['group']}", r["air"],
                                      air_band, r["rating"]) | {"window": r["window"]})
    h.show(h.table(per_window, columns=["window", "group", "n", "selection_rate", "air",
                                        "air_95ci", "four-fifths rule", "rag"],
                   caption=f"Fairness by {attribute} per window (AIR band: warn "
                           f"{air_band.warn:g}, alert below {air_band.alert:g})"))
    figures["air_min"] = min((r["air"] for r in fair if r["air"] is not None), default=None)
    figures["air_min_window"] = min((r["air"] for r in per_window if r["air"] is not None
                                     and r["rating"] != "insufficient"), default=None)
else:
    h.show(h.note("No protected attribute is logged with the predictions (set the policy's "
                  "monitoring.fairness_group or the group parameter): fairness is not "
                  "monitored.", kind="warn"))

# %% [markdown]
# ## 5. Rating and breaches (red / amber / green)
#
# SR 11-7, ongoing monitoring and escalation: every figure outside the policy's bands in any
# window, and every alert `check()` recorded in the audit log for this version in the period
# (each is red, and counted apart from the breaches this report measured). The period is
# rated by its worst window and never better than an alert.
# The threshold shown is the level crossed: the alert level on red rows, the warn level on
# amber ones.

# %%
alerts = [e for e in ctx.events() if e.model == model and e.action == "alert"
          and e.version == version and in_period(e)]
breaches += mr.alert_breaches(alerts)
rating = mr.period_rating(breaches, rated)
for b in breaches:
    b["rag"] = h.rag(b["status"])
h.show(h.note(mr.headline(rating, breaches), kind={"alert": "bad", "warn": "warn",
                                                    "ok": "good"}.get(rating, "warn")))
h.show(h.table(breaches, columns=["area", "item", "window", "value", "threshold", "rag",
                                  "source"], caption="Breaches"))
mine = [b for b in breaches if b["source"] == "this report"]
figures.update(rating=rating, red=sum(b["status"] == "alert" for b in mine),
               amber=sum(b["status"] == "warn" for b in mine))

# %% [markdown]
# ## 6. Actions taken
#
# SR 11-7, governance: alerts raised by `check()`, automatic and manual rollbacks,
# retraining requests and seals of the monitoring tables, from the audit log, with who and
# when.

# %%
def detail(e):
    p = e.payload
    if e.action == "alert":
        window_ = " .. ".join(mr.when(parse_time(t)) for t in p["window"])
        return (f"{p['metric']} {p.get('feature') or ''} = {p['value']:.4g} ({p['status']}) "
                f"in {window_}; action {p.get('action') or 'none'}")
    if e.action == "rollback":
        return (f"v{p['from_version']} -> v{p['to_version']} "
                f"{'(automatic) ' if p.get('automatic') else ''}{p['reason']}")
    if e.action == "retrain_requested":
        return p.get("reason", "")
    return ", ".join(p["tables"])


kinds = ("alert", "rollback", "retrain_requested", "seal")
actions = [e for e in ctx.events() if e.model == model and e.action in kinds and in_period(e)]
h.show(h.table([{"seq": e.seq, "at": e.ts, "by": e.actor, "action": e.action,
                 "version": e.version, "detail": detail(e)} for e in actions],
               caption="Actions in the audit log"))
figures.update(alerts=len(alerts), rollbacks=sum(e.action == "rollback" for e in actions),
               retrain_requests=sum(e.action == "retrain_requested" for e in actions))

# %% [markdown]
# ## Key figures

# %%
h.record_figures(figures)

# %%
h.close(ctx)
