"""A version's monitoring baseline: frozen in the audit log, or computed in memory.

The baseline is built from the version's reference data (deterministic: the same rows give
the same bytes) plus the model's feature importance. It is frozen (a blob named by an event)
by writes that write anyway: ``register`` with reference data, the first logged predictions
of a version, a ``check()``, or ``mon.freeze_baseline()``. A question about a version with
no frozen baseline computes one in memory and says so in its result; it records nothing.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from typing import Any

from ..domain.canonical import canonical_json
from ..domain.entities import Event, ModelVersion
from ..domain.errors import InvalidInputError
from ..domain.extras import require
from ..monitoring import reference
from .ports import Catalog, MonitoringWrites
from .results import BaselineInfo


@dataclass(frozen=True)
class Baseline:
    spec: dict[str, Any]
    info: BaselineInfo

    @property
    def frozen(self) -> bool:
        return self.info.frozen


def can_build() -> bool:
    """Building a baseline needs the ``monitoring`` extra (DuckDB, NumPy)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("duckdb", "numpy"))
    except (ImportError, ValueError):
        return False


def resolve(catalog: Catalog, name: str, mv: ModelVersion) -> Baseline:
    """The frozen baseline, else one computed in memory from the reference data."""
    if mv.reference is None:
        raise InvalidInputError(
            f"{name} v{mv.version} has no reference data, so there is no baseline to "
            "compare with: register it with reference_data=... (and reference_target)",
            field="version")
    ref_sha = str(mv.reference["sha256"])
    recorded = catalog.frozen_baseline(name, mv.version)
    if recorded is not None:
        spec = dict(json.loads(catalog.artifact(recorded["sha256"])))
        return Baseline(spec, BaselineInfo(ref_sha, recorded["sha256"], recorded.get("seq")))
    model = _safe_model(catalog, name, mv.version)
    spec = build(catalog.artifact(ref_sha), model)
    return Baseline(spec, BaselineInfo(ref_sha, None, None))


def freeze(writes: MonitoringWrites, name: str, mv: ModelVersion, built: Baseline
           ) -> Event | None:
    assert mv.reference is not None
    sha = writes.put_artifact(canonical_json(built.spec).encode())
    return writes.freeze_baseline(name, mv.version, sha,
                                  {"reference": str(mv.reference["sha256"])})


def build(reference_blob: bytes, model: Any = None) -> dict[str, Any]:
    """The baseline of frozen reference data; ``model`` (when it can be scored here) adds
    its feature importance."""
    require("monitoring", "duckdb")
    import pyarrow as pa

    from ..monitoring.baseline import build_baseline

    table = reference.thaw(reference_blob)
    target = (table[reference.TARGET_COLUMN].combine_chunks()
              if reference.TARGET_COLUMN in table.column_names else None)
    scores = (table[reference.SCORE_COLUMN].combine_chunks()
              if reference.SCORE_COLUMN in table.column_names else None)
    inputs = table.drop_columns([c for c in reference.RESERVED if c in table.column_names])
    built = build_baseline(inputs, target=target, scores=scores, task=_task(target, pa))
    built["importance"] = _importance(model, inputs, target)
    return built


def _importance(model: Any, inputs: Any, target: Any) -> dict[str, Any] | None:
    """The model's own importances (or permutation importance on the reference rows);
    None when the model is not at hand or cannot be scored."""
    if model is None:
        return None
    from ..monitoring.importance import feature_importance

    try:
        found = feature_importance(model, inputs, None if target is None
                                   else target.to_numpy(zero_copy_only=False))
    except Exception:  # an unusual model: drift is still computed, unranked
        return None
    return {"method": found.method, "values": found.values}


def _safe_model(catalog: Catalog, name: str, version: int) -> Any:
    """The model when it loads without trusting its registrant (for importance), else
    None: a baseline never runs code chosen by whoever registered the model."""
    try:
        return catalog.load(name, version)
    except Exception:
        return None


def _task(target: Any, pa: Any) -> Any:
    if target is None:
        return None
    kind = target.type
    if pa.types.is_boolean(kind):
        return "classification"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = set(target.drop_null().unique().to_pylist())
        return "classification" if values <= {0, 1} else "regression"
    return None
