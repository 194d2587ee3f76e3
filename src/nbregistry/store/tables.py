"""Facts about other Delta tables (lineage): their URI and the exact version read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from . import forkguard


def delta_version(uri: str, storage_options: Mapping[str, str] | None = None) -> int | None:
    """The current version of a Delta table, or None when ``uri`` is not a Delta table."""
    from deltalake import DeltaTable

    def run() -> int | None:
        try:
            if not DeltaTable.is_deltatable(uri, storage_options=dict(storage_options or {})):
                return None
        except OSError:  # a plain file, or an unreachable path
            return None
        return int(DeltaTable(uri, storage_options=dict(storage_options or {})).version())

    return forkguard.guarded(run)


def write_table(uri: str, data: Any, *, mode: Literal["overwrite", "append", "error"] = "overwrite",
                storage_options: Mapping[str, str] | None = None) -> int:
    """Write an Arrow table or DataFrame as a Delta table; returns the new version."""
    from deltalake import DeltaTable, write_deltalake

    def run() -> int:
        write_deltalake(uri, data, mode=mode,
                        storage_options=dict(storage_options or {}) or None)
        return int(DeltaTable(uri, storage_options=dict(storage_options or {}) or None).version())

    return forkguard.guarded(run)


def read_table(uri: str, *, version: int | None = None, columns: list[str] | None = None,
               storage_options: Mapping[str, str] | None = None) -> tuple[Any, int]:
    """A Delta table at ``version`` (default: the newest) as Arrow, and the version read.

    The data files of that version are read one by one with pyarrow (see ``snapshot``: no
    ``to_pyarrow_dataset``); partition values come from the Delta log."""
    import io
    from urllib.parse import unquote

    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from ..domain.errors import NotFoundError
    from .location import Location

    options = dict(storage_options or {}) or None

    def run() -> tuple[Any, int]:
        try:
            found = DeltaTable.is_deltatable(uri, storage_options=options)
        except OSError:  # a plain file, or an unreachable path
            found = False
        if not found:
            raise NotFoundError(f"{uri} is not a Delta table", ref=uri)
        dt = DeltaTable(uri, version=version, storage_options=options)
        schema = pa.schema(dt.schema().to_arrow())
        actions = pa.table(dt.get_add_actions(flatten=True))
        location = Location.parse(uri, storage_options)
        parts = []
        for i, path in enumerate(actions["path"].to_pylist()):
            data = location.read_bytes(unquote(path))
            part = pq.read_table(io.BytesIO(data))
            for name in schema.names:
                if name not in part.column_names:  # a partition column: its value is in the log
                    value = actions[f"partition.{name}"][i].as_py() \
                        if f"partition.{name}" in actions.column_names else None
                    part = part.append_column(name, pa.array([value] * part.num_rows))
            parts.append(part.select(schema.names).cast(schema))
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        return (table.select(columns) if columns else table), int(dt.version())

    return forkguard.guarded(run)
