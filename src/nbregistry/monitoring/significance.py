"""Is model B better than model A on the same outcomes? Paired bootstrap and DeLong.

- ``paired_bootstrap``: resamples the rows (the same rows for both models, so their
  correlation is kept) ``n_resamples`` times with a seeded generator; returns the metric
  difference ``b - a`` on the full data, the percentile confidence interval of the
  resampled differences and a two-sided p-value ``2 * min(P(d <= 0), P(d >= 0))`` with
  the usual +1 correction (never exactly 0). Metrics are weighted sums, so a resample costs
  O(n) (row multiplicities as weights), ROC AUC included (rows ranked once).
- ``delong``: DeLong, DeLong & Clarke-Pearson (1988) test for two correlated ROC AUCs, in
  the O(n log n) form of Sun & Xu (2014) with midranks for ties; its standard error gives
  the Wald interval of the difference. ``auc_interval``: the same variance for one AUC.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np

Metric = Callable[["np.ndarray", "np.ndarray", "np.ndarray"], float]
HIGHER_IS_BETTER = frozenset({"roc_auc", "accuracy", "r2"})


@dataclass(frozen=True)
class BootstrapResult:
    metric: str
    value_a: float
    value_b: float
    diff: float          # value_b - value_a
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int     # resamples used (those where the metric is defined)
    confidence: float


@dataclass(frozen=True)
class DeLongResult:
    auc_a: float
    auc_b: float
    diff: float          # auc_b - auc_a
    z: float
    p_value: float
    se: float = 0.0      # DeLong standard error of ``diff``

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Wald interval of ``diff`` from the DeLong standard error."""
        half = _z(confidence) * self.se
        return self.diff - half, self.diff + half


def _arrays(y_true: Any, scores_a: Any, scores_b: Any) -> tuple[np.ndarray, ...]:
    import numpy as np

    arrays = tuple(np.asarray(v, dtype=np.float64).ravel() for v in (y_true, scores_a,
                                                                      scores_b))
    if not len(arrays[0]) or len({len(a) for a in arrays}) != 1:
        raise InvalidInputError("y_true, scores_a and scores_b must be non-empty and of one "
                                "length", field="y_true")
    if not all(np.isfinite(a).all() for a in arrays):
        raise InvalidInputError("outcomes and scores must be finite", field="scores")
    return arrays


def paired_bootstrap(y_true: Any, scores_a: Any, scores_b: Any, *, metric: str = "roc_auc",
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     threshold: float = 0.5) -> BootstrapResult:
    """Paired bootstrap of ``metric(b) - metric(a)``. ``metric``: roc_auc, accuracy (at
    ``threshold``), log_loss, brier, rmse, mae or r2."""
    import numpy as np

    y, a, b = _arrays(y_true, scores_a, scores_b)
    if not 0 < confidence < 1 or n_resamples < 1:
        raise InvalidInputError("confidence must be in (0, 1) and n_resamples >= 1",
                                field="confidence")
    score = _metric(metric, y, threshold)
    ones = np.ones(len(y))
    value_a, value_b = score(a, ones), score(b, ones)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        weights = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(float)
        diffs[i] = score(b, weights) - score(a, weights)
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        raise InvalidInputError(f"{metric} is undefined on every resample (one class only?)",
                                field="y_true")
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    below = (np.sum(diffs <= 0) + 1) / (len(diffs) + 1)
    above = (np.sum(diffs >= 0) + 1) / (len(diffs) + 1)
    return BootstrapResult(metric, value_a, value_b, value_b - value_a, float(low),
                           float(high), float(min(1.0, 2 * min(below, above))), len(diffs),
                           confidence)


def _metric(name: str, y: np.ndarray, threshold: float) -> Callable[[Any, Any], float]:
    """``metric(scores, weights)`` for fixed outcomes ``y``."""
    import numpy as np

    def mean(values: np.ndarray, w: np.ndarray) -> float:
        return float(np.dot(values, w) / w.sum())

    eps = np.finfo(np.float64).eps
    table: dict[str, Callable[[Any, Any], float]] = {
        "accuracy": lambda s, w: mean(((s >= threshold) == (y == 1)).astype(float), w),
        "log_loss": lambda s, w: mean(-(y * np.log(np.clip(s, eps, 1 - eps)) + (1 - y)
                                        * np.log(np.clip(1 - s, eps, 1 - eps))), w),
        "brier": lambda s, w: mean((s - y) ** 2, w),
        "rmse": lambda s, w: math.sqrt(mean((s - y) ** 2, w)),
        "mae": lambda s, w: mean(np.abs(s - y), w),
        "r2": lambda s, w: _weighted_r2(y, s, w),
        "roc_auc": lambda s, w: _weighted_auc(y, s, w),
    }
    if name not in table:
        raise InvalidInputError(f"metric {name!r} is not one of {sorted(table)}",
                                field="metric", value=name)
    if name in ("accuracy", "log_loss", "brier", "roc_auc") and not np.isin(y, (0, 1)).all():
        raise InvalidInputError(f"{name} needs 0/1 outcomes", field="y_true")
    return table[name]


