"""Numbers for the model validation report (arrays in, rows out) and the data it validates on.

Discrimination is the AUC (scikit-learn's ``roc_auc_score``) with DeLong's 95% interval, the
Gini (2·AUC − 1) and the Kolmogorov–Smirnov statistic between the scores of the two classes
(scipy's ``ks_2samp``) with a percentile-bootstrap 95% interval (500 resamples, 200 above
100,000 rows); calibration is the Brier score and the log loss (probabilities clipped to
float64's epsilon, as scikit-learn does). Stability is the PSI (the library's own formula,
``nbregistry.monitoring.drift.psi``) on the reference sample's deciles, each bin holding its
upper decile as the monitoring baseline's do.

Samples are ordered train, hold-out (test), out-of-time (oot): the first is the reference of
every comparison, and only the training sample is in-sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..domain.errors import InvalidInputError

if TYPE_CHECKING:
    from ..domain.entities import ModelVersion
    from .context import ReportContext

EPS = float(np.finfo(np.float64).eps)   # scikit-learn's log-loss clip
ROLES = {"train": "in-sample", "training": "in-sample", "dev": "in-sample",
         "development": "in-sample", "reference": "in-sample", "all": "in-sample",
         "test": "hold-out", "holdout": "hold-out", "hold-out": "hold-out",
         "hold_out": "hold-out", "validation": "hold-out", "valid": "hold-out",
         "oot": "out-of-time", "out_of_time": "out-of-time", "out-of-time": "out-of-time"}
ORDER = {"in-sample": 0, "hold-out": 1, "out-of-time": 2, "other": 3}

MATERIALITY = {
    "high": "full-scope validation: every section, challenger replay, sensitivity on every "
            "feature, annual revalidation",
    "medium": "standard validation: every section, sensitivity on the most important "
              "features, revalidation every two years",
    "low": "limited-scope validation: performance, data quality and the monitoring plan; "
           "revalidation when monitoring alerts",
}


def sample_role(name: Any) -> str:
    """``in-sample``, ``hold-out``, ``out-of-time`` or ``other`` for a sample's name."""
    return ROLES.get(str(name).strip().lower(), "other")


def order_samples(names: Sequence[Any]) -> list[Any]:
    """Train first, then hold-out, then out-of-time, then any other name (alphabetically
    within each)."""
    return sorted(names, key=lambda n: (ORDER[sample_role(n)], str(n)))


def classification_metrics(y: Any, score: Any, *, threshold: float = 0.5,
                           intervals: bool = False) -> dict[str, Any]:
    """AUC, Gini, KS, Brier, log loss and accuracy; with ``intervals``, the 95% intervals
    of the AUC (DeLong) and of the KS (bootstrap) as ``auc_low``/``auc_high`` and
    ``ks_low``/``ks_high``."""
    from scipy.stats import ks_2samp
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=int)
    s = np.asarray(score, dtype=float)
    both = len(set(y.tolist())) == 2
    auc = float(roc_auc_score(y, s)) if both else None
    out = {"n": len(y), "event_rate": float(y.mean()) if len(y) else None,
           "auc": auc, "gini": 2 * auc - 1 if auc is not None else None,
           "ks": float(ks_2samp(s[y == 1], s[y == 0]).statistic) if both else None,
           "brier": float(brier_score_loss(y, s)) if len(y) else None,
           "log_loss": float(log_loss(y, np.clip(s, EPS, 1 - EPS), labels=[0, 1]))
           if len(y) else None,
           "accuracy": float(((s >= threshold).astype(int) == y).mean()) if len(y) else None}
    if intervals:
        from ..monitoring.significance import auc_interval

        auc_ci = auc_interval(y, s)[1:] if both else (None, None)
        # each resample is a pass over the rows: 200 of them past 100,000 rows (11 s at 1M)
        ks_ci = ks_interval(y, s, n_resamples=500 if len(y) <= 100_000 else 200) \
            if both else (None, None)
        out.update(auc_low=auc_ci[0], auc_high=auc_ci[1], ks_low=ks_ci[0], ks_high=ks_ci[1])
    return out


