from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr

# The local S3 fixtures (s3_server, s3_uri) for every object-store test.
pytest_plugins = ["s3server"]


@pytest.fixture(autouse=True)
def _isolated_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's own registry or identity."""
    monkeypatch.delenv("NBREGISTRY_URI", raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    monkeypatch.setenv("NBREGISTRY_USER", "alice")


@pytest.fixture
def registry_uri(tmp_path: Path) -> str:
    return str(tmp_path / "registry")


@pytest.fixture
def registry(registry_uri: str) -> Iterator[nbr.Registry]:
    yield nbr.open_registry(registry_uri, user="alice")


class TinyModel:
    """A picklable stand-in for a fitted model (real sklearn models are used elsewhere)."""

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def predict(self, xs: list[float]) -> list[float]:
        return [x * self.weight for x in xs]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TinyModel) and other.weight == self.weight

    def __hash__(self) -> int:
        return hash(self.weight)


def from_storage(uri: str, **options: Any) -> nbr.Registry:
    """Open as a new process does: from storage, not as a copy of a handle this process
    already holds (registry/snapshot.py, "in-process copies")."""
    from nbregistry.registry import snapshot

    with snapshot._lock:
        snapshot._STATES.clear()
    return nbr.open_registry(uri, **options)
