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
    assert rows["F"]["test"] == "z"  # no exact test on weighted counts
    with pytest.raises(ValueError, match="sum to at most 1"):
        fl.probabilities({"F": p_female, "M": p_female + 0.5})