def ks_interval(y: Any, score: Any, *, n_resamples: int = 500, confidence: float = 0.95,
                seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the KS statistic between the classes' scores
    (rows resampled with a seeded generator; the same statistic as ``ks_2samp``)."""
    y = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    order = np.argsort(s, kind="stable")
    y, s = y[order], s[order]
    ends = np.r_[s[1:] != s[:-1], True]   # the CDFs are compared after each tie group
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(n_resamples):
        weights = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))[order]
        positives, negatives = np.cumsum(weights * y), np.cumsum(weights * (1 - y))
        if positives[-1] and negatives[-1]:
            gap = positives / positives[-1] - negatives / negatives[-1]
            found.append(float(np.abs(gap[ends]).max()))
    tail = (1 - confidence) / 2
    low, high = np.quantile(found, [tail, 1 - tail])
    return float(low), float(high)


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
    """PSI of ``current`` against ``reference`` on the reference's decile bins, each bin
    holding its upper decile (so a constant 5 and a constant 6 fall in different bins)."""
    from ..monitoring.drift import psi

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1)
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


# -- the data validated on ----------------------------------------------------------------------

@dataclass(frozen=True)
class ValidationData:
    """The rows validated on: ``frame`` (pandas), ``table`` (Arrow, for the data-quality
    table), where they come from (``kind``: ``table``, ``given`` or ``reference``) and how
    the report names them."""

    frame: Any
    table: Any
    kind: str
    label: str


def validation_data(ctx: ReportContext, mv: ModelVersion, *, data: str | None,
                    target: str) -> ValidationData:
    """The table given (``data``), else the training Delta table pinned in the version's
    lineage, else the reference sample registered with the version (``reference_data`` and
    ``reference_target``)."""
    source = dict(mv.lineage).get("training_data") or {}
    if data is not None or source.get("format") == "delta":
        uri = data or source["uri"]
        table = ctx.read_table(uri, None if data else source["version"])
        return ValidationData(table.to_pandas(), table, "given" if data else "table",
                              f"{'the Delta table' if data else 'the training Delta table'} "
                              f"{uri} at version {ctx.tables[uri]}")
    reference = mv.reference or {}
    if not reference.get("has_target"):
        raise InvalidInputError(
            f"{mv.name} v{mv.version} has no Delta training table and no reference sample "
            "with a target: pass data=<Delta table URI> (with the outcome column named by "
            "target=), or register the version with reference_data and reference_target",
            field="data")
    from ..monitoring.reference import SCORE_COLUMN, TARGET_COLUMN, thaw

    table = thaw(ctx.registry.artifact(str(reference["sha256"])))
    keep = [c for c in table.column_names if c != SCORE_COLUMN]
    table = table.select(keep).rename_columns(
        [target if c == TARGET_COLUMN else c for c in keep])
    return ValidationData(table.to_pandas(), table, "reference",
                          f"the reference sample registered with v{mv.version} (sha256 "
                          f"{str(reference['sha256'])[:12]}…): the data given as "
                          "reference_data, so in-sample")


def benchmark(X: Any, y: Any) -> Any:
    """A simple challenger fitted on the training sample: logistic regression on the numeric
    features (median-imputed, standardized)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                         LogisticRegression(max_iter=1000)).fit(X, np.asarray(y, dtype=int))


def numeric_features(frame: Any, features: Sequence[str]) -> list[str]:
    return [f for f in features if np.issubdtype(frame[f].dtype, np.number)]


def incumbent(registry: Any, name: str, version: int) -> int | None:
    """The version to compare with: the one in production when it is another, else the one
    this version replaced in production (None: neither)."""
    from ..domain.errors import NotFoundError

    try:
        holder = registry.get(name, stage="production").version
    except NotFoundError:
        holder = None
    if holder is not None and holder != version:
        return int(holder)
    replaced = [r.replaces for r in registry.requests(name, status="all")
                if r.version == version and r.to == "production" and r.status == "promoted"
                and r.replaces is not None]
    return int(replaced[-1]) if replaced else None


def compare(y: Any, model: Any, other: Any, *, name: str, sample: Any,
            in_sample: bool) -> dict[str, Any]:
    """The model's AUC against another's on the same rows (DeLong): ``diff`` is the model's
    minus the other's, with its 95% interval and p-value, and each AUC's interval."""
    from ..monitoring.significance import auc_interval, delong

    y = np.asarray(y, dtype=float)
    test = delong(y, np.asarray(other, dtype=float), np.asarray(model, dtype=float))
    low, high = test.interval()
    return {"name": name, "sample": sample, "n": len(y), "in_sample": in_sample,
            "auc_model": test.auc_b, "auc_other": test.auc_a, "diff": test.diff,
            "low": low, "high": high, "p_value": test.p_value,
            "model_ci": auc_interval(y, model)[1:], "other_ci": auc_interval(y, other)[1:]}