def _weighted_r2(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    import numpy as np

    centre = np.dot(y, w) / w.sum()
    total = float(np.dot((y - centre) ** 2, w))
    return 1 - float(np.dot((y - s) ** 2, w)) / total if total else math.nan


def _weighted_auc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    """Mann-Whitney AUC with row weights: ties between scores count half."""
    import numpy as np

    values, tie_group = np.unique(s, return_inverse=True)
    positives = np.bincount(tie_group, weights=w * y, minlength=len(values))
    negatives = np.bincount(tie_group, weights=w * (1 - y), minlength=len(values))
    total_pos, total_neg = positives.sum(), negatives.sum()
    if not total_pos or not total_neg:
        return math.nan
    below = np.concatenate([[0.0], np.cumsum(negatives)[:-1]])
    return float(np.dot(positives, below + 0.5 * negatives) / (total_pos * total_neg))


def delong(y_true: Any, scores_a: Any, scores_b: Any) -> DeLongResult:
    """DeLong's test of ``auc(b) - auc(a)`` for two models scored on the same rows."""
    y, a, b = _arrays(y_true, scores_a, scores_b)
    aucs, covariance = _delong_covariance(y, [a, b])
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    diff = aucs[1] - aucs[0]
    if variance <= 0:
        return DeLongResult(aucs[0], aucs[1], diff, 0.0, 1.0, 0.0)
    se = math.sqrt(variance)
    z = diff / se
    return DeLongResult(aucs[0], aucs[1], diff, z, math.erfc(abs(z) / math.sqrt(2)), se)


def auc_interval(y_true: Any, scores: Any, *, confidence: float = 0.95
                 ) -> tuple[float, float, float]:
    """``(auc, low, high)``: the AUC and its Wald interval from DeLong's variance, clipped
    to [0, 1]."""
    y, s, _ = _arrays(y_true, scores, scores)
    aucs, covariance = _delong_covariance(y, [s])
    half = _z(confidence) * math.sqrt(max(float(covariance[0, 0]), 0.0))
    return aucs[0], max(0.0, aucs[0] - half), min(1.0, aucs[0] + half)


def _delong_covariance(y: np.ndarray, models: list[np.ndarray]
                       ) -> tuple[list[float], np.ndarray]:
    """Each model's AUC and the DeLong covariance matrix of the AUCs."""
    import numpy as np
    from scipy.stats import rankdata

    if not np.isin(y, (0, 1)).all() or y.min() == y.max():
        raise InvalidInputError("DeLong's test needs 0/1 outcomes with both classes",
                                field="y_true")
    positive, negative = y == 1, y == 0
    m, n = int(positive.sum()), int(negative.sum())
    aucs, v10, v01 = [], [], []
    for scores in models:
        x, z = scores[positive], scores[negative]
        rank_x, rank_z = rankdata(x), rankdata(z)
        rank_all = rankdata(np.concatenate([x, z]))
        aucs.append(float((rank_all[:m].sum() - m * (m + 1) / 2) / (m * n)))
        v10.append((rank_all[:m] - rank_x) / n)        # per positive: negatives below it
        v01.append(1.0 - (rank_all[m:] - rank_z) / m)  # per negative: positives above it
    k = len(models)
    s10 = np.atleast_2d(np.cov(np.vstack(v10))) if m > 1 else np.zeros((k, k))
    s01 = np.atleast_2d(np.cov(np.vstack(v01))) if n > 1 else np.zeros((k, k))
    return aucs, s10 / m + s01 / n


def _z(confidence: float) -> float:
    from scipy.stats import norm

    if not 0 < confidence < 1:
        raise InvalidInputError("confidence must be in (0, 1)", field="confidence")
    return float(norm.ppf(0.5 + confidence / 2))


def two_proportions(f1: float, n1: float, f2: float, n2: float, *, exact_ok: bool = True
                    ) -> tuple[str, float]:
    """Two-sided test that ``f1/n1`` and ``f2/n2`` are equal: Fisher's exact test when an
    expected cell count is below 5 (and the counts are whole: ``exact_ok``), else the
    pooled two-proportion z-test (Pearson's chi-square on the 2x2 table, no continuity
    correction). Returns the test's name and its p-value (1.0 when neither varies)."""
    total, selected = n1 + n2, f1 + f2
    expected = [n * k / total for n in (n1, n2) for k in (selected, total - selected)]
    if exact_ok and min(expected) < 5:
        from scipy.stats import fisher_exact

        table = [[int(f1), int(n1 - f1)], [int(f2), int(n2 - f2)]]
        return "fisher", float(fisher_exact(table).pvalue)
    pooled = selected / total
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return "z", 1.0
    z = (f1 / n1 - f2 / n2) / spread
    return "z", math.erfc(abs(z) / math.sqrt(2))
