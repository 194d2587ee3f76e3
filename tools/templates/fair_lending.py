# %% [markdown]
# # Fair lending report
#
# Disparate-impact testing of the model's credit decisions under the Equal Credit
# Opportunity Act and Regulation B (12 CFR 1002; the Fair Housing Act for mortgages): for
# every prohibited basis the data lets us test, the adverse impact ratio (AIR) of each group
# against the basis's control group, with the four-fifths rule, its statistical significance
# and the shortfall; the standardized mean difference of continuous outcomes (price, line);
# the disparity that remains when the credit factors are held fixed (a regression's
# marginal effect); error-rate parity; and the documented search for a less discriminatory
# alternative that the disparate-impact burden-shifting framework asks about. Group
# membership is a recorded attribute or, where it is not collected (as for race and
# ethnicity outside mortgage lending), the probabilities of a proxy method such as BISG,
# used as weights; the method and its bias are disclosed next to every figure it feeds.

# %% tags=["parameters"]
from typing import Optional

registry_uri: str = None  # set by the runner
pin: Optional[dict] = None  # set by the runner: who runs it; for nbr.reverify, what to re-run on
model: str = None  # the model
version: int = None  # the version whose decisions are tested
data: Optional[str] = None  # a Delta table of applications (default: the logged production traffic)
start: Optional[str] = None  # period start for logged traffic (ISO, UTC)
end: Optional[str] = None  # period end, exclusive
group: str = "sex"  # the recorded protected attribute column (the basis of the same name)
bases: Optional[dict] = None  # {basis: column} of recorded attributes (default: {group: group})
favorable: int = 0  # the favorable decision (0: predicted not to default, i.e. approved)
decision: str = "label"  # the decision column (scored with the model when absent)
actual: Optional[str] = "actual"  # the observed outcome column, coded like the decision
continuous: list = []  # continuous outcomes to compare (e.g. ["price", "line"])
controls: Optional[list] = None  # the credit factors held fixed (default: the model's features)
proxy: Optional[dict] = None  # {group: probability column} from a proxy method, for proxy_basis
proxy_basis: str = "race"  # the basis the proxy estimates
proxy_method: str = ""  # the proxy method, disclosed (e.g. "BISG (surname and geography)")
control: Optional[dict] = None  # {basis: control group} (default: the policy's [fair_lending] control)
target: str = "default"  # the training table's outcome column (the alternatives are refitted on it)
auc_tolerance: float = 0.01  # the AUC an alternative may lose and still be preferred
bad_rate_tolerance: float = 0.01  # the bad rate among the approved it may add

# %%
from nbregistry.reports import helpers as h  # first: it keeps the report kernel's imports lean
import numpy as np

from nbregistry import NbRegistryError, charts
from nbregistry.domain.report_policy import PROHIBITED_BASES
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
try:
    fitted = reg.load(model, version)
    score = val.positive_scores(fitted, frame[features])
except NbRegistryError as refused:  # e.g. a pickle nobody trusted: no scores, no alternatives
    fitted, score = None, None
    h.show(h.note(f"v{version} could not be loaded here ({refused}): the decisions are the "
                  "recorded ones and no alternative can be scored.", kind="warn"))
if decision not in frame.columns:
    if score is None:
        raise ValueError(f"no {decision!r} column and the model could not be loaded")
    frame[decision] = (score >= 0.5).astype(int)
    source += f" (decisions scored with v{version} at 0.5)"
factors = list(controls) if controls is not None else features
favored = (frame[decision] == favorable).astype(float).to_numpy()
control_of = {**reg.policy.fair_lending.control, **(control or {})}
recorded = dict(bases) if bases is not None else {group: group}
tested, absent = {}, {}
for basis, column in recorded.items():
    if column not in frame.columns:
        absent[basis] = column
        continue
    cut = control_of.get(basis, "")
    member = (fl.age_groups(frame[column], cut) if basis == "age" and cut.startswith("<")
              else fl.membership(frame[column]))
    tested[basis] = {"member": member, "how": f"recorded attribute {column!r}", "proxied": False}
if proxy:
    tested[proxy_basis] = {"member": fl.probabilities({g: frame[c] for g, c in proxy.items()}),
                           "how": f"proxy probabilities as weights: "
                                  f"{proxy_method or 'method not stated'}", "proxied": True}
if not tested:
    raise ValueError(f"no basis can be tested: none of the columns {recorded} is in the "
                     f"{source}, and no proxy was given")
for basis, found in tested.items():
    if basis not in control_of:
        raise ValueError(f"no control group for the basis {basis!r}: pass control={{"
                         f"{basis!r}: ...}} or set [fair_lending] control in the policy")
    found["control"] = control_of[basis]
figures = {}
h.show(h.table([{"data": source, "rows": len(frame), "favorable decision":
                 f"{decision} == {favorable}", "credit factors": ", ".join(factors)}],
               caption="Scope and method"))

# %% [markdown]
# ## Prohibited bases tested
#
# *ECOA / Reg B, 12 CFR 1002.2(z) and 1002.4(a).* Each prohibited basis, whether it was
# tested, how group membership is known, and the control group every other group is
# compared with (the policy's `[fair_lending] control`, or the `control` parameter). A
# basis not tested is listed with the reason: an examiner asks about those too.

