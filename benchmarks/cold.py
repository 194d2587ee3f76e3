"""One cold measurement in a fresh interpreter; prints one JSON line.

    python cold.py nbregistry-import
    python cold.py nbregistry-open /path/to/registry
    python cold.py nbregistry-imported /path/to/registry /path/to/another/registry
    python cold.py mlflow-import
    python cold.py mlflow-open sqlite:////path/to/mlflow.db
    python cold.py mlflow-imported sqlite:////path/to/mlflow.db sqlite:////path/to/other.db

``*-import`` times the top-level import alone. ``*-open`` times it too, then (as
``open_resolve_s``) opening the registry and resolving ``m7@champion``: what opening imports
on first use is included. ``*-imported`` first opens another registry (every module is then
imported, nothing about this registry is cached) and times the same open and resolve:
imports excluded. ``nbregistry-imported`` also reports where that time goes (``stages``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def nbregistry_side(mode: str, uri: str, other: str) -> dict[str, Any]:
    start = time.perf_counter()
    import nbregistry

    imported = time.perf_counter()
    if mode == "import":
        return {"import_s": imported - start}
    stages: dict[str, float] = {}
    if mode == "imported":
        nbregistry.open_registry(other, user="bench", create=False).models()
        stages = _stages()
        imported = time.perf_counter()
    reg = nbregistry.open_registry(uri, user="bench", create=False)
    version = reg.get("m7@champion").version
    return {"import_s": imported - start, "open_resolve_s": time.perf_counter() - imported,
            "version": version, "stages": stages}


def _stages() -> dict[str, float]:
    """Seconds spent in each stage of the next open + resolve (filled in as it runs)."""
    from nbregistry.registry import snapshot
    from nbregistry.store import eventlog

    found: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        def run(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                found[label] = found.get(label, 0.0) + time.perf_counter() - begin
        setattr(owner, name, run)

    timed(eventlog, "from_checkpoint", "Delta log: last checkpoint + the commits after it")
    timed(snapshot, "_pointed", "state snapshot: pointer and blob")
    timed(snapshot, "load", "state snapshot: JSON to state")
    timed(eventlog.EventLog, "read_after", "events after the snapshot: parquet")
    timed(snapshot, "fold", "folding those events")
    timed(eventlog.EventLog, "read_seqs", "resolve: the version's register event")
    return found


def mlflow_side(mode: str, uri: str, other: str) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    start = time.perf_counter()
    import mlflow
    from mlflow import MlflowClient

    imported = time.perf_counter()
    if mode == "import":
        return {"import_s": imported - start, "mlflow": mlflow.__version__}
    if mode == "imported":
        MlflowClient(tracking_uri=other, registry_uri=other).search_registered_models()
        imported = time.perf_counter()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = int(client.get_model_version_by_alias("m7", "champion").version)
    return {"import_s": imported - start, "open_resolve_s": time.perf_counter() - imported,
            "version": version}


def main() -> None:
    side, _, mode = sys.argv[1].partition("-")
    uri = sys.argv[2] if len(sys.argv) > 2 else ""
    other = sys.argv[3] if len(sys.argv) > 3 else ""
    run = nbregistry_side if side == "nbregistry" else mlflow_side
    print(json.dumps(run(mode, uri, other)))


if __name__ == "__main__":
    main()
