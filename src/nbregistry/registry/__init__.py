"""Use-cases: register, search, aliases, audit. Usable without Jupyter."""

from .flavors import Flavor, register_flavor
from .registry import Registry, open_registry
from .verify import verify_log
from .view import RegistryView

__all__ = ["Flavor", "Registry", "RegistryView", "open_registry", "register_flavor",
           "verify_log"]
