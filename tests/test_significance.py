"""Paired bootstrap and DeLong's test, against sklearn and a direct O(n^2) DeLong."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from nbregistry import InvalidInputError
from nbregistry.monitoring.significance import auc_interval, delong, paired_bootstrap


def _two_models(n: int, seed: int, gap: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    signal = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(y * 1.0 + signal + rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(y * (1.0 + gap) + signal + rng.normal(size=n))))
    return y, np.round(a, 2), np.round(b, 2)   # rounding makes ties


def _delong_quadratic(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, ...]:
    """DeLong et al. (1988) as written: placement values from all positive-negative pairs."""
    out = []
    for scores in (a, b):
        x, z = scores[y == 1][:, None], scores[y == 0][None, :]
        psi = (x > z) + 0.5 * (x == z)
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = out
    s10, s01 = np.cov(v10_a, v10_b), np.cov(v01_a, v01_b)
    m, n = len(v10_a), len(v01_a)
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1]
                                                         - 2 * s01[0, 1]) / n
    z = (auc_b - auc_a) / math.sqrt(var)
    return auc_a, auc_b, z, 2 * norm.sf(abs(z))


@pytest.mark.parametrize("seed, gap", [(0, 0.0), (1, 0.3), (2, 0.8)])
def test_delong_equals_the_quadratic_definition(seed: int, gap: float) -> None:
    y, a, b = _two_models(1500, seed, gap)
    result = delong(y, a, b)
    auc_a, auc_b, z, p = _delong_quadratic(y, a, b)
    assert result.auc_a == pytest.approx(roc_auc_score(y, a), rel=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(y, b), rel=1e-12)
    assert (result.auc_a, result.auc_b) == pytest.approx((auc_a, auc_b), rel=1e-12)
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-9)


def test_delong_identical_models_and_bad_input() -> None:
    y, a, _ = _two_models(200, 3, 0.0)
    assert delong(y, a, a).p_value == 1.0
    with pytest.raises(InvalidInputError, match="both classes"):
        delong(np.zeros(5), a[:5], a[:5])
    with pytest.raises(InvalidInputError, match="one length"):
        delong(y, a, a[:10])


def test_delong_intervals_follow_the_quadratic_variance() -> None:
    """The Wald intervals of one AUC and of a difference, from the variance as written."""
    y, a, b = _two_models(800, 4, 0.5)
    auc_a, auc_b, z, _ = _delong_quadratic(y, a, b)
    result = delong(y, a, b)
    low, high = result.interval(0.95)
    se = (auc_b - auc_a) / z
    assert (low, high) == pytest.approx((auc_b - auc_a - norm.ppf(0.975) * se,
                                         auc_b - auc_a + norm.ppf(0.975) * se), rel=1e-9)
    x, n = a[y == 1][:, None], a[y == 0][None, :]
    psi = (x > n) + 0.5 * (x == n)
    variance = psi.mean(axis=1).var(ddof=1) / psi.shape[0] + psi.mean(axis=0).var(ddof=1) \
        / psi.shape[1]
    auc, lo, hi = auc_interval(y, a, confidence=0.9)
    assert auc == pytest.approx(roc_auc_score(y, a), rel=1e-12)
    assert (lo, hi) == pytest.approx((auc - norm.ppf(0.95) * math.sqrt(variance),
                                      auc + norm.ppf(0.95) * math.sqrt(variance)), rel=1e-9)
    assert auc_interval(np.array([0, 1]), np.array([0.1, 0.9]))[1:] == (1.0, 1.0)


@pytest.mark.parametrize("metric, reference", [
    ("roc_auc", roc_auc_score), ("log_loss", log_loss), ("brier", brier_score_loss),
    ("accuracy", lambda y, s: accuracy_score(y, s >= 0.5)),
])
def test_bootstrap_point_values_equal_sklearn(metric: str, reference: object) -> None:
    y, a, b = _two_models(800, 4, 0.5)
    result = paired_bootstrap(y, a, b, metric=metric, n_resamples=50)
    assert result.value_a == pytest.approx(reference(y, a), rel=1e-9)  # type: ignore[operator]
    assert result.value_b == pytest.approx(reference(y, b), rel=1e-9)  # type: ignore[operator]
    assert result.diff == pytest.approx(result.value_b - result.value_a)


@pytest.mark.parametrize("metric, reference", [
    ("rmse", root_mean_squared_error), ("mae", mean_absolute_error), ("r2", r2_score)])
def test_bootstrap_regression_metrics(metric: str, reference: object) -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=500)
    a, b = y + rng.normal(0, 0.5, 500), y + rng.normal(0, 0.4, 500)
    result = paired_bootstrap(y, a, b, metric=metric, n_resamples=50)
    assert result.value_a == pytest.approx(reference(y, a), rel=1e-9)  # type: ignore[operator]


def test_bootstrap_resamples_are_paired_and_seeded() -> None:
    y, a, b = _two_models(1000, 6, 0.6)
    first = paired_bootstrap(y, a, b, n_resamples=300, seed=1)
    assert first == paired_bootstrap(y, a, b, n_resamples=300, seed=1)
    assert first.ci_low <= first.diff <= first.ci_high
    # a resample's AUC with weights equals sklearn on the materialized resample
    rng = np.random.default_rng(9)
    rows = rng.integers(0, len(y), len(y))
    from nbregistry.monitoring.significance import _weighted_auc
    weights = np.bincount(rows, minlength=len(y)).astype(float)
    assert _weighted_auc(y, a, weights) == pytest.approx(roc_auc_score(y[rows], a[rows]),
                                                         rel=1e-12)


def test_bootstrap_agrees_with_delong_on_a_clear_gain_and_no_gain() -> None:
    y, a, b = _two_models(2000, 7, 0.8)
    gain = paired_bootstrap(y, a, b, n_resamples=500)
    assert gain.p_value < 0.01 and delong(y, a, b).p_value < 0.01 and gain.ci_low > 0
    y, a, b = _two_models(2000, 8, 0.0)
    same = paired_bootstrap(y, a, b, n_resamples=500)
    assert same.p_value > 0.05 and delong(y, a, b).p_value > 0.05
    assert same.ci_low < 0 < same.ci_high


def test_bootstrap_bad_metric() -> None:
    y, a, b = _two_models(100, 9, 0.0)
    with pytest.raises(InvalidInputError, match="metric 'auc'"):
        paired_bootstrap(y, a, b, metric="auc")
