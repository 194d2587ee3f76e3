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
