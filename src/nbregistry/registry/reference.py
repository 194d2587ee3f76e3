"""Freeze reference (training) data for monitoring baselines: schema plus a parquet blob."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..domain.errors import InvalidInputError

TARGET_COLUMN = "__target__"


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
            if f.name != TARGET_COLUMN]


def freeze(data: Any, target: Any) -> tuple[list[dict[str, str]], bytes | None, int]:
    """(feature schema, parquet bytes, rows) for ``reference_data`` and its target."""
    if data is None:
        if target is not None:
            raise InvalidInputError("reference_target needs reference_data as well",
                                    field="reference_target")
        return [], None, 0
    table = to_arrow(data, what="reference_data")
    if TARGET_COLUMN in table.column_names:
        raise InvalidInputError(f"reference_data may not have a column named {TARGET_COLUMN!r}",
                                field="reference_data")
    if target is not None:
        values = pa.array(target.to_numpy() if hasattr(target, "to_numpy") else list(target))
        if len(values) != table.num_rows:
            raise InvalidInputError(
                f"reference_target has {len(values)} values but reference_data has "
                f"{table.num_rows} rows; pass one target per row", field="reference_target")
        table = table.append_column(TARGET_COLUMN, values)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return features(table), buffer.getvalue(), table.num_rows


def thaw(data: bytes) -> pa.Table:
    return pq.ParquetFile(io.BytesIO(data)).read()
