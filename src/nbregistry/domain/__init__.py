"""Entities, errors and validation rules: standard library only."""

from .entities import (
    Approval,
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
    NbRegistryError,
    NotFoundError,
    PolicyViolationError,
    ReadOnlyError,
    StorageError,
)

__all__ = [
    "Approval",
    "ConflictError",
    "Event",
    "ForkedProcessError",
    "GateResult",
    "IntegrityError",
    "InvalidInputError",
    "ModelVersion",
    "NbRegistryError",
    "NotFoundError",
    "PolicyViolationError",
    "Problem",
    "PromotionRequest",
    "ReadOnlyError",
    "StorageError",
    "VerifyReport",
]
