"""Fair-lending statistics, pure numpy (and scipy for Fisher's exact test).

Group membership is a matrix of probabilities, one column per group: a known attribute is
its one-hot encoding, a proxy (BISG: Bayesian Improved Surname Geocoding, or any other) is
the estimated probabilities. Counts are then sums of probabilities ("weighted counts"), the
method the CFPB describes for proxied groups; with one-hot membership every number is the
ordinary one and equals ``Monitor.fairness`` and fairlearn.

- ``adverse_impact``: selection rate, adverse impact ratio (AIR) against the control group
  (the report passes the policy's; default here: the highest rate), the four-fifths rule, a
  two-sided test (pooled z-test, Fisher's exact when an expected count is below 5 and
  membership is known; on proxied membership a z-test on the variance of the weighted
  difference itself, ``contrast_p_value``: an applicant counts in several groups, so the
  sums of weights are not independent samples), and the shortfall: how many more
  favorable outcomes the group needs for its AIR to reach 0.8.
- ``corrected_rates``: proxy-weighted rates are pulled towards each other (a weighted count
  mixes in members of the other groups); with calibrated probabilities, and decisions that
  depend on the proxy's inputs only through the group, the expected weighted rates are
  ``M @ true`` with ``M[g, h] = sum p_g p_h / sum p_g``: solving gives corrected rates.
- ``standardized_mean_difference``: for continuous outcomes (price, line), each group's
  mean minus the reference's over the pooled standard deviation, with Welch's t-test (the
  weighted contrast's z-test on proxied membership).
- ``marginal_effect``: the group coefficient of a least-squares regression of the outcome
  on group membership and the credit factors (a linear probability model for a decision):
  the disparity that remains with the credit factors held fixed, with HC1 robust errors.
  Rows that belong to no group (a missing attribute) are left out and counted.
- ``error_rates``: false-positive and false-negative rates per group and their gaps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..monitoring.fairness import FOUR_FIFTHS
from ..monitoring.significance import two_proportions


def membership(groups: Sequence[Any] | np.ndarray) -> dict[Any, np.ndarray]:
    """One-hot membership of a known attribute: ``{group: 0/1 array}`` in sorted order
    (missing values left out of every group)."""
    values = np.asarray(groups, dtype=object)
    present = [v for v in values if v is not None and v == v]
    return {g: (values == g).astype(float) for g in sorted(set(present), key=str)}


def probabilities(columns: Mapping[Any, Any]) -> dict[Any, np.ndarray]:
    """Proxy membership from probability columns (``{"F": p_female, ...}``), checked to be
    in [0, 1] and to sum to at most 1 per row (missing counts as 0)."""
    out = {g: np.nan_to_num(np.asarray(p, dtype=float)) for g, p in columns.items()}
    stacked = np.vstack(list(out.values()))
    if stacked.min() < 0 or stacked.max() > 1 or (stacked.sum(axis=0) > 1 + 1e-6).any():
        raise ValueError("group probabilities must lie in [0, 1] and sum to at most 1 a row")
    return out


def age_groups(values: Any, control: str) -> dict[str, np.ndarray]:
    """Membership by age for a control such as ``"<62"``: ``{"<62": ..., "62+": ...}``
    (a missing age is in neither group)."""
    limit = float(control.lstrip("<"))
    age = np.asarray(values, dtype=float)
    known = ~np.isnan(age)
    return {control: (known & (age < limit)).astype(float),
            f"{limit:g}+": (known & (age >= limit)).astype(float)}


def _proxied(member: Mapping[Any, np.ndarray]) -> bool:
    return any(((m > 0) & (m < 1)).any() for m in member.values())


def contrast_p_value(values: np.ndarray, w1: np.ndarray, w0: np.ndarray,
                     variance: float) -> float | None:
    """Two-sided p-value of the difference of two weighted means of ``values`` when an
    applicant may count in both groups (proxy probabilities as weights): the difference is
    sum(d_i x_i) with d_i = w1_i / sum(w1) - w0_i / sum(w0), whose variance under "no
    difference" is ``variance`` * sum(d_i^2). With 0/1 membership this is the pooled
    two-sample z-test; treating each sum of weights as an independent sample would not be
    (an applicant's weight in one group is missing from the other)."""
    d = w1 / w1.sum() - w0 / w0.sum()
    spread = math.sqrt(variance * float((d ** 2).sum()))
    if spread == 0:
        return None
    return math.erfc(abs(float(d @ values)) / spread / math.sqrt(2))


def _reference(rates: Mapping[Any, float], reference: Any) -> Any:
    if reference is not None:
        for g in rates:
            if g == reference or str(g) == str(reference):
                return g
        raise ValueError(f"the control group {reference!r} is not among the groups "
                         f"{list(rates)}: name the control group of this basis (control="
                         "{basis: group}, or [fair_lending] control in the policy)")
    best = max(rates.values())
    return next(g for g, r in rates.items() if r == best)


def adverse_impact(favorable: Any, member: Mapping[Any, np.ndarray], *,
                   reference: Any = None) -> list[dict[str, Any]]:
    """One row per group: n, favorable, selection_rate, air, four_fifths (true when the
    group FAILS the rule), four_fifths_rule (pass / FAIL / control), test, p_value,
    shortfall (weighted counts when membership is a probability)."""
    fav = np.asarray(favorable, dtype=float)
    proxied = _proxied(member)
    counts = {g: (float(m.sum()), float((m * fav).sum()))
              for g, m in member.items() if m.sum() > 0}
    rates = {g: f / n for g, (n, f) in counts.items()}
    ref = _reference(rates, reference)
    rows = []
    n0, f0 = counts[ref]
    for g, (n, f) in counts.items():
        air = (f * n0) / (n * f0) if f0 else None  # one division: 64/80 is exactly 0.8
        test: str | None
        if g == ref:
            test, p = None, None
        elif proxied:
            pooled = (f + f0) / (n + n0)
            test, p = "z, weighted", contrast_p_value(fav, member[g], member[ref],
                                                      pooled * (1 - pooled))
        else:
            test, p = two_proportions(f, n, f0, n0)
        needed = FOUR_FIFTHS * rates[ref] * n - f if air is not None else 0.0
        fails = air is not None and air < FOUR_FIFTHS
        rows.append({"group": g, "n": n, "favorable": f,
                     "selection_rate": rates[g], "air": air, "four_fifths": fails,
                     "four_fifths_rule": "control" if g == ref else
                     "FAIL (AIR < 0.8)" if fails else "pass" if air is not None else "—",
                     "test": test, "p_value": p, "reference": g == ref,
                     "shortfall": max(0, math.ceil(needed - 1e-9))})
    return rows


def corrected_rates(favorable: Any, member: Mapping[Any, np.ndarray]) -> dict[Any, float]:
    """Selection rates corrected for the proxy's misclassification (see the module notes);
    equal to the weighted rates when membership is known."""
    fav = np.asarray(favorable, dtype=float)
    groups = [g for g, m in member.items() if m.sum() > 0]
    weights = np.vstack([member[g] for g in groups])
    mixing = (weights @ weights.T) / weights.sum(axis=1, keepdims=True)
    observed = (weights @ fav) / weights.sum(axis=1)
    true = np.linalg.solve(mixing / mixing.sum(axis=1, keepdims=True), observed)
    return {g: float(r) for g, r in zip(groups, true, strict=True)}


def _weighted(values: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """Weighted mean, variance (frequency weights, n - 1) and total weight."""
    total = float(weights.sum())
    mean = float((weights * values).sum() / total)
    var = float((weights * (values - mean) ** 2).sum() / (total - 1)) if total > 1 else 0.0
    return mean, var, total


def standardized_mean_difference(values: Any, member: Mapping[Any, np.ndarray], *,
                                 reference: Any = None) -> list[dict[str, Any]]:
    """Per group: mean, the difference from the reference's mean, the SMD (Cohen's d with
    the pooled standard deviation) and Welch's t-test p-value."""
    x = np.asarray(values, dtype=float)
    ok = ~np.isnan(x)
    stats = {g: _weighted(x[ok], m[ok]) for g, m in member.items() if m[ok].sum() > 1}
    means = {g: s[0] for g, s in stats.items()}
    ref = reference if reference is not None else min(means, key=lambda g: str(g))
    ref = _reference(means, ref)
    m0, v0, n0 = stats[ref]
    proxied = _proxied(member)
    rows = []
    for g, (m1, v1, n1) in stats.items():
        pooled = math.sqrt(((n1 - 1) * v1 + (n0 - 1) * v0) / (n1 + n0 - 2))
        row = {"group": g, "n": n1, "mean": m1, "difference": m1 - m0,
               "smd": (m1 - m0) / pooled if pooled else None, "p_value": None,
               "reference": g == ref}
        if g != ref:
            row["p_value"] = (contrast_p_value(x[ok], member[g][ok], member[ref][ok],
                                               pooled ** 2) if proxied
                              else _welch(m1, v1, n1, m0, v0, n0))
        rows.append(row)
    return rows


def _welch(m1: float, v1: float, n1: float, m0: float, v0: float, n0: float) -> float | None:
    from scipy.stats import t as student

    se2 = v1 / n1 + v0 / n0
    if se2 == 0:
        return None
    dof = se2 ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
    return float(2 * student.sf(abs((m1 - m0) / math.sqrt(se2)), dof))


def marginal_effect(outcome: Any, member: Mapping[Any, np.ndarray], controls: Any, *,
                    reference: Any = None, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The group coefficients of ``outcome ~ 1 + membership (reference left out) +
    controls`` by least squares, with HC1 standard errors and normal p-values. With a
    decision as the outcome this is a linear probability model: the coefficient is the
    difference in the probability of a favorable outcome at equal credit factors."""
    y = np.asarray(outcome, dtype=float)
    z = np.asarray(controls, dtype=float).reshape(len(y), -1)
    means = {g: float((m * y).sum() / m.sum()) for g, m in member.items() if m.sum() > 0}
    ref = _reference(means, reference) if reference is not None else max(means,
                                                                          key=means.__getitem__)
    groups = [g for g in means if g != ref]
    design = np.column_stack([np.ones(len(y)), *(member[g] for g in groups), z])
    # A row in no group would otherwise count as the control group (all indicators 0).
    grouped = np.vstack(list(member.values())).sum(axis=0) > 0
    keep = ~np.isnan(design).any(axis=1) & ~np.isnan(y) & grouped
    without_group = int((~grouped).sum())
    design, y = design[keep], y[keep]
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    n, k = design.shape
    bread = np.linalg.pinv(design.T @ design)
    meat = (design * resid[:, None] ** 2).T @ design
    cov = bread @ meat @ bread * n / (n - k)
    rows = []
    for i, g in enumerate(groups, start=1):
        se = math.sqrt(cov[i, i]) if cov[i, i] > 0 else float("nan")
        p = math.erfc(abs(beta[i] / se) / math.sqrt(2)) if se == se and se > 0 else None
        rows.append({"group": g, "reference": ref, "effect": float(beta[i]), "std_error": se,
                     "p_value": p, "controls": ", ".join(names) or f"{z.shape[1]} columns",
                     "n": int(n), "rows_without_group": without_group})
    return rows


def error_rates(predicted_favorable: Any, actual_favorable: Any,
                member: Mapping[Any, np.ndarray], *,
                reference: Any = None) -> list[dict[str, Any]]:
    """False-positive rate (favorable decision, unfavorable outcome, among actual
    unfavorable) and false-negative rate (unfavorable decision among actual favorable) per
    group, and each one's gap to the reference group's (rows without an outcome left out)."""
    pred = np.asarray(predicted_favorable, dtype=float)
    actual = np.asarray(actual_favorable, dtype=float)
    ok = ~np.isnan(actual)
    rates: dict[Any, dict[str, Any]] = {}
    for g, m in member.items():
        w = m[ok]
        pos, neg = (w * actual[ok]).sum(), (w * (1 - actual[ok])).sum()
        fp = (w * pred[ok] * (1 - actual[ok])).sum()
        fn = (w * (1 - pred[ok]) * actual[ok]).sum()
        if pos + neg > 0:
            rates[g] = {"group": g, "n": float(pos + neg),
                        "fpr": float(fp / neg) if neg else None,
                        "fnr": float(fn / pos) if pos else None}
    ref = reference if reference is not None else next(iter(rates))
    ref = _reference({g: 0.0 for g in rates}, ref)
    for row in rates.values():
        for name in ("fpr", "fnr"):
            base = rates[ref][name]
            row[f"{name}_gap"] = (row[name] - base if row[name] is not None
                                  and base is not None else None)
        row["reference"] = row["group"] == ref
    return list(rates.values())


def features_by_disparity(frame: Any, features: Sequence[str],
                          member: Mapping[Any, np.ndarray], control: Any) -> list[str]:
    """The numeric features, most different between the control group and any other group
    first (largest |standardized mean difference|): the likeliest drivers of a disparity."""
    spread = {}
    for name in features:
        values = np.asarray(frame[name], dtype=float)
        if np.isnan(values).all():
            continue
        rows = standardized_mean_difference(values, member, reference=control)
        spread[name] = max((abs(r["smd"]) for r in rows if r["smd"] is not None), default=0.0)
    return sorted(spread, key=lambda n: -spread[n])


def compare_alternatives(candidates: Sequence[Mapping[str, Any]], *, favorable: int,
                         actual: Any, member: Mapping[Any, np.ndarray], control: Any,
                         auc_tolerance: float, bad_rate_tolerance: float
                         ) -> tuple[list[dict[str, Any]], str]:
    """Each candidate (``alternative``, ``how``, ``score``: the positive-class probability,
    ``threshold``) decided on the same applicants: the lowest AIR against the control
    group, the AUC on the applicants whose outcome is known, the approval rate and the bad
    rate among the approved. The first candidate is the model as reviewed; an alternative
    is chosen when it raises the lowest AIR by more than 0.005 while losing at most
    ``auc_tolerance`` of AUC and adding at most ``bad_rate_tolerance`` to the bad rate.
    Returns the rows and why the chosen one was chosen."""
    from sklearn.metrics import roc_auc_score

    actual = np.asarray(actual, dtype=float)
    known = ~np.isnan(actual)
    rows = []
    for c in candidates:
        score = np.asarray(c["score"], dtype=float)
        decided = ((score >= c["threshold"]).astype(int) == favorable).astype(float)
        impact = adverse_impact(decided, member, reference=control)
        airs = [r["air"] for r in impact if not r["reference"] and r["air"] is not None]
        approved = known & (decided == 1)
        rows.append({"alternative": c["alternative"], "how": c["how"],
                     "threshold": c["threshold"], "air_min": min(airs, default=None),
                     "auc": float(roc_auc_score(actual[known], score[known]))
                     if len(set(actual[known])) == 2 else None,
                     "approval_rate": float(decided.mean()),
                     "bad_rate": float((actual[approved] != favorable).mean())
                     if approved.any() else None})
    base = rows[0]
    for row in rows:
        row["auc_cost"] = (base["auc"] - row["auc"] if None not in (base["auc"], row["auc"])
                           else None)
        row["bad_rate_change"] = (row["bad_rate"] - base["bad_rate"]
                                  if None not in (base["bad_rate"], row["bad_rate"]) else None)
    eligible = [r for r in rows[1:] if r["air_min"] is not None and base["air_min"] is not None
                and r["air_min"] > base["air_min"] + 0.005
                and (r["auc_cost"] or 0.0) <= auc_tolerance
                and (r["bad_rate_change"] or 0.0) <= bad_rate_tolerance]
    chosen = max(eligible, key=lambda r: (r["air_min"], -(r["auc_cost"] or 0.0)), default=base)
    for row in rows:
        row["chosen"] = row is chosen
    if chosen is base:
        why = (f"no alternative raised the lowest AIR by more than 0.005 while losing at most "
               f"{auc_tolerance:g} AUC and adding at most {bad_rate_tolerance:g} to the bad "
               "rate: the model as reviewed stands")
    else:
        why = (f"{chosen['alternative']} raises the lowest AIR from {base['air_min']:.4g} to "
               f"{chosen['air_min']:.4g} at an AUC cost of {chosen['auc_cost'] or 0:.4g} and a "
               f"bad-rate change of {chosen['bad_rate_change'] or 0:+.4g}, the most of the "
               "alternatives within the tolerances")
    return rows, why
