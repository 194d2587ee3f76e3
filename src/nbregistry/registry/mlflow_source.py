"""The narrow interface to MLflow: the exporter script run by a Python that has MLflow, and
what one MLflow model version becomes in a ``register`` call.

MLflow is never imported here. ``mlflow_export.py`` runs in a subprocess with
``python`` (default: this interpreter, which then needs the ``mlflow`` extra), so an MLflow
whose pins conflict with nbregistry's, or an older client that matches an older tracking
server, can stay in its own environment.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from ..domain import validate
from ..domain.errors import (
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    StorageError,
)
from ..domain.timefmt import ts_text

SCRIPT = Path(__file__).with_name("mlflow_export.py")
KEY = ("model", "version", "run_id")  # what identifies an imported version in its lineage
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?\s*"
                  r"(?:==\s*([^\s;#,]+)\s*(?:[;#].*)?$|([^;#]*))")


def redact(uri: str) -> str:
    """``uri`` without a password: it is written into the audit log, which is kept forever."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class MlflowSource:
    """One MLflow tracking server (and model registry), read by the exporter script."""

    def __init__(self, tracking_uri: str, *, registry_uri: str | None = None,
                 python: str | os.PathLike[str] | None = None) -> None:
        self.tracking_uri = validate.text(tracking_uri, what="tracking_uri").strip()
        if not self.tracking_uri:
            raise InvalidInputError("tracking_uri is empty: pass MLflow's tracking URI, e.g. "
                                    "'sqlite:///mlflow.db' or 'http://mlflow:5000'",
                                    field="tracking_uri")
        self.registry_uri = registry_uri or ""
        self.python = os.fspath(python) if python is not None else sys.executable

    @contextmanager
    def session(self, names: Sequence[str]) -> Iterator[Session]:
        """One run of the exporter: read its listing, then ask for the versions to fetch.
        The downloaded folders go when the block ends."""
        command = [self.python, str(SCRIPT), self.tracking_uri, self.registry_uri]
        with (tempfile.TemporaryDirectory(prefix="nbregistry-mlflow-") as out,
              tempfile.TemporaryFile("w+") as errors):
            try:
                process = subprocess.Popen([*command, out, *names], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=errors, text=True,
                                           env=_env())
            except OSError as exc:
                raise InvalidInputError(f"cannot run {self.python!r}: {exc}; pass python= "
                                        "the interpreter of an environment that has MLflow",
                                        field="python") from exc
            try:
                yield Session(self, process, errors)
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()

    def failure(self, found: dict[str, Any], stderr: str) -> Exception:
        kind, message = found.get("error"), str(found.get("message", ""))
        where = redact(self.tracking_uri)
        if kind == "missing_mlflow":
            return MissingDependencyError(
                f"{message}. Install it here (pip install 'nbregistry[mlflow]') or pass "
                "python= the interpreter of an environment that has MLflow",
                extra="mlflow", module="mlflow")
        if kind == "not_found":
            return NotFoundError(f"{message} (at {where}); check the names given to models=",
                                 ref=where)
        detail = message or stderr.strip()[-2000:] or "no output"
        return StorageError(f"could not read the MLflow registry at {where}: {detail}")


