"""Facts about other Delta tables (lineage): their URI and the exact version read."""

from __future__ import annotations

from collections.abc import Mapping

from . import forkguard


def delta_version(uri: str, storage_options: Mapping[str, str] | None = None) -> int | None:
    """The current version of a Delta table, or None when ``uri`` is not a Delta table."""
    from deltalake import DeltaTable

    def run() -> int | None:
        if not DeltaTable.is_deltatable(uri, storage_options=dict(storage_options or {})):
            return None
        return int(DeltaTable(uri, storage_options=dict(storage_options or {})).version())

    return forkguard.guarded(run)
