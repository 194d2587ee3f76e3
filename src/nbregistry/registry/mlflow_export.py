"""Read an MLflow model registry, run as a script by the Python of an environment that has
MLflow: ``python mlflow_export.py TRACKING_URI REGISTRY_URI OUT [NAME ...]``.

This file imports only the standard library and MLflow (never nbregistry), so it runs in
any environment with MLflow 2.3 or later: the user's existing MLflow environment (whose pins
may conflict with nbregistry's, and whose client version matches their tracking server) or
this one with the ``mlflow`` extra. ``mlflow_source`` is the only caller. One session, so
MLflow starts once per import:

1. it prints every registered model (or the named ones) with its description, tags,
   aliases and versions: one JSON line;
2. it reads one JSON line from stdin, ``[[name, version, run_id], ...]``: the versions to
   fetch (only the new ones, so a repeated import reads no run);
3. for each, it reads the run (params, metrics, tags) and downloads the model directory
   (``MLmodel`` + files) to ``OUT/<index>``, and prints a JSON line as each one is complete,
   so the importer registers it at once.

An error is one JSON line ``{"error": kind, "message": ...}`` and exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main(argv: list[str]) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tracking_uri, registry_uri, out, *names = argv
    sys.stdout = sys.stderr
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        return fail("missing_mlflow", f"{sys.executable} cannot import mlflow: {exc}")
    try:
        client = MlflowClient(tracking_uri=tracking_uri,
                              registry_uri=registry_uri or tracking_uri)
        answer(listing(client, names))
        download(client, out, json.loads(sys.stdin.readline() or "[]"))
    except LookupError as exc:
        return fail("not_found", str(exc.args[0]))
    except Exception as exc:  # MLflow raises its own types for every failure: report them
        return fail("mlflow", f"{type(exc).__name__}: {exc}")
    return 0


def fail(kind: str, message: str) -> int:
    answer({"error": kind, "message": message})
    return 2


ANSWERS = sys.stdout  # main() points sys.stdout at stderr: MLflow's prints are not answers


def answer(value: Any) -> None:
    ANSWERS.write(json.dumps(value, sort_keys=True) + "\n")
    ANSWERS.flush()


def listing(client: Any, names: list[str]) -> dict[str, Any]:
    import mlflow

    if names:
        found = [_registered(client, name) for name in names]
    else:
        found = list(_pages(lambda token: client.search_registered_models(
            max_results=100, page_token=token)))
    return {"mlflow_version": mlflow.__version__,
            "models": [_model(client, rm) for rm in sorted(found, key=lambda m: m.name)]}


def _registered(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise LookupError(f"MLflow has no registered model named {name!r}") from exc
        raise


def _pages(search: Any) -> Any:
    token = None
    while True:
        page = search(token)
        yield from page
        token = page.token
        if not token:
            return


def _model(client: Any, rm: Any) -> dict[str, Any]:
    quote = '"' if "'" in rm.name and '"' not in rm.name else "'"
    escaped = rm.name.replace(quote, "\\" + quote)
    versions = list(_pages(lambda token: client.search_model_versions(
        f"name={quote}{escaped}{quote}", max_results=1000, page_token=token)))
    return {"name": rm.name, "description": rm.description or "", "tags": dict(rm.tags or {}),
            "aliases": {a: int(v) for a, v in (getattr(rm, "aliases", None) or {}).items()},
            "versions": sorted((_version(mv) for mv in versions),
                               key=lambda v: v["version"])}


def _version(mv: Any) -> dict[str, Any]:
    return {"version": int(mv.version), "description": mv.description or "",
            "tags": dict(mv.tags or {}), "stage": mv.current_stage or "None",
            "status": mv.status, "run_id": mv.run_id or "", "source": mv.source or "",
            "user_id": mv.user_id or "", "created_ms": mv.creation_timestamp}


def _run(client: Any, run_id: str) -> dict[str, Any] | None:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None  # the run was deleted: the version still exists, without its run
    info = run.info
    return {"params": dict(run.data.params), "metrics": dict(run.data.metrics),
            "tags": dict(run.data.tags), "experiment_id": info.experiment_id,
            "run_name": getattr(info, "run_name", "") or "", "user_id": info.user_id or "",
            "start_ms": info.start_time, "end_ms": info.end_time, "status": info.status}


def download(client: Any, out: str, wanted: list[list[Any]]) -> None:
    import mlflow.artifacts

    for index, (name, version, run_id) in enumerate(wanted):
        target = os.path.join(out, str(index))
        os.makedirs(target)
        uri = client.get_model_version_download_uri(name, str(version))
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=target)
        answer({"index": index, "name": name, "version": version, "path": path,
                "artifact_uri": uri, "run": _run(client, run_id) if run_id else None})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
