"""One exception base with data-rich subclasses, so callers can catch broadly or precisely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class NbRegistryError(Exception):
    """Base class of every error nbregistry raises on purpose."""


class InvalidInputError(NbRegistryError, ValueError):
    """An argument is malformed; nothing was written."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class NotFoundError(NbRegistryError, LookupError):
    """A model, version, alias or stage does not exist."""

    def __init__(self, message: str, *, model: str | None = None, ref: str | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.ref = ref


class ConflictError(NbRegistryError):
    """A concurrent writer won a race that could not be retried away."""


class PolicyViolationError(NbRegistryError):
    """The governance policy refuses the action (missing role, failed gate, self-approval)."""

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


class IntegrityError(NbRegistryError):
    """The audit trail or an artifact does not match what was recorded."""

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class ReadOnlyError(NbRegistryError):
    """A write was attempted on a read-only view (for example ``as_of``)."""


class ForkedProcessError(NbRegistryError):
    """The storage engine was started in a parent process and cannot run after ``fork``."""


class StorageError(NbRegistryError):
    """The registry's storage could not be read or written."""


class RegistryCreatedWarning(UserWarning):
    """``open_registry`` made a new, empty registry (and the caller its admin): shown so a
    mistyped path never silently starts a second registry."""


class MissingDependencyError(NbRegistryError, ImportError):
    """A feature needs an optional extra that is not installed."""

    def __init__(self, message: str, *, extra: str, module: str) -> None:
        super().__init__(message)
        self.extra = extra
        self.module = module
