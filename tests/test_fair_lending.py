"""Fair-lending statistics against the library's own fairness table and the peers
(fairlearn, scipy, scikit-learn); proxied (probabilistic) membership as weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_ratio,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)
from scipy import stats
from sklearn.linear_model import LinearRegression

from nbregistry.monitoring import duck
from nbregistry.monitoring.fairness import fairness
from nbregistry.reports import fair_lending as fl


@pytest.fixture
def book() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 4000
    sex = rng.choice(["F", "M"], n, p=[0.45, 0.55])
    score = rng.normal(0, 1, n)
    approved = (score + np.where(sex == "F", -0.35, 0.0) + rng.normal(0, 1, n) > 0).astype(int)
    repaid = (score + rng.normal(0, 1, n) > -0.5).astype(int)
    price = 5 + 0.8 * score + np.where(sex == "F", 0.2, 0.0) + rng.normal(0, 1, n)
    return pd.DataFrame({"sex": sex, "score": score, "approved": approved, "repaid": repaid,
                         "price": price})


def test_adverse_impact_equals_the_monitor_fairness_table_and_fairlearn(
        book: pd.DataFrame) -> None:
    rows = {r["group"]: r for r in fl.adverse_impact(book["approved"],
                                                     fl.membership(book["sex"]))}
    con = duck.connect()
    con.register("book", pa.table({"sex": book["sex"], "label": book["approved"],
                                   "actual": book["repaid"]}))
    library = {r["group"]: r for r in fairness(con, "book", group="sex", favorable=1)
               .to_pylist()}
    for g in ("F", "M"):
        for key in ("selection_rate", "air"):
            assert rows[g][key] == pytest.approx(library[g][key], rel=1e-12)
        for key in ("four_fifths", "test"):  # a flag and a test's name: equal, not close
            assert rows[g][key] == library[g][key]
        if library[g]["p_value"] is not None:
            assert rows[g]["p_value"] == pytest.approx(library[g]["p_value"], rel=1e-9)
    frame = MetricFrame(metrics=selection_rate, y_true=book["approved"],
                        y_pred=book["approved"], sensitive_features=book["sex"])
    for g in ("F", "M"):
        assert rows[g]["selection_rate"] == pytest.approx(frame.by_group[g], rel=1e-12)
    ratio = demographic_parity_ratio(book["repaid"], book["approved"],
                                     sensitive_features=book["sex"])
    assert min(r["air"] for r in rows.values()) == pytest.approx(ratio, rel=1e-12)


def test_the_significance_is_the_chi_square_test_and_fisher_for_small_groups() -> None:
    fav = np.array([1] * 30 + [0] * 20 + [1] * 20 + [0] * 30)
    groups = np.array(["A"] * 50 + ["B"] * 50)
    rows = {r["group"]: r for r in fl.adverse_impact(fav, fl.membership(groups))}
    chi2 = stats.chi2_contingency([[20, 30], [30, 20]], correction=False)
    assert rows["B"]["test"] == "z" and rows["B"]["p_value"] == pytest.approx(chi2.pvalue)
    small = {r["group"]: r for r in fl.adverse_impact([1, 1, 1, 0, 1, 0, 0, 0],
                                                      fl.membership(list("AAAABBBB")))}
    assert small["B"]["test"] == "fisher"
    assert small["B"]["p_value"] == pytest.approx(
        stats.fisher_exact([[1, 3], [3, 1]]).pvalue)


def test_the_shortfall_is_the_number_of_favorable_outcomes_that_reach_four_fifths() -> None:
    fav = np.array([1] * 80 + [0] * 20 + [1] * 50 + [0] * 50)
    groups = np.array(["A"] * 100 + ["B"] * 100)
    b = next(r for r in fl.adverse_impact(fav, fl.membership(groups)) if r["group"] == "B")
    assert b["air"] == pytest.approx(50 / 80) and b["four_fifths"]
    assert b["shortfall"] == 14  # 0.8 * 0.8 * 100 = 64 favorable needed, 50 given
    fixed = np.concatenate([fav[:100], [1] * 64 + [0] * 36])
    b = next(r for r in fl.adverse_impact(fixed, fl.membership(groups)) if r["group"] == "B")
    assert b["air"] == pytest.approx(0.8) and b["shortfall"] == 0 and not b["four_fifths"]


def test_smd_and_welch_against_scipy(book: pd.DataFrame) -> None:
    rows = {r["group"]: r for r in fl.standardized_mean_difference(
        book["price"], fl.membership(book["sex"]), reference="M")}
    f, m = book.loc[book.sex == "F", "price"], book.loc[book.sex == "M", "price"]
    pooled = math.sqrt(((len(f) - 1) * f.var() + (len(m) - 1) * m.var()) / (len(f) + len(m) - 2))
    assert rows["F"]["smd"] == pytest.approx((f.mean() - m.mean()) / pooled, rel=1e-9)
    assert rows["F"]["p_value"] == pytest.approx(
        stats.ttest_ind(f, m, equal_var=False).pvalue, rel=1e-6)
    assert rows["M"]["reference"] and rows["M"]["smd"] == 0


def test_marginal_effect_equals_least_squares_with_controls(book: pd.DataFrame) -> None:
    rows = fl.marginal_effect(book["approved"], fl.membership(book["sex"]),
                              book[["score"]], reference="M", names=["score"])
    X = np.column_stack([(book.sex == "F").astype(float), book["score"]])
    peer = LinearRegression().fit(X, book["approved"])
    assert rows[0]["group"] == "F" and rows[0]["effect"] == pytest.approx(peer.coef_[0])
    assert rows[0]["effect"] < -0.05 and rows[0]["p_value"] < 1e-6  # the planted disparity


def test_error_rates_equal_fairlearn(book: pd.DataFrame) -> None:
    rows = {r["group"]: r for r in fl.error_rates(book["approved"], book["repaid"],
                                                  fl.membership(book["sex"]), reference="M")}
    frame = MetricFrame(metrics={"fpr": false_positive_rate, "fnr": false_negative_rate},
                        y_true=book["repaid"], y_pred=book["approved"],
                        sensitive_features=book["sex"])
    for g in ("F", "M"):
        assert rows[g]["fpr"] == pytest.approx(frame.by_group.loc[g, "fpr"], rel=1e-12)
        assert rows[g]["fnr"] == pytest.approx(frame.by_group.loc[g, "fnr"], rel=1e-12)
    assert rows["F"]["fnr_gap"] == pytest.approx(rows["F"]["fnr"] - rows["M"]["fnr"])


def test_proxy_probabilities_are_weights(book: pd.DataFrame) -> None:
    exact = fl.membership(book["sex"])
    as_probabilities = fl.probabilities({"F": exact["F"], "M": exact["M"]})
    assert fl.adverse_impact(book["approved"], as_probabilities)[0]["air"] == pytest.approx(
        fl.adverse_impact(book["approved"], exact)[0]["air"])
    p_female = np.clip(exact["F"] * 0.9 + 0.05, 0, 1)  # an imperfect proxy
    rows = {r["group"]: r for r in fl.adverse_impact(
        book["approved"], fl.probabilities({"F": p_female, "M": 1 - p_female}))}
    assert rows["F"]["n"] == pytest.approx(p_female.sum())
    expected = (p_female * book["approved"]).sum() / p_female.sum()
    assert rows["F"]["selection_rate"] == pytest.approx(expected)
    assert rows["F"]["test"] == "z, weighted"  # no exact test on weighted counts
    with pytest.raises(ValueError, match="sum to at most 1"):
        fl.probabilities({"F": p_female, "M": p_female + 0.5})


def test_every_group_is_compared_with_the_control_group_not_the_most_favoured() -> None:
    """A protected group may be the most favoured: AIR(F vs M) is then above 1, and the
    rule's column says pass, not a bare "no"."""
    fav = np.array([1] * 90 + [0] * 10 + [1] * 60 + [0] * 40 + [1] * 40 + [0] * 60)
    groups = np.array(["Black"] * 100 + ["White"] * 100 + ["Hispanic"] * 100)
    rows = {r["group"]: r for r in fl.adverse_impact(fav, fl.membership(groups),
                                                     reference="White")}
    assert rows["Black"]["air"] == pytest.approx(1.5)
    assert rows["Hispanic"]["air"] == pytest.approx(40 / 60)
    assert [rows[g]["four_fifths_rule"] for g in ("Black", "White", "Hispanic")] == [
        "pass", "control", "FAIL (AIR < 0.8)"]
    with pytest.raises(ValueError, match="control group 'Asian' is not among"):
        fl.adverse_impact(fav, fl.membership(groups), reference="Asian")
    ages = fl.age_groups([30, 70, np.nan, 62], "<62")
    assert ages["<62"].tolist() == [1, 0, 0, 0] and ages["62+"].tolist() == [0, 1, 0, 1]


