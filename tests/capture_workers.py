"""Entry points for the capture tests' spawned processes (deltalake panics in forked
children, so these run under multiprocessing's ``spawn`` context and must be importable)."""

from __future__ import annotations

import time
import traceback
from datetime import UTC, datetime
from typing import Any


def rows(prefix: str, n: int, **extra: list[Any]) -> Any:
    """n prediction rows with ids ``<prefix>-<i>`` and optional extra columns."""
    import pyarrow as pa

    columns: dict[str, Any] = {
        "prediction_id": [f"{prefix}-{i}" for i in range(n)],
        "ts": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
        "version": pa.array([1] * n, pa.int64()), "score": [0.5] * n,
        "label": pa.array([1] * n, pa.int64()), **extra}
    return pa.table(columns)


def race_first_writes(uri: str, worker: int, models: list[str], barrier: Any,
                      queue: Any) -> None:
    """For each model: wait for every worker, then append to its (not yet existing)
    predictions table twice."""
    try:
        from nbregistry.store.location import Location
        from nbregistry.store.monitoring import MonitorTable

        location = Location.parse(uri, None)
        for model in models:
            table = MonitorTable(location, model, "predictions")
            barrier.wait(60)
            table.append(rows(f"w{worker}-a", 5))
            table.append(rows(f"w{worker}-b", 5))
        queue.put((worker, None))
    except BaseException:  # the parent reports the child's traceback (a panic too)
        queue.put((worker, traceback.format_exc()))


def log_old_version_rows(uri: str, batches: int, started: Any, queue: Any) -> None:
    """Append ``batches`` batches of version-1 rows (no ``income`` column), one every
    20 ms, signalling after the first, while the parent adds a column."""
    try:
        from nbregistry.store.location import Location
        from nbregistry.store.monitoring import MonitorTable

        table = MonitorTable(Location.parse(uri, None), "credit_risk", "predictions")
        for k in range(batches):
            table.append(rows(f"v1-{k}", 10))
            started.set()
            time.sleep(0.02)
        queue.put(("v1", None))
    except BaseException:  # the parent reports the child's traceback (a panic too)
        queue.put(("v1", traceback.format_exc()))