# %%
WHY_NOT = {  # what usually keeps a basis out of the data of a non-mortgage credit model
    **dict.fromkeys(("race", "color", "national_origin", "sex", "religion"),
                    "no data: not collected (Reg B 1002.5(b) forbids asking outside the "
                    "mortgage-monitoring exception) and no proxy was given (proxy=..., e.g. "
                    "BISG for race and national origin)"),
    "marital_status": "no data: not in the data (Reg B 1002.5(d) limits asking about it)",
    "age": "no data: no applicant age in the data",
    "public_assistance": "no data: the source of income is not in the data"}
rows = []
for basis in [*PROHIBITED_BASES, *(b for b in tested if b not in PROHIBITED_BASES)]:
    if basis in tested:
        rows.append({"basis": basis, "tested": True, "membership": tested[basis]["how"],
                     "control group": tested[basis]["control"], "why not": ""})
        continue
    why = (f"no data: the column {absent[basis]!r} is not in the {source}" if basis in absent
           else WHY_NOT.get(basis, "no data and no proxy"))
    rows.append({"basis": basis, "tested": False, "membership": "—",
                 "control group": control_of.get(basis), "why not": why})
h.show(h.table(rows, caption="Bases"))
figures["bases_tested"] = sorted(tested)
figures["bases_not_tested"] = [r["basis"] for r in rows if not r["tested"]]

# %% [markdown]
# ## 1. Adverse impact ratio against the control group
#
# *ECOA / Reg B disparate impact; the EEOC's four-fifths rule as the screen.* Selection
# rate of the favorable decision per group over the control group's. A ratio below 0.8
# fails the four-fifths rule ("FAIL"; "pass" means it does not fail); the p-value is the
# two-sided pooled z-test (Fisher's exact test for small counts with recorded membership).
# With proxied membership `n` and `favorable` are sums of probabilities, and the test
# ("z, weighted") takes the variance of the weighted difference itself: each applicant
# counts in several groups, so the sums of weights are not independent samples and must not
# be tested as if they were. The shortfall is how many more favorable decisions the group
# needs for its AIR to reach 0.8.

# %%
COLUMNS = ["group", "n", "favorable", "selection_rate", "air", "four_fifths_rule", "test",
           "p_value", "shortfall"]
impacts = {}
for basis, found in tested.items():
    impact = impacts[basis] = fl.adverse_impact(favored, found["member"],
                                                reference=found["control"])
    h.show(h.table(impact, columns=COLUMNS, caption=f"{basis} ({found['how']}): AIR against "
                                                    f"the control group {found['control']}"))
    h.show(h.chart(charts.air_bars(impact)))
    if found["proxied"]:
        fixed = fl.corrected_rates(favored, found["member"])
        ref = next(r["group"] for r in impact if r["reference"])
        h.show(h.table([{"group": r["group"], "AIR, proxy-weighted": r["air"],
                         "AIR, corrected for misclassification": fixed[r["group"]] / fixed[ref]
                         if fixed[ref] else None} for r in impact],
                       caption=f"{basis}: the proxy's bias"))
        h.show(h.note("Proxy-weighted AIRs are pulled towards 1: each weighted count mixes in "
                      "members of the other groups (in nbregistry's simulation with calibrated "
                      "probabilities, a true AIR of 0.744 shows as 0.878, and as 0.749 "
                      "corrected). The corrected column undoes that mixing "
                      "under two assumptions: the probabilities are calibrated, and decisions "
                      "depend on the proxy's inputs (surname, geography) only through the "
                      "group. Read a weighted AIR near 0.8 as a likely failure.", kind="warn"))
    for r in impact:
        if not r["reference"]:
            figures[f"air_{basis}_{r['group']}"] = r["air"]
            figures[f"p_value_{basis}_{r['group']}"] = r["p_value"]
every = [r for rows in impacts.values() for r in rows if not r["reference"]]
figures["air_min"] = min((r["air"] for r in every if r["air"] is not None), default=None)
figures["four_fifths_failures"] = sum(r["four_fifths"] for r in every)
figures["shortfall"] = sum(r["shortfall"] for r in every)

# %% [markdown]
# ## 2. Continuous outcomes
#
# *ECOA / Reg B: pricing and terms, not only approval.* Standardized mean difference of each
# group against the control group (the difference of means over the pooled standard
# deviation; |SMD| of 0.2 is conventionally small, 0.5 medium) with Welch's t-test.

# %%
for column in continuous:
    for basis, found in tested.items():
        rows = fl.standardized_mean_difference(frame[column], found["member"],
                                               reference=found["control"])
        h.show(h.table(rows, caption=f"{column} by {basis}: standardized mean difference"))
        for r in rows:
            if not r["reference"]:
                figures[f"smd_{column}_{basis}_{r['group']}"] = r["smd"]
if not continuous:
    h.show(h.note("No continuous outcome (price, line) was named for this review."))

