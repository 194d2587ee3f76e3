# %% [markdown]
# # Fair lending report
#
# Disparate-impact testing of the model's credit decisions: the adverse impact ratio (AIR)
# of each group with the four-fifths rule, its statistical significance and the shortfall
# (how many more favorable decisions the group would need for its AIR to reach 0.8); the
# standardized mean difference of continuous outcomes (price, line); the disparity that
# remains when the credit factors are held fixed (a regression's marginal effect); and
# error-rate parity. Group membership is either a recorded attribute or, where it is not
# collected (as for race and ethnicity in non-mortgage credit), the probabilities of a proxy
# method such as BISG, used as weights; the method is disclosed below.

# %% tags=["parameters"]
from typing import Optional

registry_uri: str = None  # set by the runner
pin: Optional[dict] = None  # set by nbr.reverify: the head and table versions to re-run on
model: str = None  # the model
version: int = None  # the version whose decisions are tested
data: Optional[str] = None  # a Delta table of applications (default: the logged production traffic)
start: Optional[str] = None  # period start for logged traffic (ISO, UTC)
end: Optional[str] = None  # period end, exclusive
group: str = "sex"  # the protected attribute column
favorable: int = 0  # the favorable decision (0: predicted not to default, i.e. approved)
decision: str = "label"  # the decision column (scored with the model when absent)
actual: Optional[str] = "actual"  # the observed outcome column, coded like the decision
continuous: list = []  # continuous outcomes to compare (e.g. ["price", "line"])
controls: Optional[list] = None  # the credit factors held fixed (default: the model's features)
proxy: Optional[dict] = None  # {group: probability column} from a proxy method, instead of group
proxy_method: str = ""  # the proxy method, disclosed (e.g. "BISG (surname and geography)")
reference: Optional[str] = None  # the reference group (default: the most favored)

# %%
from nbregistry.reports import helpers as h  # first: it keeps the report kernel's imports lean
import numpy as np

from nbregistry import charts
from nbregistry.domain.timefmt import parse_time
from nbregistry.reports import fair_lending as fl
from nbregistry.reports import validation as val

ctx = h.open_report(registry_uri, pin, title=f"Fair lending: {model} v{version}")
reg = ctx.registry
mv = reg.get(model, version)
features = [f["name"] for f in mv.features]
if data is not None:
    frame = ctx.read_table(data).to_pandas()
    source = f"Delta table {data}"
else:
    period = (parse_time(start, field="start") if start else None,
              parse_time(end, field="end") if end else None)
    frame = ctx.monitor(model).rows(*period, version=version).to_pandas()
    source = f"logged production traffic of v{version}"
if frame.empty:
    raise ValueError(f"no rows to test in the {source}")
if decision not in frame.columns:
    fitted = reg.load(model, version)
    frame[decision] = (val.positive_scores(fitted, frame[features]) >= 0.5).astype(int)
    source += f" (decisions scored with v{version} at 0.5)"
factors = list(controls) if controls is not None else features
favored = (frame[decision] == favorable).astype(float).to_numpy()
if proxy:
    member = fl.probabilities({g: frame[c] for g, c in proxy.items()})
    method = f"proxy probabilities as weights: {proxy_method or 'method not stated'}"
else:
    member = fl.membership(frame[group])
    method = f"recorded attribute {group!r}"
figures = {}
h.show(h.table([{"data": source, "rows": len(frame), "membership": method,
                 "favorable decision": f"{decision} == {favorable}",
                 "credit factors": ", ".join(factors)}], caption="Scope and method"))

# %% [markdown]
# ## 1. Adverse impact ratio
#
# Selection rate of the favorable decision per group over the reference group's (the most
# favored unless named). A ratio below 0.8 fails the four-fifths rule; the p-value is the
# two-sided pooled z-test (Fisher's exact test for small counts with recorded membership).

# %%
impact = fl.adverse_impact(favored, member, reference=reference)
ref_group = next(r["group"] for r in impact if r["reference"])
h.show(h.table(impact, caption="Adverse impact"))
h.show(h.chart(charts.air_bars(impact)))
figures["air_min"] = min(r["air"] for r in impact if r["air"] is not None)
figures["four_fifths_failures"] = sum(r["four_fifths"] for r in impact)
figures["shortfall"] = sum(r["shortfall"] for r in impact)
for r in impact:
    if not r["reference"]:
        figures[f"air_{r['group']}"] = r["air"]
        figures[f"p_value_{r['group']}"] = r["p_value"]

# %% [markdown]
# ## 2. Continuous outcomes
#
# Standardized mean difference (the difference of means over the pooled standard
# deviation; |SMD| of 0.2 is conventionally small, 0.5 medium) with Welch's t-test.

# %%
for column in continuous:
    rows = fl.standardized_mean_difference(frame[column], member, reference=ref_group)
    h.show(h.table(rows, caption=f"{column}: standardized mean difference"))
    for r in rows:
        if not r["reference"]:
            figures[f"smd_{column}_{r['group']}"] = r["smd"]
if not continuous:
    h.show(h.note("No continuous outcome (price, line) was named for this review."))

# %% [markdown]
# ## 3. Disparity with credit factors held fixed
#
# Least-squares regression of the favorable decision on group membership and the credit
# factors (a linear probability model, HC1 robust standard errors): the coefficient is the
# difference in the probability of a favorable decision at equal credit factors.

# %%
effects = fl.marginal_effect(favored, member, frame[factors].to_numpy(dtype=float),
                             reference=ref_group, names=factors)
h.show(h.table(effects, caption="Marginal effect of group membership"))
for r in effects:
    figures[f"marginal_effect_{r['group']}"] = r["effect"]

# %% [markdown]
# ## 4. Error-rate parity
#
# Among applicants whose outcome is known: the false-positive rate (favorable decision, bad
# outcome) and the false-negative rate (unfavorable decision, good outcome) per group.

# %%
if actual and actual in frame.columns and frame[actual].notna().any():
    good = np.where(frame[actual].isna(), np.nan, (frame[actual] == favorable).astype(float))
    errors = fl.error_rates(favored, good, member, reference=ref_group)
    h.show(h.table(errors, caption="Error rates"))
    gaps = [abs(r[k]) for r in errors for k in ("fpr_gap", "fnr_gap") if r[k] is not None]
    figures["error_rate_gap_max"] = max(gaps, default=None)
else:
    h.show(h.note("No observed outcomes: error-rate parity cannot be tested yet.", kind="warn"))

# %% [markdown]
# ## Key figures

# %%
h.record_figures(figures)

# %%
h.close(ctx)
