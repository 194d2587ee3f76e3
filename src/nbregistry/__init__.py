"""nbregistry: a Jupyter-native model registry for regulated industries, kept in Delta Lake.

``import nbregistry`` stays cheap: storage engines, IPython and widgets load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .domain import (
    ConflictError,
    Event,
    ForkedProcessError,
    GateResult,
    IntegrityError,
    InvalidInputError,
    MissingDependencyError,
    ModelVersion,
    NbRegistryError,
    NotFoundError,
    PolicyViolationError,
    PromotionRequest,
    ReadOnlyError,
    RegistryCreatedWarning,
    StorageError,
    VerifyReport,
)
from .domain.policy import Policy

if TYPE_CHECKING:
    from .registry import (
        Flavor,
        Registry,
        RegistryView,
        import_mlflow,
        open_registry,
        register_flavor,
    )
    from .reports import reverify, run_pack, run_report

__version__ = "0.2.0"
__all__ = [
    "ConflictError",
    "Event",
    "Flavor",
    "ForkedProcessError",
    "GateResult",
    "IntegrityError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelVersion",
    "NbRegistryError",
    "NotFoundError",
    "Policy",
    "PolicyViolationError",
    "PromotionRequest",
    "ReadOnlyError",
    "Registry",
    "RegistryCreatedWarning",
    "RegistryView",
    "StorageError",
    "VerifyReport",
    "import_mlflow",
    "load_ipython_extension",
    "open_registry",
    "register_flavor",
    "reverify",
    "run_pack",
    "run_report",
    "verify",
]

# Resolved on first access, so that ``nbr.open_registry`` is the real function (its own
# signature and docs) while ``import nbregistry`` loads no storage engine.
_LAZY = {"open_registry", "register_flavor", "Registry", "RegistryView", "Flavor",
         "import_mlflow"}
_LAZY_REPORTS = {"run_report", "reverify", "run_pack"}


def __getattr__(name: str) -> Any:
    if name in _LAZY or name in _LAZY_REPORTS:
        import importlib

        module = importlib.import_module(".registry" if name in _LAZY else ".reports",
                                         __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbregistry' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbregistry``: the magics module (and IPython with it) loads only now."""
    from .domain.extras import require

    require("notebook", "traitlets")
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def verify(uri: Any = None, *, storage_options: dict[str, str] | None = None,
           artifacts: bool = True, expected_head: tuple[int, str] | None = None,
           trusted_keys: dict[str, Any] | None = None, witness: Any = None,
           witness_storage_options: dict[str, str] | None = None,
           progress: bool = False) -> VerifyReport:
    """Check a registry's audit trail without opening it (works on a damaged registry).

    ``expected_head`` is a ``(seq, hash)`` recorded elsewhere (a report, a ticket): a log
    cut or rewritten since then is reported. ``trusted_keys`` pins users' public keys
    outside the registry; ``witness`` is where heads were published (default
    ``$NBREGISTRY_WITNESS``). See ``Registry.verify``."""
    import os

    from .registry import verify_log
    from .registry.opening import _default_uri
    from .registry.witness import location as witness_location
    from .store import Location

    location = Location.parse(_default_uri(uri), storage_options)
    witness = witness or os.environ.get("NBREGISTRY_WITNESS") or None
    return verify_log(location, artifacts=artifacts, expected_head=expected_head,
                      trusted_keys=trusted_keys, progress=progress,
                      witness=None if witness is None else witness_location(
                          witness, witness_storage_options))