# %% [markdown]
# ## 3. Disparity with credit factors held fixed
#
# *Disparate treatment screen.* Least-squares regression of the favorable decision on group
# membership (the control group left out) and the credit factors (a linear probability
# model, HC1 robust standard errors): the coefficient is the difference in the probability
# of a favorable decision against the control group at equal credit factors. Rows with no
# group (a missing attribute) are left out, not counted as the control group.

# %%
for basis, found in tested.items():
    effects = fl.marginal_effect(favored, found["member"],
                                 frame[factors].to_numpy(dtype=float),
                                 reference=found["control"], names=factors)
    h.show(h.table(effects, caption=f"{basis}: marginal effect of group membership"))
    dropped = effects[0]["rows_without_group"] if effects else 0
    h.show(h.note(f"{dropped} row(s) with no {basis} were left out of the regression."
                  if dropped else f"Every row has a {basis}: none was left out."))
    for r in effects:
        figures[f"marginal_effect_{basis}_{r['group']}"] = r["effect"]

# %% [markdown]
# ## 4. Error-rate parity
#
# *Model risk (SR 11-7) and fair lending: who bears the model's errors.* Among applicants
# whose outcome is known: the false-positive rate (favorable decision, bad outcome) and the
# false-negative rate (unfavorable decision, good outcome) per group, and the gap to the
# control group.

# %%
outcomes = (actual and actual in frame.columns and frame[actual].notna().any())
if outcomes:
    good = np.where(frame[actual].isna(), np.nan, (frame[actual] == favorable).astype(float))
    gaps = []
    for basis, found in tested.items():
        errors = fl.error_rates(favored, good, found["member"], reference=found["control"])
        h.show(h.table(errors, caption=f"{basis}: error rates"))
        gaps += [abs(r[k]) for r in errors for k in ("fpr_gap", "fnr_gap") if r[k] is not None]
    figures["error_rate_gap_max"] = max(gaps, default=None)
else:
    h.show(h.note("No observed outcomes: error-rate parity cannot be tested yet.", kind="warn"))

# %% [markdown]
# ## 5. Search for a less discriminatory alternative
#
# *Disparate impact, burden-shifting (ECOA / Reg B, Official Interpretations 1002.6(a)):
# was there a less discriminatory alternative serving the same business need?* The model
# as reviewed against a documented set of alternatives, decided on the same applicants:
# one threshold for everyone, moved either way, and the model refitted on its training data
# without each of the features that differ most between the groups. Side by side: the
# lowest AIR against the control group, the AUC on the applicants whose outcome is known
# and its cost, the approval rate and the bad rate among the approved.

# %%
from sklearn.base import clone

basis = next(iter(tested))
found = tested[basis]
candidates = [{"alternative": "model as reviewed", "how": f"v{version}, threshold 0.5",
               "score": score, "threshold": 0.5}]
candidates += [{"alternative": f"threshold {t:g}", "how": f"v{version}, one threshold {t:g} "
                "for every applicant", "score": score, "threshold": t}
               for t in (0.4, 0.45, 0.55, 0.6)]
lineage = mv.lineage.get("training_data") or {}
notes = []
if score is None:
    candidates = [{**candidates[0], "score": np.where(favored == 1, favorable, 1 - favorable)}]
    notes.append("The model could not be loaded: no alternative could be scored.")
elif not lineage.get("uri"):
    notes.append("No training table in the version's lineage: the refitted alternatives "
                 "could not be built.")
else:
    train = ctx.read_table(lineage["uri"], lineage.get("version")).to_pandas()
    if "split" in train.columns and (train["split"] == "train").any():
        train = train[train["split"] == "train"]
    for name in fl.features_by_disparity(frame, features, found["member"], found["control"])[:3]:
        kept = [f for f in features if f != name]
        try:
            refit = clone(fitted).fit(train[kept], train[target])
        except (TypeError, ValueError, KeyError) as exc:
            notes.append(f"Refitting without {name} failed: {exc}")
            continue
        candidates.append({"alternative": f"without {name}", "how": f"refitted on the "
                           f"training table without {name}", "threshold": 0.5,
                           "score": val.positive_scores(refit, frame[kept])})
outcome = (frame[actual].to_numpy(dtype=float) if outcomes else np.full(len(frame), np.nan))
compared, why = fl.compare_alternatives(
    candidates, favorable=favorable, actual=outcome, member=found["member"],
    control=found["control"], auc_tolerance=auc_tolerance,
    bad_rate_tolerance=bad_rate_tolerance)
h.show(h.table(compared, columns=[
    "alternative", "how", "air_min", "auc", "auc_cost", "approval_rate", "bad_rate",
    "bad_rate_change", "chosen"], caption=f"Alternatives, by {basis} against {found['control']}"))
for text in notes:
    h.show(h.note(text, kind="warn"))
h.show(h.note(f"Chosen: {why}.", kind="info"))
chosen = next(r for r in compared if r["chosen"])
figures["lda_alternatives"] = len(compared) - 1
figures["lda_chosen"] = chosen["alternative"]
figures["lda_air_min_chosen"] = chosen["air_min"]

# %% [markdown]
# ## Key figures

# %%
h.record_figures(figures)

# %%
h.close(ctx)