def test_proxied_p_values_test_the_weighted_difference_itself(book: pd.DataFrame) -> None:
    """An applicant's weight goes to both groups, so the sums of weights are not two
    independent samples: the test takes the variance of the weighted difference. A proxy
    that is an affine function of the true membership then carries exactly the evidence of
    the true membership (the difference and its spread shrink alike), where testing the
    sums of weights as independent samples lost eight orders of magnitude."""
    exact = fl.membership(book["sex"])["F"]
    known = {r["group"]: r for r in fl.adverse_impact(book["approved"],
                                                      fl.membership(book["sex"]),
                                                      reference="M")}
    p_female = exact * 0.6 + 0.2  # a weak proxy
    member = fl.probabilities({"F": p_female, "M": 1 - p_female})
    rows = {r["group"]: r for r in fl.adverse_impact(book["approved"], member, reference="M")}
    assert rows["F"]["test"] == "z, weighted"
    assert rows["F"]["p_value"] == pytest.approx(known["F"]["p_value"], rel=1e-6)
    naive = stats.chi2_contingency(
        [[rows[g]["favorable"], rows[g]["n"] - rows[g]["favorable"]] for g in ("F", "M")],
        correction=False).pvalue
    assert naive > 1e4 * rows["F"]["p_value"]
    assert rows["F"]["air"] > known["F"]["air"]  # the same evidence, an attenuated ratio


