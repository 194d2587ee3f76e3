"""Conversions for capture: any dataframe/array in, Arrow columns of the stored types out.

No pandas, polars or numpy import: their objects are converted through Arrow's protocols.
"""

from __future__ import annotations

import array
import binascii
import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..domain.errors import InvalidInputError
from ..domain.timefmt import EARLIEST, LATEST, utc
from ..store.monitoring import TS, kind_of

_V7 = bytes((b & 0x0F) | 0x70 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
_ID_CHUNK = 1 << 20


# -- conversion helpers -------------------------------------------------------------------

def to_table(data: Any, *, what: str) -> pa.Table:
    """pandas, polars, Arrow or a mapping of columns as an Arrow table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        if type(data).__module__.split(".")[0] == "pandas":
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, Mapping):
            return pa.table({str(k): to_array(v, what=f"{what}[{k!r}]")
                             for k, v in data.items()})
        if hasattr(data, "__arrow_c_stream__"):
            return pa.table(data)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} could not be converted to Arrow: {exc}",
                                field=what) from exc
    raise InvalidInputError(f"{what} must be a pandas/polars DataFrame, a pyarrow Table or a "
                            f"mapping of columns, got {type(data).__name__}", field=what)


def to_array(data: Any, *, what: str) -> pa.Array:
    """A 1-D sequence (list, numpy, pandas/polars Series, Arrow) as one Arrow array."""
    try:
        if isinstance(data, pa.ChunkedArray):
            return data.combine_chunks()
        if isinstance(data, pa.Array):
            return data
        if hasattr(data, "__arrow_c_stream__") and not hasattr(data, "__arrow_c_array__"):
            return pa.chunked_array(data).combine_chunks()
        if isinstance(data, (str, bytes)) or not hasattr(data, "__len__"):
            raise TypeError(f"expected a sequence, got {type(data).__name__}")
        return pa.array(data)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} could not be read as a column: {exc}",
                                field=what) from exc


def storage_type(dtype: str) -> pa.DataType | None:
    """The stored type for a schema dtype string (``str(pa_type)``); None: store as-is."""
    text = dtype.strip().lower()
    if text in {"double", "float", "halffloat", "float64", "float32", "float16"}:
        return pa.float64()
    if text.startswith(("int", "uint")) and text.rstrip("0123456789") in {"int", "uint"}:
        return pa.int64()
    if text in {"bool", "boolean"}:
        return pa.bool_()
    if text in {"string", "large_string", "utf8", "large_utf8", "string_view", "str"}:
        return pa.string()
    if text.startswith("dictionary<values=") and "string" in text.split(",")[0]:
        return pa.string()
    if text.startswith("date"):
        return pa.date32()
    if text.startswith("timestamp"):
        return TS
    return None


def _finite(column: pa.Array, name: str, nonfinite: dict[str, int]) -> pa.Array:
    """NaN and ±inf as null, counted."""
    finite = pc.is_finite(column)
    bad = len(column) - column.null_count - int(pc.sum(finite).as_py() or 0)
    nonfinite[name] = bad
    return pc.if_else(finite, column, None) if bad else column


def convert(column: pa.Array, target: pa.DataType, *, name: str, expected: str,
            nonfinite: dict[str, int]) -> pa.Array:
    """``column`` as ``target`` if the conversion is safe, else InvalidInputError."""
    source = kind_of(column.type)
    wanted = kind_of(target)
    if len(column) == 0:  # no values to lose; empty pandas columns have arbitrary dtypes
        return pa.array([], target)
    if column.type.equals(target) and wanted != "float":
        return column
    ok = (source == "null" or source == wanted != "other"
          or (source in {"int", "float"} and wanted in {"int", "float"})
          or (source == "timestamp" and wanted == "date"))
    if not ok:
        raise InvalidInputError(
            f"column {name!r} is {column.type} but must be {target} ({expected}); convert "
            f"it (e.g. df[{name!r}].astype(...)) before logging", field=name)
    try:
        if source == "float":
            if not column.type.equals(pa.float64()):
                column = pc.cast(column, pa.float64())
            column = _finite(column, name, nonfinite)
            if target.equals(pa.float64()):
                return column
        if wanted == "timestamp" and column.type.tz is None:
            column = pc.cast(column, pa.timestamp(column.type.unit, tz="UTC"))
        out = pc.cast(column, target, safe=wanted not in {"timestamp", "date"})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        detail = ("it holds non-integer numbers" if source == "float" and wanted == "int"
                  else str(exc))
        raise InvalidInputError(f"column {name!r} does not fit {target} ({expected}): "
                                f"{detail}; nothing was logged", field=name) from exc
    if wanted == "float" and name not in nonfinite:
        out = _finite(out, name, nonfinite)
    return out


def canonical(column: pa.Array, *, name: str, nonfinite: dict[str, int]) -> pa.Array:
    """An attribute or inferred feature in the stored type for its kind."""
    targets = {"int": pa.int64(), "float": pa.float64(), "string": pa.string(),
               "timestamp": TS, "date": pa.date32(), "bool": pa.bool_()}
    target = targets.get(kind_of(column.type))
    if target is None:
        return column
    return convert(column, target, name=name, expected="the monitoring table",
                   nonfinite=nonfinite)


# -- ids and timestamps -------------------------------------------------------------------

def new_id(us: int | None = None) -> str:
    """One time-ordered id: UUIDv7 bit layout (48-bit ms time, version 7, random), hex."""
    ms = (time.time_ns() // 1_000_000 if us is None else us // 1000) & 0xFFFFFFFFFFFF
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) << 64) | (0b10 << 62) | (rand & (2**62 - 1))
    return format(value, "032x")


def new_ids(ts: pa.Array) -> pa.Array:
    """One fresh id per timestamp, built in bulk (100k ids in a few ms)."""
    pieces = [_id_chunk(ts.slice(i, _ID_CHUNK)) for i in range(0, len(ts), _ID_CHUNK)]
    return pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())


def _id_chunk(ts: pa.Array) -> pa.Array:
    n = len(ts)
    ms = pc.divide(pc.cast(ts, pa.int64()), 1000)
    buf = bytearray(os.urandom(16 * n))
    bounds = pc.min_max(ms)
    if bounds["min"] == bounds["max"]:
        prefix = (int(ms[0].as_py()) & 0xFFFFFFFFFFFF).to_bytes(6, "big")
        for k in range(6):
            buf[k::16] = prefix[k:k + 1] * n
    else:
        big = array.array("q")
        big.frombytes(memoryview(ms.buffers()[1])[ms.offset * 8:(ms.offset + n) * 8])
        if sys.byteorder == "little":
            big.byteswap()
        raw = big.tobytes()
        for k in range(6):
            buf[k::16] = raw[k + 2::8]
    buf[6::16] = bytes(buf[6::16]).translate(_V7)
    buf[8::16] = bytes(buf[8::16]).translate(_VARIANT)
    text = pa.py_buffer(binascii.hexlify(buf))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, text]).cast(pa.string())


def timestamps(ts: Any, n: int) -> pa.Array:
    """``n`` UTC microsecond timestamps from None (now), one datetime or a sequence, between
    ``EARLIEST`` and ``LATEST`` (windows around them must be representable)."""
    if ts is None or isinstance(ts, datetime):
        us = time.time_ns() // 1000 if ts is None else micros(ts)
        return pa.repeat(pa.scalar(us, pa.int64()), n).cast(TS)
    column = to_array(ts, what="ts")
    if len(column) != n:
        raise InvalidInputError(f"ts has {len(column)} values for {n} rows: pass one per row "
                                "or a single datetime", field="ts")
    if kind_of(column.type) != "timestamp":
        raise InvalidInputError(f"ts must hold datetimes, got {column.type}; parse strings "
                                "first (e.g. pd.to_datetime)", field="ts")
    if column.null_count:
        raise InvalidInputError(f"ts has {column.null_count} missing value(s); every row "
                                "needs a time", field="ts")
    column = convert(column, TS, name="ts", expected="the monitoring table", nonfinite={})
    low, high = pc.min_max(column.cast(pa.int64())).values()
    for us in (low.as_py(), high.as_py()):
        if us is not None:
            in_range(us)
    return column


def micros(ts: datetime) -> int:
    """Microseconds since the epoch of a datetime (naive means UTC), within the range."""
    try:
        aware = utc(ts)
    except OverflowError:  # the offset pushes it past the calendar's edge
        return in_range(_RANGE[1] if ts.year > 1 else _RANGE[0] - 1)
    return in_range((aware - _EPOCH) // timedelta(microseconds=1))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RANGE = ((EARLIEST - _EPOCH) // timedelta(microseconds=1),
          (LATEST - _EPOCH) // timedelta(microseconds=1))


def in_range(us: int) -> int:
    """``us`` (microseconds since the epoch) when it is a time rows may be logged at."""
    if not _RANGE[0] <= us < _RANGE[1]:
        when = "after 9998" if us >= _RANGE[1] else "before 0001-01-02"
        raise InvalidInputError(f"ts holds a time {when}: windows and day partitions around "
                                "it cannot be represented; log the real time of each row",
                                field="ts")
    return us


def id_column(ids: Any, n: int) -> pa.Array:
    """Caller-supplied ids as strings (integers converted), one per row, none missing."""
    column = to_array(ids, what="ids")
    if len(column) != n:
        raise InvalidInputError(f"ids has {len(column)} values for {n} rows; pass one id per "
                                "row", field="ids")
    if kind_of(column.type) not in {"string", "int", "null"}:
        raise InvalidInputError(f"ids must be strings or integers, got {column.type}",
                                field="ids")
    column = pc.cast(column, pa.string())
    if column.null_count:
        raise InvalidInputError(f"ids has {column.null_count} missing value(s)", field="ids")
    return column


def prediction_ids(ids: Any, ts: pa.Array) -> pa.Array:
    """Fresh ids, or the caller's (unique within the batch)."""
    if ids is None:
        return new_ids(ts)
    column = id_column(ids, len(ts))
    no_duplicates(column, what="ids")
    return column


def no_duplicates(column: pa.Array, *, what: str) -> None:
    if len(column) and pc.count_distinct(column).as_py() != len(column):
        counts = pc.value_counts(column)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1))
        example = repeated[0]["values"].as_py()
        raise InvalidInputError(f"{what} holds {len(repeated)} duplicated value(s), e.g. "
                                f"{example!r}; each prediction needs its own id", field=what)
