"""Data drift of a window of prediction rows against a frozen baseline, in one DuckDB pass.

``drift`` reads the window once (one aggregate query: a hash count of grid cells per numeric
column, of levels per categorical column) and derives every statistic from those counts
and the baseline, so it streams in bounded memory whatever the window's size. The result
has one row per feature, and one for ``score`` when the baseline has a score distribution:

=================== =========================================================================
column              meaning
=================== =========================================================================
feature, kind       the column, ``numeric`` or ``categorical``
n, missing_rate     rows in the window; share of them null, NaN or +-inf (left out of the
                    statistics below, never an error)
psi                 population stability index on the 10 reference-decile bins (levels plus an
                    ``other`` bucket for unseen levels for categoricals); bin shares below
                    1e-4 are raised to 1e-4 (no renormalisation)
ks, ks_error        two-sample Kolmogorov-Smirnov statistic between the window and the
                    reference, evaluated at every grid-cell edge, where both CDFs are known
                    exactly: the exact statistic lies in ``[ks, ks + ks_error]``.
                    ``ks_error`` is computed per row from the cells' masses (within a cell,
                    each CDF moves by at most that cell's mass); with the default 1,000
                    cells it is typically below 0.005
ks_pvalue           asymptotic two-sided p-value of ``ks``: ``scipy.stats.kstwo.sf(ks,
                    round(n_ref*n_cur/(n_ref+n_cur)))``, the formula of ``ks_2samp``'s
                    ``asymp`` method
js                  Jensen-Shannon distance, base 2, on the same bins as ``psi`` (in [0, 1])
wasserstein         Wasserstein-1 distance divided by the reference's population std,
wasserstein_error   from the grid with each CDF linear within a cell; the exact value lies
                    within ``+- wasserstein_error`` (a bound: the sum over cells of cell
                    width times both masses, plus the far tails)
chi2_pvalue         Pearson chi-square test of homogeneity (no Yates correction) on the
                    2 x levels table of reference and window counts, on the ``psi`` bins;
                    bins with an expected count below 5 are pooled, and a pool still below
                    5 joins the smallest bin; null when fewer than 2 bins remain
p_value             the feature's test: ``ks_pvalue`` (numeric) or ``chi2_pvalue``
p_adjusted          Benjamini-Hochberg adjusted p-value over all rows of the table
status              the ``band``'s word for ``psi``: ``ok``, ``warn`` or ``alert`` (the policy's
                    ``psi`` band; by default warn from 0.1, alert from 0.25)
drifted             ``p_adjusted < alpha`` and ``psi >= min_effect``: significant AND large
                    enough, so a huge window does not alarm on a trivial shift
=================== =========================================================================

A feature whose window has no valid value at all is reported with null statistics, status
``alert`` and ``drifted`` true (the input is broken). The table's schema metadata holds
``dataset_drift(table)`` as JSON under ``nbregistry.dataset_drift``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError
from ..domain.monitoring_policy import DEFAULT_BANDS, Band
from . import duck
from .baseline import check_baseline
from .counts import Counts, FeatureCounts, feature_counts
from .sketch import edges, far_edges

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

PSI_FLOOR = 1e-4
METADATA_KEY = b"nbregistry.dataset_drift"

COLUMNS = ("feature", "kind", "n", "missing_rate", "psi", "ks", "ks_error", "ks_pvalue", "js",
           "wasserstein", "wasserstein_error", "chi2_pvalue", "p_value", "p_adjusted",
           "status", "drifted")


def drift(con: duckdb.DuckDBPyConnection, source: str, baseline: dict[str, Any], *,
          where: str | None = None, features: Sequence[str] | None = None,
          alpha: float = 0.05, min_effect: float = 0.1,
          drift_share: float = 0.5, band: Band | None = None) -> pa.Table:
    """Drift of the rows of ``source`` (filtered by the SQL ``where``) against ``baseline``.

    ``features`` limits the rows (names from the baseline, ``"score"`` included);
    ``alpha`` is the false discovery rate, ``min_effect`` the PSI a feature must reach to
    count as drifted, ``drift_share`` the share of drifted features that makes the dataset
    drifted (see ``dataset_drift``); ``band`` rates each ``psi`` (the policy's).
    ``con`` is a DuckDB connection or another engine with its interface (``spark.py``).
    """
    found = drift_by(con, source, baseline, where=where, features=features, alpha=alpha,
                     min_effect=min_effect, drift_share=drift_share, band=band)
    if () not in found:
        raise InvalidInputError(f"the window has no prediction rows (source {source[:120]}, "
                                f"filter {where!r}): widen the period or check the version",
                                field="where", value=where)
    return found[()]


def drift_by(con: Any, source: str, baseline: dict[str, Any], *,
             keys: Sequence[tuple[str, str]] = (), where: str | None = None,
             features: Sequence[str] | None = None, alpha: float = 0.05,
             min_effect: float = 0.1, drift_share: float = 0.5,
             band: Band | None = None) -> dict[tuple[Any, ...], pa.Table]:
    """``drift`` for every value of the ``keys`` expressions (``(sql, alias)``: a time
    bucket, say), all from one scan; groups without rows are absent."""
    check_baseline(baseline)
    if not 0 < alpha < 1:
        raise InvalidInputError("alpha must be between 0 and 1", field="alpha", value=alpha)
    if min_effect < 0 or not 0 < drift_share <= 1:
        raise InvalidInputError("min_effect must be >= 0 and drift_share in (0, 1]",
                                field="min_effect", value=(min_effect, drift_share))
    specs, types = prepared(con, source, baseline, features)
    groups = feature_counts(con, source, where, specs, types, keys=keys)
    return {key: from_counts(specs, counts, alpha=alpha, min_effect=min_effect,
                             drift_share=drift_share, band=band or DEFAULT_BANDS["psi"])
            for key, counts in groups.items() if counts.rows}


def prepared(con: Any, source: str, baseline: dict[str, Any],
             features: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The baseline specs of the features to compare, and the source's column types
    (checked against them)."""
    check_baseline(baseline)
    specs = _selected(baseline, features)
    types = duck.columns(con, source)
    _check_types(specs, types)
    return specs, types


def from_counts(specs: dict[str, Any], counts: Counts, *, alpha: float = 0.05,
                min_effect: float = 0.1, drift_share: float = 0.5,
                band: Band = DEFAULT_BANDS["psi"]) -> pa.Table:
    """The drift table from a window's counts (a scan's, or a sum of per-file sketches)."""
    rows = [_feature_row(name, spec, counts.features[name], counts.rows)
            for name, spec in specs.items()]
    return _finish(rows, alpha=alpha, min_effect=min_effect, drift_share=drift_share,
                   band=band)


def dataset_drift(table: pa.Table, *, drift_share: float = 0.5) -> dict[str, Any]:
    """Share of the features (the ``score`` row excluded) flagged ``drifted`` after the
    Benjamini-Hochberg adjustment and effect floor; the dataset drifted when the share
    reaches ``drift_share``."""
    rows = table.select(["feature", "drifted"]).to_pylist()
    features = [r for r in rows if r["feature"] != "score"]
    drifted = [r["feature"] for r in features if r["drifted"]]
    score = [r["drifted"] for r in rows if r["feature"] == "score"]
    share = len(drifted) / len(features) if features else 0.0
    return {"n_features": len(features), "n_drifted": len(drifted), "share": share,
            "drifted_features": drifted, "drift_share": drift_share,
            "dataset_drift": bool(features) and share >= drift_share,
            "score_drifted": score[0] if score else None}


def _selected(baseline: dict[str, Any], features: Sequence[str] | None) -> dict[str, Any]:
    available = dict(baseline["features"])
    if baseline.get("score") is not None:
        available["score"] = baseline["score"]
    if features is None:
        return available
    if isinstance(features, str):
        raise InvalidInputError("features must be a list of names, not a string",
                                field="features", value=features)
    unknown = [name for name in features if name not in available]
    if unknown:
        raise InvalidInputError(f"features {unknown} are not in the baseline (it has "
                                f"{sorted(available)})", field="features", value=unknown)
    return {name: available[name] for name in dict.fromkeys(features)}


def _check_types(specs: dict[str, Any], types: dict[str, str]) -> None:
    duck.require_columns(types, list(specs), what="drift")
    for name, spec in specs.items():
        if spec["kind"] == "numeric" and not duck.is_numeric(types[name]):
            raise InvalidInputError(f"feature {name!r} was numeric in the reference but is "
                                    f"{types[name]} in the prediction log", field=name)


def _feature_row(name: str, spec: dict[str, Any], window: FeatureCounts,
                 total: int) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(feature=name, kind=spec["kind"], n=total,
               missing_rate=(total - window.valid) / total)
    if window.valid == 0 or (spec["grid"] is None if spec["kind"] == "numeric"
                             else not spec["levels"]):
        return _no_values(row, spec)
    if spec["kind"] == "numeric":
        row.update(_numeric_stats(spec, window))
    else:
        row.update(_categorical_stats(spec, window.histogram))
    return row


def _no_values(row: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    # Nothing to compare: broken input if the reference had values, else nothing to watch.
    had_values = spec.get("grid") is not None if spec["kind"] == "numeric" \
        else bool(spec["levels"])
    row.update(status="alert" if had_values else "ok", drifted=had_values)
    return row


def _numeric_stats(spec: dict[str, Any], window: FeatureCounts) -> dict[str, Any]:
    import numpy as np

    grid, valid = spec["grid"], window.valid
    ref = dict(zip(grid["keys"], grid["counts"], strict=True))
    dense = _dense(grid, ref, window.histogram)
    n_ref = spec["n"] - spec["missing"]
    p_ref, p_cur = dense["ref"] / n_ref, dense["cur"] / valid
    # F_ref - F_cur at every cell edge, from whole counts so that it is exactly 0 where
    # both CDFs are complete (a residue there, times a log grid's vast far cells, is not)
    gap = np.concatenate([[0.0], np.cumsum(dense["ref"]) / n_ref
                          - np.cumsum(dense["cur"]) / valid])
    ref_bins, cur_bins = _decile_counts(spec, dense)
    ks, ks_error = _ks(gap, p_ref, p_cur)
    w, w_error = _wasserstein(grid, dense, gap, p_ref, p_cur, window.far_area)
    std, p_value = spec["std"], ks_pvalue(ks, n_ref, valid)
    return {"psi": psi(ref_bins, cur_bins), "js": js_distance(ref_bins, cur_bins),
            "ks": ks, "ks_error": ks_error, "ks_pvalue": p_value, "p_value": p_value,
            "wasserstein": w / std if std else None,
            "wasserstein_error": w_error / std if std else None}


def _dense(grid: dict[str, Any], ref: dict[int, int], cur: dict[int, int]) -> dict[str, Any]:
    """Counts on one index: far-low cell, the normal cells kmin..kmax, far-high cell."""
    import numpy as np

    far_low, far_high = -grid["far"] - 1, grid["cells"] + grid["far"]
    normal = [k for k in (*ref, *cur) if far_low < k < far_high]
    kmin, kmax = min(normal, default=0), max(normal, default=0)
    size = kmax - kmin + 3
    arrays = {}
    for label, counts in (("ref", ref), ("cur", cur)):
        array = np.zeros(size)
        for key, n in counts.items():
            index = 0 if key <= far_low else size - 1 if key >= far_high else key - kmin + 1
            array[index] += n
        arrays[label] = array
    return {**arrays, "kmin": kmin, "kmax": kmax}


def _decile_counts(spec: dict[str, Any], dense: dict[str, Any]) -> tuple[Any, Any]:
    import numpy as np

    size = len(dense["ref"])
    keys = np.arange(dense["kmin"] - 1, dense["kmin"] - 1 + size)
    keys[0], keys[-1] = -(2 ** 40), 2 ** 40   # far cells: first and last decile bin
    edges = np.asarray(spec["deciles"]["keys"], dtype=np.int64)
    bins = np.searchsorted(edges, keys, side="right")
    width = len(edges) + 1
    return (np.asarray(spec["deciles"]["counts"], dtype=np.float64),
            np.bincount(bins, weights=dense["cur"], minlength=width))


def _ks(cdf_gap: np.ndarray, p_ref: np.ndarray, p_cur: np.ndarray) -> tuple[float, float]:
    """KS at the cell edges (a lower bound) and how far the exact value can lie above it:
    inside a cell, F_ref - F_cur can exceed its value at the left edge by at most the
    cell's reference mass, and its value at the right edge by at most the window's."""
    import numpy as np

    at_edges = float(np.abs(cdf_gap[1:-1]).max()) if len(cdf_gap) > 2 else 0.0
    left, right = cdf_gap[:-1], cdf_gap[1:]
    above = np.minimum(left + p_ref, right + p_cur)    # F_ref - F_cur inside a cell
    below = np.minimum(-left + p_cur, -right + p_ref)  # F_cur - F_ref inside a cell
    upper = max(at_edges, float(above.max()), float(below.max()))
    return at_edges, upper - at_edges


def _wasserstein(grid: dict[str, Any], dense: dict[str, Any], gap: np.ndarray,
                 p_ref: np.ndarray, p_cur: np.ndarray,
                 far_area: tuple[float, float]) -> tuple[float, float]:
    """W1 = integral of |F_ref - F_cur|, each CDF taken linear within a cell, and a bound
    on the error of that: within a cell each CDF moves by at most the cell's mass."""
    import numpy as np

    positions = edges(grid, np.arange(dense["kmin"], dense["kmax"] + 2))
    widths = np.diff(positions)
    a, b = gap[1:-2], gap[2:-1]            # D at the left and right edge of each normal cell
    same_sign = a * b >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(same_sign, 0.0, (a * a + b * b) / (2 * np.abs(a - b)))
    total = float((np.where(same_sign, np.abs(a + b) / 2, crossing) * widths).sum())
    error = float(((p_ref[1:-1] + p_cur[1:-1]) * widths).sum())
    # empty cells between the far cells and the occupied ones: D is constant there
    low_edge, high_edge = far_edges(grid)
    total += (positions[0] - low_edge) * abs(gap[1])
    total += (high_edge - positions[-1]) * abs(gap[-2])
    for ref_side, cur_side in zip((grid["far_low_area"], grid["far_high_area"]), far_area,
                                  strict=True):
        total += abs(ref_side - cur_side)
        error += 2 * min(ref_side, cur_side)
    return total, error


def _categorical_stats(spec: dict[str, Any], histogram: dict[Any, int]) -> dict[str, Any]:
    import numpy as np

    levels = spec["levels"]
    ref = np.asarray([*levels.values(), 0], dtype=np.float64)
    cur = np.zeros(len(ref))
    index = {level: i for i, level in enumerate(levels)}
    for level, n in histogram.items():
        cur[index.get(str(level), len(ref) - 1)] += n
    p = chi2_pvalue(ref, cur)
    test = p
    if p is None and cur[-1] > 0:
        # pooling left one bin: the window's mass is in levels the reference never had
        # (a big window of new values). Test the share of unseen levels itself, or a
        # complete shift would read as "not drifted" beside a PSI of 17.
        from .significance import two_proportions

        test = two_proportions(float(cur[-1]), float(cur.sum()), float(ref[-1]),
                               float(ref.sum()))[1]
    return {"psi": psi(ref, cur), "js": js_distance(ref, cur), "chi2_pvalue": p,
            "p_value": test}


def psi(ref_counts: Any, cur_counts: Any) -> float:
    """PSI between two count vectors on the same bins, shares floored at 1e-4."""
    import numpy as np

    p = np.maximum(np.asarray(ref_counts, float) / np.sum(ref_counts), PSI_FLOOR)
    q = np.maximum(np.asarray(cur_counts, float) / np.sum(cur_counts), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(ref_counts: Any, cur_counts: Any) -> float:
    """Jensen-Shannon distance (base 2) between two count vectors on the same bins."""
    import numpy as np

    p = np.asarray(ref_counts, float) / np.sum(ref_counts)
    q = np.asarray(cur_counts, float) / np.sum(cur_counts)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, (kl_p + kl_q) / 2)))


