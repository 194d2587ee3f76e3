"""Model performance over prediction rows joined with their outcomes, computed in DuckDB.

``performance`` returns one row per (window, by-groups), ordered by them:

- ``window_start``, ``window_end``: UTC timestamps of the window (``time_bucket`` of ``ts``
  in UTC; days and hours align to midnight, ``7d`` windows start on Mondays); null when
  ``window`` is None (one row over all the rows);
- the ``by`` columns, then ``n`` (rows with both a finite ``score`` and an ``actual``;
  others have not matured and are left out);
- classification (``actual`` 0/1 or boolean, ``score`` the positive-class probability in
  [0, 1]): ``positives``, ``accuracy``, ``precision``, ``recall``, ``f1`` of the
  prediction ``score >= threshold``; ``roc_auc`` by the Mann-Whitney formula with tied
  scores counted half; ``log_loss`` with probabilities clipped to [eps, 1 - eps] (float64
  eps, as scikit-learn); ``brier``;
- regression: ``rmse``, ``mae``, ``r2``.

Each figure equals scikit-learn's on the same rows (tested to 1e-9 relative). Where
scikit-learn warns and returns 0 for an undefined ratio (precision with no predicted
positive, recall or AUC with one class, R^2 of a constant target) the figure is null.

``calibration`` gives the reliability table (uniform bins on [0, 1], scikit-learn's
``calibration_curve`` binning) and the expected calibration error.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..domain.errors import InvalidInputError
from ..domain.timefmt import parse_window, shifted
from . import duck

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

EPS = 2.220446049250313e-16   # numpy.finfo(float64).eps: scikit-learn's log-loss clip
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ORIGIN_US = 946_857_600_000_000  # 2000-01-03 00:00 UTC, a Monday: where 7d windows start
ECE_KEY = b"nbregistry.ece"

CLASSIFICATION = ("positives", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
                  "brier")
REGRESSION = ("rmse", "mae", "r2")


def performance(con: duckdb.DuckDBPyConnection, source: str, *,
                task: Literal["classification", "regression"], where: str | None = None,
                window: str | None = None, by: Sequence[str] | None = None,
                threshold: float = 0.5) -> pa.Table:
    """Metrics of ``score`` against ``actual`` per window of ``ts`` and per ``by`` group."""
    if task not in ("classification", "regression"):
        raise InvalidInputError("task must be 'classification' or 'regression'", field="task",
                                value=task)
    if not 0 <= threshold <= 1:
        raise InvalidInputError("threshold must be in [0, 1]", field="threshold",
                                value=threshold)
    groups = _groups(by)
    types = duck.columns(con, source)
    duck.require_columns(types, ["score", "actual", *(["ts"] if window else []), *groups],
                         what="performance")
    keys = _key_exprs(types, window, groups)
    base = _base_sql(source, where, keys)
    if task == "classification":
        rows = _classification(con, base, [k[1] for k in keys], threshold)
    else:
        rows = _regression(con, base, [k[1] for k in keys])
    if not rows:
        raise InvalidInputError(f"no rows with both a score and an outcome (filter {where!r}):"
                                f" outcomes may not have matured yet", field="where")
    return _table(rows, task, groups, window)


def calibration(con: duckdb.DuckDBPyConnection, source: str, *, where: str | None = None,
                n_bins: int = 10) -> pa.Table:
    """Reliability table: per non-empty uniform bin of ``score``, ``bin``, ``lower``,
    ``upper``, ``n``, ``mean_score``, ``fraction_positive``; the expected calibration
    error (the n-weighted mean of |fraction_positive - mean_score|) is in the schema
    metadata under ``nbregistry.ece`` and from ``expected_calibration_error``."""
    import numpy as np
    import pyarrow as pa

    if not isinstance(n_bins, int) or n_bins < 1:
        raise InvalidInputError("n_bins must be a positive integer", field="n_bins")
    duck.require_columns(duck.columns(con, source), ["score", "actual"], what="calibration")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_sql = " + ".join(f"CAST(__s > {duck.number(e)} AS INTEGER)" for e in edges[1:-1]) \
        or "0"
    base = _base_sql(source, where, [])
    rows = con.execute(f"""
        SELECT {bin_sql} AS b, count(*), avg(__s), avg(__y),
               count(*) FILTER (WHERE __y NOT IN (0, 1) OR __s < 0 OR __s > 1)
        FROM ({base}) GROUP BY b ORDER BY b""").fetchall()
    if not rows:
        raise InvalidInputError("no rows with both a score and an outcome", field="where")
    if sum(r[4] for r in rows):
        raise InvalidInputError("calibration needs 0/1 outcomes and scores in [0, 1]",
                                field="actual")
    table = pa.table({"bin": [r[0] for r in rows],
                      "lower": [float(edges[r[0]]) for r in rows],
                      "upper": [float(edges[r[0] + 1]) for r in rows],
                      "n": pa.array([r[1] for r in rows], pa.int64()),
                      "mean_score": [float(r[2]) for r in rows],
                      "fraction_positive": [float(r[3]) for r in rows]})
    ece = expected_calibration_error(table)
    return table.replace_schema_metadata({ECE_KEY: json.dumps(ece).encode()})


def expected_calibration_error(table: pa.Table) -> float:
    rows = table.select(["n", "mean_score", "fraction_positive"]).to_pylist()
    total = sum(r["n"] for r in rows)
    return float(sum(r["n"] * abs(r["fraction_positive"] - r["mean_score"]) for r in rows) / total)


def _groups(by: Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(dict.fromkeys(by))


def _key_exprs(types: dict[str, str], window: str | None,
               groups: list[str]) -> list[tuple[str, str]]:
    """(expression, alias) for every grouping key."""
    keys = []
    if window:
        # the window's start in microseconds since the epoch, on DuckDB's time_bucket grid
        # (origin Monday 2000-01-03 00:00 UTC); plain arithmetic, so every engine agrees
        step = parse_window(window) // dt.timedelta(microseconds=1)
        since = f"epoch_us({duck.quote('ts')}) - {ORIGIN_US}"
        keys.append((f"CAST(floor(({since}) / {step}) AS BIGINT) * {step} + {ORIGIN_US}",
                     "window_start"))
    keys.extend((duck.quote(name), name) for name in groups)
    return keys


def _base_sql(source: str, where: str | None, keys: list[tuple[str, str]]) -> str:
    selected = "".join(f"{expr} AS {duck.quote(alias)}, " for expr, alias in keys)
    filters = ["score IS NOT NULL", "actual IS NOT NULL", "isfinite(CAST(score AS DOUBLE))"]
    if where and where.strip():
        filters.insert(0, f"({where})")
    return (f"SELECT {selected}CAST(score AS DOUBLE) AS __s, CAST(actual AS DOUBLE) AS __y "
            f"FROM {source} WHERE {' AND '.join(filters)}")


def _classification(con: duckdb.DuckDBPyConnection, base: str, keys: list[str],
                    threshold: float) -> list[dict[str, Any]]:
    quoted = [duck.quote(k) for k in keys]
    lead = "".join(f"{k}, " for k in quoted)
    partition = f"PARTITION BY {', '.join(quoted)} " if quoted else ""
    group = f"GROUP BY {', '.join(quoted)} ORDER BY {', '.join(quoted)}" if quoted else ""
    t, hi, lo = duck.number(threshold), duck.number(1 - EPS), duck.number(EPS)
    # One row per (keys, distinct score): every metric is a sum over these, and the AUC's
    # Mann-Whitney count needs the negatives ranked below each score.
    query = f"""
        WITH cells AS (
            SELECT {lead}__s, count(*) AS __n, sum(__y) AS __p,
                   count(*) FILTER (WHERE __y NOT IN (0, 1)) AS __bad
            FROM ({base}) AS __rows GROUP BY {lead}__s),
        ranked AS (
            SELECT *, coalesce(sum(__n - __p) OVER ({partition}ORDER BY __s
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS __below
            FROM cells)
        SELECT {lead}sum(__n), sum(__p), sum(__bad),
               count(*) FILTER (WHERE __s < 0 OR __s > 1),
               sum(CASE WHEN __s >= {t} THEN __p ELSE 0 END),
               sum(CASE WHEN __s >= {t} THEN __n - __p ELSE 0 END),
               sum(__p * (__below + 0.5 * (__n - __p))),
               sum(-__p * ln(greatest(least(__s, {hi}), {lo}))
                   - (__n - __p) * ln(greatest(least(1 - __s, {hi}), {lo}))),
               sum(__p * (1 - __s) * (1 - __s) + (__n - __p) * __s * __s)
        FROM ranked {group}"""
    out = []
    for row in con.execute(query).fetchall():
        values = row[len(keys):]
        if not values[0]:
            continue   # no keys and no rows: the aggregate's lone row of nulls
        if values[2] or values[3]:
            raise InvalidInputError("classification needs actual outcomes that are 0/1 or "
                                    "boolean and scores (probabilities) in [0, 1]",
                                    field="actual")
        out.append({**dict(zip(keys, row, strict=False)), **binary_metrics(*values)})
    return out


def binary_metrics(n: int, pos: float, _bad: int, _out: int, tp: float, fp: float,
                    u: float, loss: float, brier: float) -> dict[str, Any]:
    neg, fn = n - pos, pos - tp
    tn = neg - fp
    return {"n": int(n), "positives": int(pos),
            "accuracy": (tp + tn) / n,
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, pos),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "roc_auc": _ratio(u, pos * neg), "log_loss": loss / n, "brier": brier / n}


def _regression(con: duckdb.DuckDBPyConnection, base: str,
                keys: list[str]) -> list[dict[str, Any]]:
    quoted = [duck.quote(k) for k in keys]
    lead = "".join(f"{k}, " for k in quoted)
    group = f"GROUP BY {', '.join(quoted)} ORDER BY {', '.join(quoted)}" if quoted else ""
    query = f"""
        SELECT {lead}count(*), sum((__y - __s) * (__y - __s)), sum(abs(__y - __s)),
               var_pop(__y) * count(*)
        FROM ({base}) {group}"""
    out = []
    for row in con.execute(query).fetchall():
        n, sse, sae, sst = row[len(keys):]
        if not n:
            continue
        out.append({**dict(zip(keys, row, strict=False)), "n": int(n),
                    "rmse": math.sqrt(sse / n), "mae": sae / n,
                    "r2": 1 - sse / sst if sst else None})
    return out


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _table(rows: list[dict[str, Any]], task: str, groups: list[str],
           window: str | None) -> pa.Table:
    import pyarrow as pa

    ts_type = pa.timestamp("us", tz="UTC")
    starts = [None if row.get("window_start") is None else
              shifted(EPOCH, dt.timedelta(microseconds=int(row["window_start"])),
                      field="window") for row in rows]
    ends: list[Any] = [None] * len(rows)
    if window:
        step = _timedelta(window)
        ends = [shifted(start, step, field="window") if start is not None else None
                for start in starts]
    columns: dict[str, Any] = {"window_start": pa.array(starts, ts_type),
                               "window_end": pa.array(ends, ts_type)}
    for name in groups:
        columns[name] = [row[name] for row in rows]
    columns["n"] = pa.array([row["n"] for row in rows], pa.int64())
    for metric in CLASSIFICATION if task == "classification" else REGRESSION:
        kind = pa.int64() if metric == "positives" else pa.float64()
        columns[metric] = pa.array([row[metric] for row in rows], kind)
    return pa.table(columns)


def _timedelta(window: str) -> Any:
    return parse_window(window)
