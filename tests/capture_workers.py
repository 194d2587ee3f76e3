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


def log_scored_batches(uri: str, options: dict[str, str] | None, worker: int, batches: int,
                       size: int, barrier: Any, queue: Any) -> None:
    """Open the registry (with ``options``, or from the environment when None), wait for
    every worker, then log ``batches`` batches of ``size`` scored rows of credit data with
    ids ``w<worker>-<batch>-<i>`` (worker 0 row by row through the buffered logger); put
    (worker, None) or (worker, traceback) on ``queue``."""
    try:
        import nbregistry as nbr
        from nbregistry.demo import credit_data

        reg = nbr.open_registry(uri, user=f"scorer-{worker}", storage_options=options,
                                create=False)
        model = reg.load("credit@champion")
        mon = reg.monitor("credit")
        features = list(model.feature_names_in_)
        data = credit_data(batches * size, seed=100 + worker)
        scores = model.predict_proba(data[features])
        barrier.wait(60)
        if worker == 0:  # a scoring service: the buffered logger, one row at a time
            with mon.logger(attributes=["sex"], flush_rows=size) as logger:
                for k, row in enumerate(data.to_dict("records")):
                    logger.log({f: row[f] for f in features}, scores[k].tolist(),
                               id=f"w0-{k // size}-{k % size}",
                               attributes={"sex": row["sex"]})
            stats = logger.stats()
            assert stats.dropped == 0 and stats.pending == 0, stats
        else:  # a batch job
            for b in range(batches):
                frame = data.iloc[b * size:(b + 1) * size]
                mon.log_predictions(frame, scores[b * size:(b + 1) * size],
                                    ids=[f"w{worker}-{b}-{i}" for i in range(len(frame))],
                                    attributes=["sex"])
        queue.put((worker, None))
    except BaseException:  # the parent reports the child's traceback (a panic too)
        queue.put((worker, traceback.format_exc()))