def ks_pvalue(statistic: float, n_ref: int, n_cur: int) -> float:
    from scipy.stats import kstwo

    en = n_ref * n_cur / (n_ref + n_cur)
    return float(min(1.0, max(0.0, kstwo.sf(statistic, round(en)))))


def chi2_pvalue(ref_counts: Any, cur_counts: Any) -> float | None:
    """Pearson chi-square homogeneity p-value, bins with expected count < 5 pooled."""
    import numpy as np
    from scipy.special import chdtrc

    table = _pool_rare(np.vstack([ref_counts, cur_counts]).astype(float))
    if table.shape[1] < 2:
        return None
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(chdtrc(table.shape[1] - 1, statistic))


def _pool_rare(table: np.ndarray) -> np.ndarray:
    import numpy as np

    table = table[:, table.sum(axis=0) > 0]
    min_expected = table.sum(axis=1).min() * table.sum(axis=0) / table.sum()
    rare = min_expected < 5
    if not rare.any():
        return table
    kept, pool = table[:, ~rare], table[:, rare].sum(axis=1, keepdims=True)
    if kept.shape[1] and table.sum(axis=1).min() * pool.sum() / table.sum() < 5:
        smallest = int(np.argmin(kept.sum(axis=0)))
        kept = kept.copy()
        kept[:, smallest] += pool[:, 0]
        return kept
    return np.hstack([kept, pool])


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values, in the input order."""
    import numpy as np

    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return [float(v) for v in out]


def _finish(rows: list[dict[str, Any]], *, alpha: float, min_effect: float,
            drift_share: float, band: Band) -> pa.Table:
    import pyarrow as pa

    tested = [i for i, row in enumerate(rows) if row["p_value"] is not None]
    for i, adjusted in zip(tested, benjamini_hochberg([rows[i]["p_value"] for i in tested]),
                           strict=True):
        rows[i]["p_adjusted"] = adjusted
    for row in rows:
        if row["status"] is not None:
            continue
        value = row["psi"]
        row["status"] = band.status(value)
        row["drifted"] = bool(row["p_adjusted"] is not None and row["p_adjusted"] < alpha
                              and value >= min_effect)
    table = pa.Table.from_pylist(rows, schema=_schema())
    summary = dataset_drift(table, drift_share=drift_share)
    summary.update(alpha=alpha, min_effect=min_effect)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(summary).encode()})


def _schema() -> pa.Schema:
    import pyarrow as pa

    floats = ("missing_rate", "psi", "ks", "ks_error", "ks_pvalue", "js", "wasserstein",
              "wasserstein_error", "chi2_pvalue", "p_value", "p_adjusted")
    fields = [pa.field("feature", pa.string()), pa.field("kind", pa.string()),
              pa.field("n", pa.int64()), *(pa.field(name, pa.float64()) for name in floats),
              pa.field("status", pa.string()), pa.field("drifted", pa.bool_())]
    assert tuple(f.name for f in fields) == COLUMNS
    return pa.schema(fields)
