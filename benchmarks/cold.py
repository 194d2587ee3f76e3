"""One cold measurement in a fresh interpreter; prints one JSON line.

    python cold.py nbregistry-import
    python cold.py nbregistry-open /path/to/registry
    python cold.py mlflow-import
    python cold.py mlflow-open sqlite:////path/to/mlflow.db

``*-import`` times the top-level import alone. ``*-open`` times it too, then (as
``open_resolve_s``) opening the registry and resolving ``m7@champion``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def nbregistry_side(mode: str, uri: str) -> dict[str, Any]:
    start = time.perf_counter()
    import nbregistry

    imported = time.perf_counter()
    if mode == "import":
        return {"import_s": imported - start}
    reg = nbregistry.open_registry(uri, user="bench")
    version = reg.get("m7@champion").version
    return {"import_s": imported - start, "open_resolve_s": time.perf_counter() - imported,
            "version": version}


def mlflow_side(mode: str, uri: str) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    start = time.perf_counter()
    import mlflow
    from mlflow import MlflowClient

    imported = time.perf_counter()
    if mode == "import":
        return {"import_s": imported - start, "mlflow": mlflow.__version__}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = int(client.get_model_version_by_alias("m7", "champion").version)
    return {"import_s": imported - start, "open_resolve_s": time.perf_counter() - imported,
            "version": version}


def main() -> None:
    side, _, mode = sys.argv[1].partition("-")
    uri = sys.argv[2] if len(sys.argv) > 2 else ""
    run = nbregistry_side if side == "nbregistry" else mlflow_side
    print(json.dumps(run(mode, uri)))


if __name__ == "__main__":
    main()
