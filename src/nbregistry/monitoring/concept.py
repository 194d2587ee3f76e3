"""Concept drift: change detectors over the outcome-ordered error stream, and naming it.

The detectors read a stream in outcome order (for a classifier, 1 where the prediction was
wrong; for a regressor, any loss such as the absolute error) and return the positions at
which they signal a change; each restarts after a detection, so a stream can hold several.

- ``ddm`` (Gama et al., 2004): error rate p and its std s = sqrt(p(1-p)/n); warning when
  p + s >= p_min + 2 s_min, drift at 3 s_min (0/1 errors only). Its minimum is taken over
  a noisy start, so it alarms falsely at times: on stable 10%-error streams of 6,000
  outcomes, in 40% of 40 seeded runs here (Page-Hinkley and ADWIN: none); a larger
  ``min_instances`` lowers that.
- ``page_hinkley`` (Page, 1954): cumulative deviation above the running mean, minus a
  tolerance ``delta`` per item; drift when it rises ``threshold`` above its minimum. Detects
  increases (more errors, larger losses).
- ``adwin`` (Bifet & Gavalda, 2007): an adaptive window, cut when two sub-windows' means
  differ by more than eps_cut = sqrt(2/m var ln(2/d')) + 2/(3m) ln(2/d'), d' = delta/n, m the
  harmonic mean of their sizes; checked every ``clock`` items at cut points spaced
  geometrically from the newest item (five per doubling, as ADWIN2's exponential
  histogram), so each check costs O(log n).

``diagnose`` names what a drift table and a performance table show together: performance
falling while the inputs stay stable is concept drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..domain.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})


@dataclass(frozen=True)
class Detection:
    """Where a detector signalled: stream positions (0-based) of drifts and of the
    starts of warning periods (DDM only)."""

    method: str
    drifts: list[int]
    warnings: list[int] = field(default_factory=list)

    @property
    def detected(self) -> bool:
        return bool(self.drifts)


def _stream(values: Any, *, binary: bool = False) -> np.ndarray:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInputError("the error stream must be one-dimensional", field="errors")
    if not np.isfinite(array).all():
        raise InvalidInputError("the error stream holds NaN or inf: drop unmatured rows "
                                "first", field="errors")
    if binary and not np.isin(array, (0.0, 1.0)).all():
        raise InvalidInputError("DDM needs a 0/1 error stream (1 = wrong prediction)",
                                field="errors")
    return array


def ddm(errors: Any, *, warning_level: float = 2.0, drift_level: float = 3.0,
        min_instances: int = 30) -> Detection:
    """Drift Detection Method over a 0/1 error stream."""
    stream = _stream(errors, binary=True)
    drifts, warnings = [], []
    n, p, best, best_s, warned = 0, 0.0, math.inf, math.inf, False
    for i, error in enumerate(stream):
        n += 1
        p += (error - p) / n
        s = math.sqrt(p * (1 - p) / n)
        if n < min_instances:
            continue
        if p + s < best + best_s:
            best, best_s = p, s
        if p + s >= best + drift_level * best_s:
            drifts.append(i)
            n, p, best, best_s, warned = 0, 0.0, math.inf, math.inf, False
        elif p + s >= best + warning_level * best_s:
            if not warned:
                warnings.append(i)
            warned = True
        else:
            warned = False
    return Detection("ddm", drifts, warnings)


def page_hinkley(values: Any, *, delta: float = 0.005, threshold: float = 50.0,
                 min_instances: int = 30) -> Detection:
    """Page-Hinkley test for an increase in the mean of ``values``."""
    stream = _stream(values)
    drifts = []
    n, mean, cumulative, lowest = 0, 0.0, 0.0, 0.0
    for i, value in enumerate(stream):
        n += 1
        mean += (value - mean) / n
        cumulative += value - mean - delta
        lowest = min(lowest, cumulative)
        if n >= min_instances and cumulative - lowest > threshold:
            drifts.append(i)
            n, mean, cumulative, lowest = 0, 0.0, 0.0, 0.0
    return Detection("page_hinkley", drifts)


def adwin(values: Any, *, delta: float = 0.002, clock: int = 32,
          min_window: int = 5) -> Detection:
    """ADWIN over ``values`` (errors or losses); a drift each time the window is cut."""
    import numpy as np

    stream = _stream(values)
    prefix = np.concatenate([[0.0], np.cumsum(stream)])
    squares = np.concatenate([[0.0], np.cumsum(stream * stream)])
    drifts, start = [], 0
    for end in range(clock, len(stream) + 1, clock):
        cut = _adwin_cut(prefix, squares, start, end, delta, min_window)
        if cut is not None:
            drifts.append(end - 1)
        while cut is not None:   # shrink until the window holds no change
            start = cut
            cut = _adwin_cut(prefix, squares, start, end, delta, min_window)
    return Detection("adwin", drifts)


def _adwin_cut(prefix: np.ndarray, squares: np.ndarray, start: int, end: int,
               delta: float, min_window: int) -> int | None:
    """The start of the newest sub-window that differs from the rest, or None."""
    import numpy as np

    n = end - start
    if n < 2 * min_window:
        return None
    total = prefix[end] - prefix[start]
    variance = max(0.0, (squares[end] - squares[start]) / n - (total / n) ** 2)
    doublings = max(1, int(math.log2(n)))
    recent = np.unique(np.geomspace(min_window, n - min_window, 5 * doublings).astype(int))
    n1 = recent[(recent >= min_window) & (recent <= n - min_window)]
    n0 = n - n1
    mean1 = (prefix[end] - prefix[end - n1]) / n1
    mean0 = (prefix[end - n1] - prefix[start]) / n0
    m = 1.0 / (1.0 / n0 + 1.0 / n1)
    log_term = math.log(2.0 * n / delta)
    eps = np.sqrt(2.0 / m * variance * log_term) + 2.0 / (3.0 * m) * log_term
    cuts = np.nonzero(np.abs(mean1 - mean0) > eps)[0]
    if len(cuts) == 0:
        return None
    return int(end - n1[cuts].max())   # drop everything before the largest changed tail


@dataclass(frozen=True)
class Diagnosis:
    """What the monitoring tables show, named."""

    kind: Literal["stable", "data_drift", "concept_drift", "data_drift_with_degradation"]
    message: str
    metric: str
    reference_value: float
    latest_value: float
    degraded: bool
    drifted_features: list[str]


def diagnose(drift: pa.Table, performance: pa.Table, *, metric: str | None = None,
             reference_value: float | None = None, tolerance: float = 0.05) -> Diagnosis:
    """Name the situation from a drift table and a performance table (windows in order).

    Performance fell when the latest window's ``metric`` (default ``roc_auc``, else
    ``rmse``) is worse than ``reference_value`` (default: the first window's; pass the
    baseline's) by more than ``tolerance``, relative. Inputs are stable when no feature row
    of the drift table is ``drifted`` (the score row is an output, not an input).
    """
    chosen = metric or ("roc_auc" if "roc_auc" in performance.column_names else "rmse")
    if chosen not in performance.column_names:
        raise InvalidInputError(f"the performance table has no {chosen!r} column",
                                field="metric", value=chosen)
    series = [v for v in performance.column(chosen).to_pylist() if v is not None]
    if not series:
        raise InvalidInputError(f"no window has a {chosen!r} value", field="performance")
    before = series[0] if reference_value is None else reference_value
    latest = series[-1]
    change = (latest - before) if chosen in LOWER_IS_BETTER else (before - latest)
    degraded = change > tolerance * abs(before)
    rows = drift.select(["feature", "drifted"]).to_pylist()
    drifted = [r["feature"] for r in rows if r["drifted"] and r["feature"] != "score"]
    kind: Literal["stable", "data_drift", "concept_drift", "data_drift_with_degradation"]
    if degraded and not drifted:
        kind, text = "concept_drift", (f"{chosen} fell from {before:.4g} to {latest:.4g} while "
                                       f"the inputs stayed stable: concept drift (the relation "
                                       f"between inputs and outcome changed); retrain")
    elif degraded:
        kind, text = "data_drift_with_degradation", (
            f"{chosen} fell from {before:.4g} to {latest:.4g} and inputs drifted "
            f"({', '.join(drifted)})")
    elif drifted:
        kind, text = "data_drift", (f"inputs drifted ({', '.join(drifted)}); {chosen} holds "
                                    f"({latest:.4g} vs {before:.4g})")
    else:
        kind, text = "stable", f"inputs stable and {chosen} holds ({latest:.4g})"
    return Diagnosis(kind, text, chosen, float(before), float(latest), degraded, drifted)
