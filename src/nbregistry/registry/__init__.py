"""Use-cases: register, search, aliases, audit. Usable without Jupyter."""

from .flavors import Flavor, register_flavor
from .mlflow_import import import_mlflow
from .opening import open_registry
from .registry import Registry
from .verify import verify_log
from .view import RegistryView

__all__ = ["Flavor", "Registry", "RegistryView", "import_mlflow", "open_registry",
           "register_flavor", "verify_log"]
