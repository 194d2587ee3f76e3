"""Capture: check and convert what a scoring service logs into monitoring-table rows.

Runs with the lean install (pyarrow, deltalake, obstore): pandas, polars and numpy objects
are accepted when the caller passes them, never imported here.

Predictions (:func:`prepare_predictions`, :func:`log_predictions`):

- ``features``: a pandas, polars or Arrow table (or a mapping of columns). Every column of
  the version's feature schema must be present with a compatible type, else
  ``InvalidInputError`` names the column and nothing is written. Compatible means a safe
  widening into the stored type: integers -> int64, integers/floats -> double, strings and
  string categoricals -> string; floats holding whole numbers (a pandas int column with
  missing values) -> int64. A string where a number is expected is refused.
- **Extra columns** (not in the schema) are *not* logged: they are listed in the receipt's
  ``ignored_columns``. Keep one by naming it in ``attributes=["segment"]``.
- NaN and ±inf in features (and in the score) are stored as null, counted per column in the
  receipt (``nonfinite``, and ``missing`` = all nulls after that): a missing-rate signal,
  not a crash.
- ``predictions``: a 1-D sequence, or 2-D ``predict_proba`` output (numpy array, list of
  lists, a table with one column per class). 2-D: ``score`` is the positive class's column
  (``positive``, default 1 for two classes, required for more) and ``label`` the arg-max
  column index unless ``labels`` is given. 1-D integers or bools: they are the labels, and
  the score is the same value as a double. 1-D floats: the score (a probability, or the
  regressor's prediction); ``label`` is ``labels`` or null. Labels are integer class codes:
  strings are refused (encode classes as integers; keep the mapping in the model card).
- ``ids``: one per row, unique within the batch (else an error); integers become strings.
  Default: fresh time-ordered ids (UUIDv7 layout as 32 hex characters) so id lookups prune
  files by their min/max statistics. Duplicates *across* batches are not checked at log time.
- ``ts``: one datetime for all rows, or one per row; naive means UTC; default now.
  Out-of-order timestamps are fine (several servers log concurrently).

Outcomes (:func:`prepare_outcomes`, :func:`log_outcomes`): ``actual`` is a double (class
0/1/…, or the regression target); a missing actual is refused (log it once it is known).
Each batch is screened against the tables: an id seen twice in the batch or already having
an outcome is a **duplicate: not written**, counted (the first outcome wins; corrections
are not supported in an append-only log). An id with no logged prediction is **unknown:
written and counted** — its prediction may still sit in a serving process's buffer, and the
join ignores it until one appears. Two processes logging the same id at the same moment can
both pass the screen: readers should keep the earliest outcome per id.

Maturity: an outcome is due ``maturity_days`` after its prediction; :func:`maturity_filter`
gives the SQL condition for predictions old enough to be judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..domain.errors import InvalidInputError
from ..domain.timefmt import utc
from ..domain.validate import version_number
from ..store.monitoring import RESERVED, MonitoringTables, MonitorTable, kind_of
from ..store.snapshot import sql_timestamp
from .convert import (
    canonical,
    convert,
    id_column,
    prediction_ids,
    storage_type,
    timestamps,
    to_array,
    to_table,
)

FeatureSchema = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class PreparedPredictions:
    """Rows ready for the predictions table, and what was noticed on the way."""

    table: pa.Table
    ignored_columns: tuple[str, ...] = ()
    missing: Mapping[str, int] = field(default_factory=dict)
    nonfinite: Mapping[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def ids(self) -> pa.Array:
        return self.table["prediction_id"].combine_chunks()


@dataclass(frozen=True)
class PredictionReceipt:
    """What :func:`log_predictions` wrote: rows, their ids, the Delta version."""

    rows: int
    version: int
    table_version: int
    ids: pa.Array
    ignored_columns: tuple[str, ...]
    missing: Mapping[str, int]
    nonfinite: Mapping[str, int]


@dataclass(frozen=True)
class OutcomeReceipt:
    """What :func:`log_outcomes` did with each outcome it received."""

    received: int
    written: int
    unknown: int                     # written; no prediction with that id (yet)
    duplicates: int                  # not written: the id repeats within the batch
    already_recorded: int            # not written: the id already has an outcome
    table_version: int
    unknown_ids: tuple[str, ...] = ()     # up to 10 examples
    duplicate_ids: tuple[str, ...] = ()   # up to 10 examples (either kind of duplicate)




# -- predictions --------------------------------------------------------------------------

def prepare_predictions(features: Any, predictions: Any, *, schema: FeatureSchema | None,
                        version: int, ids: Any = None, ts: Any = None, attributes: Any = None,
                        labels: Any = None, positive: int | None = None) -> PreparedPredictions:
    """Check and convert one batch (see the module docstring); nothing is written.

    ``schema`` is the version's feature schema recorded at register (``[{"name", "dtype"}]``,
    dtype a pyarrow type string); None takes every column of ``features`` (minus named
    attributes) as a feature, in its canonical type.
    """
    version = version_number(version)
    table = to_table(features, what="features")
    n = table.num_rows
    taken = _attribute_names(attributes)
    specs = _feature_specs(schema, table, exclude=taken)
    absent = [name for name, _, _ in specs if name not in table.column_names]
    if absent:
        raise InvalidInputError(
            f"features lack column(s) {absent} of version {version}'s feature schema "
            f"(expected {[name for name, _, _ in specs]})", field=absent[0])
    nonfinite: dict[str, int] = {}
    columns = {name: _feature(table[name].combine_chunks(), name, target, dtype, version,
                              nonfinite) for name, target, dtype in specs}
    score, label = outputs(predictions, n, labels=labels, positive=positive,
                           nonfinite=nonfinite)
    attrs = _attributes(attributes, table, set(columns), nonfinite)
    ts_column = timestamps(ts, n)
    out = pa.table({"prediction_id": prediction_ids(ids, ts_column), "ts": ts_column,
                    "version": pa.repeat(pa.scalar(version, pa.int64()), n), **columns,
                    "score": score, "label": label, **attrs})
    used = set(columns) | set(taken)
    ignored = tuple(c for c in table.column_names if c not in used)
    missing = {name: out[name].null_count for name in [*columns, "score"]}
    return PreparedPredictions(out, ignored, missing, nonfinite)


def log_predictions(table: MonitorTable, features: Any, predictions: Any, *,
                    schema: FeatureSchema | None, version: int, ids: Any = None, ts: Any = None,
                    attributes: Any = None, labels: Any = None,
                    positive: int | None = None) -> PredictionReceipt:
    """:func:`prepare_predictions`, then one append to ``table``."""
    prepared = prepare_predictions(features, predictions, schema=schema, version=version,
                                   ids=ids, ts=ts, attributes=attributes, labels=labels,
                                   positive=positive)
    table_version = table.append(prepared.table)
    return PredictionReceipt(
        rows=prepared.rows, version=int(prepared.table["version"][0].as_py())
        if prepared.rows else version_number(version), table_version=table_version,
        ids=prepared.ids, ignored_columns=prepared.ignored_columns,
        missing=prepared.missing, nonfinite=prepared.nonfinite)


def _feature_specs(schema: FeatureSchema | None, table: pa.Table, *, exclude: Sequence[str]
                   ) -> list[tuple[str, pa.DataType | None, str]]:
    if schema is None:
        return [(f.name, storage_type(str(f.type)), str(f.type)) for f in table.schema
                if f.name not in exclude]
    specs = []
    for entry in schema:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("dtype"), str):
            raise InvalidInputError(f"feature schema entries are {{'name': str, 'dtype': str}}, "
                                    f"got {entry!r}", field="schema")
        specs.append((entry["name"], storage_type(entry["dtype"]), entry["dtype"]))
    names = [name for name, _, _ in specs]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"feature schema repeats a name: {names}", field="schema")
    clash = sorted(set(names) & RESERVED)
    if clash:
        raise InvalidInputError(f"feature(s) {clash} use names the predictions table reserves "
                                f"({sorted(RESERVED)}); rename them", field=clash[0])
    return specs


def _feature(column: pa.Array, name: str, target: pa.DataType | None, dtype: str, version: int,
             nonfinite: dict[str, int]) -> pa.Array:
    expected = f"version {version}'s feature schema says {dtype}"
    if target is None:
        if str(column.type) != dtype:
            raise InvalidInputError(f"column {name!r} is {column.type} but {expected} expects "
                                    f"exactly {dtype}", field=name)
        return column
    return convert(column, target, name=name, expected=expected, nonfinite=nonfinite)


def _attribute_names(attributes: Any) -> tuple[str, ...]:
    if isinstance(attributes, str):
        return (attributes,)
    if isinstance(attributes, Sequence) and attributes and all(
            isinstance(a, str) for a in attributes):
        return tuple(attributes)
    return ()


def _attributes(attributes: Any, table: pa.Table, features: set[str],
                nonfinite: dict[str, int]) -> dict[str, pa.Array]:
    if attributes is None:
        return {}
    names = _attribute_names(attributes)
    if names:
        absent = [a for a in names if a not in table.column_names]
        if absent:
            raise InvalidInputError(f"attributes {absent} are not columns of features",
                                    field=absent[0])
        source = table.select(list(names))
    else:
        source = to_table(attributes, what="attributes")
        if source.num_rows != table.num_rows:
            raise InvalidInputError(f"attributes has {source.num_rows} rows for "
                                    f"{table.num_rows} predictions", field="attributes")
    out = {}
    for name in source.column_names:
        if name in RESERVED or name in features:
            why = "a reserved column" if name in RESERVED else "already logged as a feature"
            raise InvalidInputError(f"attribute {name!r} is {why}; rename it", field=name)
        out[name] = canonical(source[name].combine_chunks(), name=name, nonfinite=nonfinite)
    return out


def outputs(predictions: Any, n: int, *, labels: Any = None, positive: int | None = None,
            nonfinite: dict[str, int]) -> tuple[pa.Array, pa.Array]:
    """(score, label) from 1-D predictions or 2-D class probabilities."""
    classes = _class_columns(predictions)
    if classes is not None:
        if any(len(c) != n for c in classes):
            raise InvalidInputError(f"predictions has {len(classes[0])} rows for {n} feature "
                                    "rows", field="predictions")
        score = convert(classes[_positive(len(classes), positive)], pa.float64(), name="score",
                        expected="a probability", nonfinite=nonfinite)
        return score, (_labels(labels, n) if labels is not None else _argmax(classes))
    column = to_array(predictions, what="predictions")
    if len(column) != n:
        raise InvalidInputError(f"predictions has {len(column)} values for {n} feature rows; "
                                "pass one per row", field="predictions")
    kind = kind_of(column.type)
    if kind in {"int", "bool"}:
        label = _labels(labels if labels is not None else column, n)
        return convert(pc.cast(column, pa.int64()), pa.float64(), name="score",
                       expected="a score", nonfinite=nonfinite), label
    if kind not in {"float", "null"}:
        raise InvalidInputError(
            f"predictions are {column.type}: log a score (probability or regression value) "
            "or integer class codes; encode string classes as integers", field="predictions")
    score = convert(column, pa.float64(), name="score", expected="a score",
                    nonfinite=nonfinite)
    return score, (_labels(labels, n) if labels is not None else pa.nulls(n, pa.int64()))


def _class_columns(predictions: Any) -> list[pa.Array] | None:
    """One array per class for 2-D input, else None."""
    if getattr(predictions, "ndim", 1) == 2:
        values = predictions.to_numpy() if hasattr(predictions, "to_numpy") else predictions
        return [to_array(values[:, j], what="predictions") for j in range(values.shape[1])]
    if isinstance(predictions, (pa.Table, pa.RecordBatch)) or (
            hasattr(predictions, "__arrow_c_stream__") and hasattr(predictions, "columns")):
        return [c.combine_chunks() for c in to_table(predictions, what="predictions").columns]
    nested = isinstance(predictions, (list, tuple)) and bool(predictions) and isinstance(
        predictions[0], (list, tuple))
    if nested or isinstance(predictions, (pa.ListArray, pa.FixedSizeListArray)):
        column = to_array(predictions, what="predictions")
        lengths = pc.min_max(pc.list_value_length(column))
        if lengths["min"] != lengths["max"]:
            raise InvalidInputError("predictions rows have different numbers of classes",
                                    field="predictions")
        return [pc.list_element(column, j) for j in range(int(lengths["max"].as_py() or 0))]
    return None


def _positive(classes: int, positive: int | None) -> int:
    if classes == 1:
        return 0
    if positive is None:
        if classes == 2:
            return 1
        raise InvalidInputError(f"predictions have {classes} class columns: pass positive=<column "
                                "index> to say which probability is the score", field="positive")
    if isinstance(positive, bool) or not isinstance(positive, int) \
            or not 0 <= positive < classes:
        raise InvalidInputError(f"positive must be a column index in 0..{classes - 1}, got "
                                f"{positive!r}", field="positive")
    return positive


def _labels(labels: Any, n: int) -> pa.Array:
    column = to_array(labels, what="labels")
    if len(column) != n:
        raise InvalidInputError(f"labels has {len(column)} values for {n} rows",
                                field="labels")
    if kind_of(column.type) == "bool":
        column = pc.cast(column, pa.int64())
    if kind_of(column.type) not in {"int", "float", "null"}:
        raise InvalidInputError(f"labels are {column.type}: labels are integer class codes; "
                                "encode string classes as integers", field="labels")
    return convert(column, pa.int64(), name="label", expected="integer class codes",
                   nonfinite={})


def _argmax(classes: list[pa.Array]) -> pa.Array:
    best = pc.cast(classes[0], pa.float64())
    index = pa.repeat(pa.scalar(0, pa.int64()), len(best))
    for j, column in enumerate(classes[1:], start=1):
        column = pc.cast(column, pa.float64())
        greater = pc.fill_null(pc.greater(column, best), False)
        best = pc.if_else(greater, column, best)
        index = pc.if_else(greater, pa.scalar(j, pa.int64()), index)
    return index


# -- outcomes -----------------------------------------------------------------------------

def prepare_outcomes(ids: Any, actuals: Any, *, ts: Any = None) -> pa.Table:
    """Rows for the outcomes table: ``prediction_id``, ``ts``, ``actual`` (double)."""
    column = to_array(actuals, what="actuals")
    id_values = id_column(ids, len(column))
    kind = kind_of(column.type)
    if kind not in {"int", "bool", "float", "null"}:
        raise InvalidInputError(f"actuals are {column.type}: outcomes are numbers (class codes "
                                "0/1/… or the target value)", field="actuals")
    actual = pc.cast(column, pa.float64())
    bad = pc.invert(pc.fill_null(pc.is_finite(actual), False))
    if pc.any(bad).as_py():
        example = id_values.filter(bad)[0].as_py()
        raise InvalidInputError(
            f"{pc.sum(bad).as_py()} actual(s) are missing or not finite (e.g. for id "
            f"{example!r}): log an outcome once it is known", field="actuals")
    return pa.table({"prediction_id": id_values, "ts": timestamps(ts, len(column)),
                     "actual": actual})


def screen_outcomes(batch: pa.Table, *, predictions: MonitorTable,
                    outcomes: MonitorTable) -> tuple[pa.Table, OutcomeReceipt]:
    """(rows to write, receipt): duplicates dropped and counted, unknown ids counted."""
    if predictions.version() < 0:
        raise InvalidInputError(f"no predictions were logged in {predictions.uri}: log "
                                "predictions before their outcomes", field="ids")
    ids = batch["prediction_id"].combine_chunks()
    indexed = pa.table({"id": ids, "i": pa.array(range(len(ids)), pa.int64())})
    firsts = indexed.group_by("id", use_threads=False).aggregate([("i", "min")])["i_min"]
    unique = batch.take(pc.take(firsts, pc.sort_indices(firsts)))
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    recorded = outcomes.find_ids(unique["prediction_id"])
    fresh = unique.filter(pc.invert(pc.is_in(unique["prediction_id"], value_set=recorded)))
    known = predictions.find_ids(fresh["prediction_id"])
    unknown = fresh["prediction_id"].filter(
        pc.invert(pc.is_in(fresh["prediction_id"], value_set=known)))
    receipt = OutcomeReceipt(
        received=batch.num_rows, written=fresh.num_rows, unknown=len(unknown),
        duplicates=batch.num_rows - unique.num_rows, already_recorded=len(recorded),
        table_version=-1, unknown_ids=tuple(unknown.slice(0, 10).to_pylist()),
        duplicate_ids=tuple([*repeated.slice(0, 10).to_pylist(),
                             *recorded.slice(0, 10).to_pylist()][:10]))
    return fresh, receipt


def log_outcomes(tables: MonitoringTables, ids: Any, actuals: Any, *,
                 ts: Any = None) -> OutcomeReceipt:
    """Prepare, screen against the model's tables, append what is new."""
    fresh, receipt = screen_outcomes(prepare_outcomes(ids, actuals, ts=ts),
                                     predictions=tables.predictions, outcomes=tables.outcomes)
    return replace(receipt, table_version=tables.outcomes.append(fresh))


# -- maturity -----------------------------------------------------------------------------

def matured_before(maturity_days: float, *, now: datetime | None = None) -> datetime:
    """Predictions made at or before this instant have had ``maturity_days`` to resolve."""
    if isinstance(maturity_days, bool) or not isinstance(maturity_days, (int, float)) \
            or not math.isfinite(maturity_days) or maturity_days < 0:
        raise InvalidInputError(f"maturity_days must be a number >= 0, got {maturity_days!r}",
                                field="maturity_days")
    current = datetime.now(UTC) if now is None else utc(now)
    return current - timedelta(days=maturity_days)


def maturity_filter(maturity_days: float, *, now: datetime | None = None,
                    column: str = "ts") -> str:
    """SQL condition selecting matured predictions, e.g. ``p.ts <= TIMESTAMPTZ '…'``."""
    return f"{column} <= {sql_timestamp(matured_before(maturity_days, now=now))}"
