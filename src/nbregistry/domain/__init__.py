"""Entities, errors and validation rules: standard library only."""

from .entities import Event, ModelVersion, Problem, VerifyReport
from .errors import (
    ConflictError,
    ForkedProcessError,
    IntegrityError,
    InvalidInputError,
    NbRegistryError,
    NotFoundError,
    PolicyViolationError,
    ReadOnlyError,
    StorageError,
)

__all__ = [
    "ConflictError",
    "Event",
    "ForkedProcessError",
    "IntegrityError",
    "InvalidInputError",
    "ModelVersion",
    "NbRegistryError",
    "NotFoundError",
    "PolicyViolationError",
    "Problem",
    "ReadOnlyError",
    "StorageError",
    "VerifyReport",
]
