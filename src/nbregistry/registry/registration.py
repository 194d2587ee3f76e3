"""What a registration records: validated metadata, lineage, and the blobs it names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..domain import validate
from ..domain.canonical import canonical_json
from ..domain.errors import InvalidInputError
from ..monitoring import reference
from ..store import BlobStore
from ..watch import baselines
from . import flavors, lineage


def payload(model: Any, blobs: BlobStore, *, params: Mapping[str, Any] | None,
            metrics: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
            description: str | None, training_data: str | os.PathLike[str] | None,
            reference_data: Any, reference_target: Any, card: Mapping[str, Any] | None,
            flavor: str | None, notebook: str | None,
            data_storage_options: Mapping[str, str] | None) -> dict[str, Any]:
    """The ``register`` payload; the model and reference blobs are stored first, so an event
    never names a blob that is not there yet."""
    if model is None:
        raise InvalidInputError("model is None: pass the fitted model object", field="model")
    out: dict[str, Any] = {
        "params": validate.json_mapping(params, what="params"),
        "metrics": validate.metrics_mapping(metrics),
        "tags": validate.tags_mapping(tags),
        "description": validate.text(description, what="description"),
        "card": validate.json_mapping(card, what="card"),
    }
    features, ref_bytes, ref_rows, scored = reference.freeze(reference_data, reference_target,
                                                             model)
    out["lineage"] = lineage.capture(model, training_data=training_data,
                                     storage_options=data_storage_options, notebook=notebook)
    out["flavor"], data = flavors.dump(model, flavor)
    out["sha256"], out["size"] = blobs.put(data), len(data)
    out["features"] = features
    if ref_bytes is not None:
        out["reference"] = {"sha256": blobs.put(ref_bytes), "rows": ref_rows,
                            "has_target": reference_target is not None, "has_score": scored}
        if baselines.can_build():  # frozen now, in the same event, when it can be built here
            built = baselines.build(ref_bytes, model)
            out["reference"]["baseline"] = blobs.put(canonical_json(built).encode())
    return out