def test_proxy_weighted_air_is_pulled_towards_one_and_the_correction_undoes_it() -> None:
    rng = np.random.default_rng(5)
    n = 60000
    p_minority = rng.beta(0.6, 0.6, n)  # calibrated: the group is drawn from it
    minority = rng.random(n) < p_minority
    approved = (rng.random(n) < np.where(minority, 0.48, 0.64)).astype(float)
    true_air = approved[minority].mean() / approved[~minority].mean()
    member = fl.probabilities({"minority": p_minority, "control": 1 - p_minority})
    weighted = next(r for r in fl.adverse_impact(approved, member, reference="control")
                    if r["group"] == "minority")["air"]
    fixed = fl.corrected_rates(approved, member)
    assert true_air == pytest.approx(0.75, abs=0.02)
    assert weighted > true_air + 0.1  # attenuated towards 1
    assert fixed["minority"] / fixed["control"] == pytest.approx(true_air, abs=0.02)
    known = fl.membership(np.where(minority, "minority", "control"))
    assert fl.corrected_rates(approved, known)["minority"] == pytest.approx(
        approved[minority].mean())


def test_rows_with_no_group_are_left_out_of_the_regression_not_made_the_control() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    sex = rng.choice(np.array(["F", "M", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    score = rng.normal(0, 1, n)
    approved = (score + np.where(sex == "F", -0.3, 0.0)
                + np.where(sex == None, -2.0, 0.0) + rng.normal(0, 1, n) > 0)  # noqa: E711
    rows = fl.marginal_effect(approved, fl.membership(sex), score[:, None], reference="M",
                              names=["score"])
    grouped = sex != None  # noqa: E711
    X = np.column_stack([(sex[grouped] == "F").astype(float), score[grouped]])
    peer = LinearRegression().fit(X, approved[grouped])
    assert rows[0]["effect"] == pytest.approx(peer.coef_[0])
    assert rows[0]["rows_without_group"] == int((~grouped).sum()) > 0
    assert rows[0]["n"] == int(grouped.sum())


def test_the_search_for_a_less_discriminatory_alternative_picks_a_cheaper_fairer_model(
        ) -> None:
    """A feature that tracks group membership but predicts little drives the disparity:
    the model without it is chosen; one that costs too much AUC is not."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(8)
    n = 6000
    minority = rng.random(n) < 0.4
    frame = pd.DataFrame({"ability": rng.normal(0, 1, n),
                          "proxy_feature": minority * 1.5 + rng.normal(0, 1, n)})
    default = (rng.random(n) < 1 / (1 + np.exp(1.2 * frame["ability"] - 0.1
                                               * frame["proxy_feature"] + 0.8))).astype(int)
    member = fl.membership(np.where(minority, "minority", "control"))
    features = ["ability", "proxy_feature"]
    assert fl.features_by_disparity(frame, features, member, "control")[0] == "proxy_feature"
    full = LogisticRegression().fit(frame[features], default)
    lean = LogisticRegression().fit(frame[["ability"]], default)
    candidates = [
        {"alternative": "model as reviewed", "how": "", "threshold": 0.5,
         "score": full.predict_proba(frame[features])[:, 1]},
        {"alternative": "without proxy_feature", "how": "", "threshold": 0.5,
         "score": lean.predict_proba(frame[["ability"]])[:, 1]},
        {"alternative": "coin", "how": "", "threshold": 0.5, "score": rng.random(n)}]
    rows, why = fl.compare_alternatives(candidates, favorable=0, actual=default,
                                        member=member, control="control",
                                        auc_tolerance=0.02, bad_rate_tolerance=0.02)
    chosen = next(r for r in rows if r["chosen"])
    assert chosen["alternative"] == "without proxy_feature", rows
    assert chosen["air_min"] > rows[0]["air_min"] + 0.005 and chosen["auc_cost"] < 0.02
    assert rows[2]["auc_cost"] > 0.1 and not rows[2]["chosen"]
    assert "without proxy_feature raises the lowest AIR" in why
    strict, why = fl.compare_alternatives(candidates, favorable=0, actual=default,
                                          member=member, control="control",
                                          auc_tolerance=0.0, bad_rate_tolerance=0.0)
    assert strict[0]["chosen"] and "the model as reviewed stands" in why
