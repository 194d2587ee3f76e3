"""nbregistry: a Jupyter-native model registry kept in Delta Lake tables.

``import nbregistry`` stays cheap: storage engines, IPython and widgets load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .domain import (
    ConflictError,
    ForkedProcessError,
    IntegrityError,
    InvalidInputError,
    ModelVersion,
    NbRegistryError,
    NotFoundError,
    PolicyViolationError,
    ReadOnlyError,
    StorageError,
    VerifyReport,
)

if TYPE_CHECKING:
    from .registry import Flavor, Registry, RegistryView

__version__ = "0.1.0"
__all__ = [
    "ConflictError",
    "Flavor",
    "ForkedProcessError",
    "IntegrityError",
    "InvalidInputError",
    "ModelVersion",
    "NbRegistryError",
    "NotFoundError",
    "PolicyViolationError",
    "ReadOnlyError",
    "Registry",
    "RegistryView",
    "StorageError",
    "VerifyReport",
    "load_ipython_extension",
    "open_registry",
    "register_flavor",
    "verify",
]

_LAZY = {"open_registry", "register_flavor", "Registry", "RegistryView", "Flavor"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'nbregistry' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbregistry``: the magics module (and IPython with it) loads only now."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def open_registry(uri: Any = None, user: str | None = None, **options: Any) -> Registry:
    """Open (creating on first use) a registry; see :func:`nbregistry.registry.open_registry`."""
    from .registry import open_registry as _open

    return _open(uri, user, **options)


def verify(uri: Any = None, *, storage_options: dict[str, str] | None = None,
           artifacts: bool = True) -> VerifyReport:
    """Check a registry's audit trail without opening it (works on a damaged registry)."""
    import os

    from .registry import verify_log
    from .store import Location

    location = Location.parse(uri or os.environ.get("NBREGISTRY_URI") or ".nbregistry",
                              storage_options)
    return verify_log(location, artifacts=artifacts)

