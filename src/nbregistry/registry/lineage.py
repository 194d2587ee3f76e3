"""Lineage captured at registration: data, code, environment."""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..domain import validate
from ..domain.errors import InvalidInputError
from ..store import delta_version, normalize_uri
from ..store.blobs import file_sha256
from . import gitstate

KEY_PACKAGES = ("numpy", "pandas", "scikit-learn", "pyarrow", "deltalake", "nbregistry")


def capture(model: Any, *, training_data: str | os.PathLike[str] | None,
            storage_options: Mapping[str, str] | None, notebook: str | None) -> dict[str, Any]:
    # A model imported from another registry brings the lineage of the run that trained it;
    # this process's environment and repository would say nothing true about it.
    imported = getattr(model, "nbregistry_lineage", None)
    lineage: dict[str, Any] = (
        validate.json_mapping(imported, what="lineage") if isinstance(imported, Mapping) else {
            "python": platform.python_version(),
            "platform": sys.platform,
            "packages": packages(type(model).__module__.split(".")[0]),
        })
    if training_data is not None:
        lineage["training_data"] = training_data_ref(training_data, storage_options)
    if isinstance(imported, Mapping):
        return lineage
    git = git_state(os.getcwd())
    if git:
        lineage["git"] = git
    notebook = notebook or os.environ.get("JPY_SESSION_NAME") or None
    if notebook:
        lineage["notebook"] = notebook
    return lineage


def training_data_ref(uri: str | os.PathLike[str],
                      storage_options: Mapping[str, str] | None) -> dict[str, Any]:
    text = normalize_uri(uri)
    local = "://" not in text
    version = delta_version(text, storage_options)
    if version is not None:
        return {"uri": text, "format": "delta", "version": version}
    if local and Path(text).is_file():
        return {"uri": text, "format": "file", "sha256": file_sha256(Path(text))}
    raise InvalidInputError(
        f"training_data {os.fspath(uri)!r} is neither a Delta table nor a readable file; pass "
        "the Delta table's path/URI (its version is pinned) or a data file",
        field="training_data", value=os.fspath(uri))


@functools.cache
def _distribution_of(module: str) -> str | None:
    import importlib.metadata as md  # here: it imports email, zipfile, csv... (opening needn't)

    names = md.packages_distributions().get(module)
    return names[0] if names else None


@functools.lru_cache(maxsize=64)
def _versions(model_module: str) -> tuple[tuple[str, str], ...]:
    import importlib.metadata as md

    wanted = set(KEY_PACKAGES)
    dist = _distribution_of(model_module) if model_module not in {"builtins", "__main__"} else None
    if dist:
        wanted.add(dist)
    out = []
    for name in sorted(wanted):
        try:
            out.append((name, md.version(name)))
        except md.PackageNotFoundError:
            continue
    return tuple(out)


def packages(model_module: str) -> dict[str, str]:
    """Versions of the key packages and of the model's own package (cached per process:
    metadata lookups cost more than the rest of a registration)."""
    return dict(_versions(model_module))


def git_state(cwd: str) -> dict[str, Any] | None:
    """Commit and dirty flag (uncommitted changes to tracked files) of the repository around
    ``cwd``; ``git status`` runs only when something it reads may have changed (gitstate)."""
    return gitstate.state(cwd)
