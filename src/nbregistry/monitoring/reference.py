"""Freeze reference (training) data for monitoring baselines: schema plus a parquet blob."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..domain.errors import InvalidInputError

TARGET_COLUMN = "__target__"
SCORE_COLUMN = "__score__"  # the model's own score on each reference row (for score drift)
RESERVED = (TARGET_COLUMN, SCORE_COLUMN)


def to_arrow(data: Any, *, what: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "__dataframe__") or type(data).__module__.startswith("pandas"):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except Exception as exc:
            raise InvalidInputError(f"{what} could not be converted to Arrow: {exc}",
                                    field=what) from exc
    raise InvalidInputError(f"{what} must be a pandas DataFrame or a pyarrow Table, got "
                            f"{type(data).__name__}", field=what)


def features(table: pa.Table) -> list[dict[str, str]]:
    return [{"name": f.name, "dtype": str(f.type)} for f in table.schema
            if f.name not in RESERVED]


def model_scores(model: Any, data: Any) -> pa.Array | None:
    """The positive-class probability (binary classifiers) or the prediction (regressors)
    on ``data``; None when the model can't say (multi-class, non-numeric, or it fails)."""
    try:
        if hasattr(model, "predict_proba"):
            proba = model.predict_proba(data)
            if getattr(proba, "ndim", 0) != 2 or proba.shape[1] != 2:
                return None
            values = pa.array(proba[:, 1], pa.float64())
        else:
            values = pa.array(model.predict(data)).cast(pa.float64())
    except Exception:  # a scoring failure must not stop a registration
        return None
    return values if len(values) == len(data) else None


def freeze(data: Any, target: Any, model: Any = None
           ) -> tuple[list[dict[str, str]], bytes | None, int, bool]:
    """(feature schema, parquet bytes, rows, has scores) for ``reference_data``, its target
    and the model's scores on it."""
    if data is None:
        if target is not None:
            raise InvalidInputError("reference_target needs reference_data as well",
                                    field="reference_target")
        return [], None, 0, False
    table = to_arrow(data, what="reference_data")
    for reserved in RESERVED:
        if reserved in table.column_names:
            raise InvalidInputError(f"reference_data may not have a column named {reserved!r}",
                                    field="reference_data")
    if target is not None:
        values = pa.array(target.to_numpy() if hasattr(target, "to_numpy") else list(target))
        if len(values) != table.num_rows:
            raise InvalidInputError(
                f"reference_target has {len(values)} values but reference_data has "
                f"{table.num_rows} rows; pass one target per row", field="reference_target")
        table = table.append_column(TARGET_COLUMN, values)
    scores = model_scores(model, data) if model is not None else None
    if scores is not None:
        table = table.append_column(SCORE_COLUMN, scores)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return features(table), buffer.getvalue(), table.num_rows, scores is not None


def thaw(data: bytes) -> pa.Table:
    return pq.ParquetFile(io.BytesIO(data)).read()
