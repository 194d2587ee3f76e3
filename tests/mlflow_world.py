"""A real MLflow model registry (SQLite backend, local artifacts) for the import tests.

Run as ``python mlflow_world.py FOLDER SPEC_JSON`` (a subprocess, so MLflow's global state
and logging never touch the test process); it prints JSON: each version's run id, MLflow's
own predictions on a fixed input, and the tracking URI. SPEC maps model name to
``{"versions": n, "format": "skops"|"cloudpickle", "aliases": {...}, "stages": {v: stage},
"description": ..., "tags": {...}}``; an existing registry in FOLDER gets more versions.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

PROBE = [[0.5, -1.0, 2.0], [-1.5, 0.25, 0.0]]


def build(folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("migration")
    client = MlflowClient(uri, uri)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(80, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    out: dict[str, Any] = {"tracking_uri": uri, "models": {}}
    for name, model in spec.items():
        runs = out["models"][name] = {}
        existing = client.search_model_versions(f"name='{name}'")
        for i in range(len(existing) + 1, len(existing) + model["versions"] + 1):
            with mlflow.start_run() as run:
                estimator = LogisticRegression(C=0.1 * i).fit(X, y)
                mlflow.log_params({"C": 0.1 * i, "solver": "lbfgs"})
                mlflow.log_metrics({"auc": 0.7 + i / 100, "brier": float("nan") if i == 2
                                    else 0.2})
                mlflow.sklearn.log_model(estimator, name="model", registered_model_name=name,
                                         pip_requirements=["scikit-learn"],
                                         serialization_format=model.get("format", "skops"))
            runs[str(i)] = {"run_id": run.info.run_id,
                            "proba": estimator.predict_proba(np.array(PROBE)).tolist()}
            client.update_model_version(name, str(i), description=f"{name} version {i}")
            client.set_model_version_tag(name, str(i), "round", str(i))
        if "description" in model:
            client.update_registered_model(name, description=model["description"])
        for key, value in model.get("tags", {}).items():
            client.set_registered_model_tag(name, key, value)
        for alias, version in model.get("aliases", {}).items():
            client.set_registered_model_alias(name, alias, str(version))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow deprecates stages, but still has them
            for version, stage in model.get("stages", {}).items():
                client.transition_model_version_stage(name, str(version), stage)
    return out


if __name__ == "__main__":
    found = build(Path(sys.argv[1]), json.loads(sys.argv[2]))
    sys.stdout.write("\n" + json.dumps(found) + "\n")