class Session:
    """The exporter's answers: ``listing`` first, then ``fetch`` the versions wanted."""

    def __init__(self, source: MlflowSource, process: subprocess.Popen[str], errors: IO[str]
                 ) -> None:
        self._source, self._process, self._errors = source, process, errors
        assert process.stdout is not None
        found = self._next()
        if "models" not in found:
            raise source.failure({}, self._stderr())
        self.listing: dict[str, Any] = found

    def fetch(self, wanted: Sequence[tuple[str, int, str]]) -> Iterator[dict[str, Any]]:
        """For each wanted (name, version, run id), in order, as soon as it is downloaded:
        ``{"index", "path", "artifact_uri", "run"}`` (the run's params, metrics, tags)."""
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(json.dumps([list(w) for w in wanted]) + "\n")
        stdin.close()
        for _ in wanted:
            yield self._next()
        if self._process.wait() != 0:
            raise self._source.failure({}, self._stderr())

    def _next(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        try:
            found = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            found = None
        if not isinstance(found, dict) or "error" in found:
            self._process.wait()
            raise self._source.failure(found or {}, self._stderr())
        return found

    def _stderr(self) -> str:
        self._errors.seek(0)
        return self._errors.read()


def _env() -> dict[str, str]:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def identity(lineage: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """(MLflow model, version, run id) of a version an earlier import registered."""
    found = lineage.get("mlflow")
    if lineage.get("imported_from") != "mlflow" or not isinstance(found, dict):
        return None
    return tuple(found.get(k) for k in KEY)


def register_arguments(model: Mapping[str, Any], version: Mapping[str, Any]
                       ) -> dict[str, Any]:
    """``register`` keyword arguments for one MLflow version: its run's params and finite
    metrics, the model's tags under the version's, the descriptions. What does not fit (a
    tag value over the limit, a NaN metric) is kept in the card and said in a tag."""
    run = version.get("run") or {}
    tags = {**model["tags"], **version["tags"]}
    short = {k: str(v) for k, v in tags.items()
             if k and len(k) <= validate.MAX_NAME and len(str(v)) <= validate.MAX_TAG_VALUE}
    card: dict[str, Any] = {}
    if model["description"]:
        card["model_description"] = model["description"]
    if len(short) < len(tags):
        card["mlflow_long_tags"] = {k: v for k, v in tags.items() if k not in short}
    metrics = {k: v for k, v in run.get("metrics", {}).items()
               if isinstance(v, int | float) and math.isfinite(v)}
    dropped = sorted(set(run.get("metrics", {})) - set(metrics))
    if dropped:
        short["mlflow.nonfinite_metrics"] = ",".join(dropped)[:validate.MAX_TAG_VALUE]
    return {"params": dict(run.get("params", {})), "metrics": metrics, "tags": short,
            "description": version["description"], "card": card}


def lineage(source: MlflowSource, mlflow_version: str, model: Mapping[str, Any],
            version: Mapping[str, Any], folder: Path, artifact_uri: str) -> dict[str, Any]:
    """Where the version came from (for the audit trail and for idempotence) and the
    environment it was trained in, as MLflow recorded it beside the model."""
    run = version.get("run") or {}
    run_tags = run.get("tags", {})
    origin = {
        "tracking_uri": redact(source.tracking_uri), "model": model["name"],
        "version": version["version"], "run_id": version["run_id"],
        "source": version["source"], "artifact_uri": redact(artifact_uri),
        "stage": version["stage"], "status": version["status"],
        "created_at": _when(version.get("created_ms")), "user": version["user_id"],
        "mlflow_version": mlflow_version, "run": None if not run else {
            "experiment_id": run["experiment_id"], "name": run["run_name"],
            "user": run["user_id"] or run_tags.get("mlflow.user", ""),
            "start": _when(run.get("start_ms")), "end": _when(run.get("end_ms")),
            "status": run["status"],
            "source_name": run_tags.get("mlflow.source.name", ""),
            "source_type": run_tags.get("mlflow.source.type", ""),
            "git_commit": run_tags.get("mlflow.source.git.commit", "")}}
    out: dict[str, Any] = {"imported_from": "mlflow", "mlflow": origin}
    python = _python_version(folder)
    if python:
        out["python"] = python
    out["packages"] = _pins(folder / "requirements.txt")
    return out


def _when(ms: Any) -> str | None:
    if not isinstance(ms, int) or isinstance(ms, bool):
        return None
    return ts_text(datetime.fromtimestamp(ms / 1000, UTC))


def _python_version(folder: Path) -> str:
    env = folder / "python_env.yaml"
    text = env.read_text(errors="replace") if env.is_file() else ""
    match = re.search(r"^python:\s*['\"]?([0-9][0-9.]*)", text, re.M)
    return match.group(1) if match else ""


def _pins(path: Path) -> dict[str, str]:
    """requirements.txt as {package: version}; a requirement without ``==`` keeps its
    specifier as written (``">=1.4"``, or ``""``)."""
    if not path.is_file():
        return {}
    return {m.group(1): m.group(2) or m.group(3).strip()
            for line in path.read_text(errors="replace").splitlines()
            if (m := _PIN.match(line))}
