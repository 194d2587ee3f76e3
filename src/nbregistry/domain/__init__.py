"""Entities, errors and validation rules: standard library only."""

from .entities import (
    Approval,
    Check,
    Event,
    GateResult,
    ModelVersion,
    Problem,
    PromotionRequest,
    VerifyReport,
)
from .errors import (
    ConflictError,
    ForkedProcessError,
    IntegrityError,
    InvalidInputError,
    MissingDependencyError,
    NbRegistryError,
    NotFoundError,
    PolicyViolationError,
    ReadOnlyError,
    RegistryCreatedWarning,
    StorageError,
)

__all__ = [
    "Approval",
    "Check",
    "ConflictError",
    "Event",
    "ForkedProcessError",
    "GateResult",
    "IntegrityError",
    "InvalidInputError",
    "MissingDependencyError",
    "ModelVersion",
    "NbRegistryError",
    "NotFoundError",
    "PolicyViolationError",
    "Problem",
    "PromotionRequest",
    "ReadOnlyError",
    "RegistryCreatedWarning",
    "StorageError",
    "VerifyReport",
]
