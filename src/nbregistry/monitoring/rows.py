"""One logged row at a time, for the buffered logger: per-value checks by stored type, the
prediction's score and label, and the conversion of buffered rows to a predictions table.

A row is a tuple ``(id, ts_us, score, label, *features, *attributes)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from ..domain.errors import InvalidInputError
from ..store.monitoring import TS, kind_of
from . import convert
from .capture import FeatureSchema, prepare_predictions
from .convert import storage_type

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Row = tuple[Any, ...]


def checker(name: str, dtype: str) -> Callable[[Any], Any]:
    """A per-value check + light conversion for one feature, by its stored type."""
    target = storage_type(dtype)
    kind = "other" if target is None else kind_of(target)
    if kind == "float":
        def check(v: Any) -> Any:
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                return v
            return _bad(name, v, "a number")
    elif kind == "int":
        def check(v: Any) -> Any:
            if isinstance(v, numbers.Integral) and not isinstance(v, bool):
                return int(v)
            if isinstance(v, float) and (v != v or v.is_integer()):
                return None if v != v else int(v)
            return _bad(name, v, "an integer")
    elif kind == "string":
        def check(v: Any) -> Any:
            return v if isinstance(v, str) else _bad(name, v, "a string")
    elif kind == "bool":
        def check(v: Any) -> Any:
            return bool(v) if type(v).__name__ in {"bool", "bool_"} else _bad(name, v, "a bool")
    elif kind in {"timestamp", "date"}:
        expected = datetime if kind == "timestamp" else date

        def check(v: Any) -> Any:
            return v if isinstance(v, expected) else _bad(name, v, expected.__name__)
    else:
        raise InvalidInputError(f"feature {name!r} has dtype {dtype}, which the buffered logger "
                                "does not take; log such batches with log_predictions",
                                field=name)
    return check


def _bad(name: str, value: Any, expected: str) -> Any:
    if value is None:
        return None
    raise InvalidInputError(f"feature {name!r} = {value!r} ({type(value).__name__}) is not "
                            f"{expected}; nothing was logged", field=name, value=value)


def output(prediction: Any, label: Any, positive: int | None) -> tuple[float | None, int | None]:
    """(score, label) of one prediction: a score, a class, or class probabilities."""
    if isinstance(prediction, bool | numbers.Integral):
        return float(prediction), int(prediction) if label is None else int(label)
    if isinstance(prediction, numbers.Real):
        return float(prediction), None if label is None else int(label)
    if hasattr(prediction, "__len__") and not isinstance(prediction, str | bytes):
        probs = [float(p) for p in prediction]
        if len(probs) == 1:
            return probs[0], None if label is None else int(label)
        pos = positive if positive is not None else 1
        if (len(probs) > 2 and positive is None) or not 0 <= pos < len(probs):
            raise InvalidInputError(f"{len(probs)} class probabilities: create the buffer "
                                    "with positive=<column index>", field="positive")
        best = max(range(len(probs)), key=probs.__getitem__)
        return probs[pos], best if label is None else int(label)
    raise InvalidInputError(f"prediction {prediction!r} is not a score, a class or class "
                            "probabilities", field="prediction")



def micros(ts: datetime) -> int:
    if not isinstance(ts, datetime):
        raise InvalidInputError(f"ts must be a datetime, got {type(ts).__name__}", field="ts")
    return convert.micros(ts)  # checked in log(), not at the flush




def rows_table(rows: Sequence[Row], *, schema: FeatureSchema, version: int,
               attributes: Sequence[str]) -> pa.Table:
    """The predictions table of buffered rows (raises when they do not convert)."""
    names = [entry["name"] for entry in schema]
    columns = list(zip(*rows, strict=True))
    features = pa.table({name: pa.array(columns[4 + i], from_pandas=True)
                         for i, name in enumerate(names)})
    extra = {name: pa.array(columns[4 + len(names) + i], from_pandas=True)
             for i, name in enumerate(attributes)}
    return prepare_predictions(
        features, pa.array(columns[2], pa.float64()), schema=schema, version=version,
        ids=pa.array(columns[0], pa.string()), ts=pa.array(columns[1], pa.int64()).cast(TS),
        labels=pa.array(columns[3], pa.int64()),
        attributes=pa.table(extra) if extra else None).table
