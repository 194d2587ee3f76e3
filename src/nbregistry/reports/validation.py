"""Numbers for the model validation report (pure: arrays in, rows out).

Discrimination is the AUC (scikit-learn's ``roc_auc_score``), the Gini (2·AUC − 1) and the
Kolmogorov–Smirnov statistic between the scores of the two classes (scipy's ``ks_2samp``);
calibration is the Brier score and the log loss. Stability is the PSI (the library's own
formula, ``nbregistry.monitoring.drift.psi``) on the reference sample's deciles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MATERIALITY = {
    "high": "full-scope validation: every section, challenger replay, sensitivity on every "
            "feature, annual revalidation",
    "medium": "standard validation: every section, sensitivity on the most important "
              "features, revalidation every two years",
    "low": "limited-scope validation: performance, data quality and the monitoring plan; "
           "revalidation when monitoring alerts",
}


def classification_metrics(y: Any, score: Any, *, threshold: float = 0.5) -> dict[str, Any]:
    from scipy.stats import ks_2samp
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=int)
    s = np.asarray(score, dtype=float)
    both = len(set(y.tolist())) == 2
    auc = float(roc_auc_score(y, s)) if both else None
    return {"n": len(y), "event_rate": float(y.mean()) if len(y) else None,
            "auc": auc, "gini": 2 * auc - 1 if auc is not None else None,
            "ks": float(ks_2samp(s[y == 1], s[y == 0]).statistic) if both else None,
            "brier": float(brier_score_loss(y, s)) if len(y) else None,
            "log_loss": float(log_loss(y, np.clip(s, 1e-15, 1 - 1e-15), labels=[0, 1]))
            if len(y) else None,
            "accuracy": float(((s >= threshold).astype(int) == y).mean()) if len(y) else None}


def roc_points(y: Any, score: Any, label: str, *, points: int = 200) -> list[dict[str, Any]]:
    """At most ``points`` points of the ROC curve, for a chart."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(y, dtype=int), np.asarray(score, dtype=float))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int))
    return [{"fpr": float(fpr[i]), "tpr": float(tpr[i]), "sample": label} for i in keep]


def data_quality(table: Any) -> list[dict[str, Any]]:
    """Per column of an Arrow table: type, missing count and rate, distinct values and, for
    numbers, min / mean / max."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = []
    for name in table.column_names:
        column = table[name]
        row: dict[str, Any] = {"column": name, "type": str(column.type),
                               "missing": column.null_count,
                               "missing_rate": column.null_count / max(len(column), 1),
                               "distinct": len(pc.unique(column))}
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            stats = pc.min_max(column)
            row.update(min=stats["min"].as_py(), mean=pc.mean(column).as_py(),
                       max=stats["max"].as_py())
        rows.append(row)
    return rows


def psi_between(reference: Any, current: Any, *, bins: int = 10) -> float | None:
    """PSI of ``current`` against ``reference`` on the reference's decile bins."""
    from ..monitoring.drift import psi

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    return float(psi(ref_counts, cur_counts))


def sensitivity(predict: Any, X: Any, features: Sequence[str]) -> list[dict[str, Any]]:
    """Mean change of the score when one feature moves by ±1 standard deviation (the
    others held), one row per numeric feature."""
    base = np.asarray(predict(X), dtype=float)
    rows = []
    for name in features:
        column = X[name]
        if not np.issubdtype(column.dtype, np.number):
            continue
        sd = float(column.std())
        up = np.asarray(predict(X.assign(**{name: column + sd})), dtype=float)
        down = np.asarray(predict(X.assign(**{name: column - sd})), dtype=float)
        rows.append({"feature": name, "sd": sd, "score_change_up": float((up - base).mean()),
                     "score_change_down": float((down - base).mean()),
                     "max_abs_change": float(max(np.abs(up - base).max(),
                                                 np.abs(down - base).max()))})
    return sorted(rows, key=lambda r: -abs(r["score_change_up"]))


def positive_scores(model: Any, X: Any) -> Any:
    """The positive-class probability (or the prediction of a regressor)."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X))[:, 1]
    return np.asarray(model.predict(X), dtype=float)
