"""Feature importance per version: the model's own, else permutation on the reference data.

``feature_importance`` takes the estimator's ``feature_importances_`` (trees, boosting) or
``coef_`` (linear models; absolute values, averaged over classes, so on the scale the
estimator sees its inputs: standardize in the pipeline for comparable values). For a
pipeline the last step is asked, and its values are used only when they line up one to one
with the reference columns (a one-hot encoder in between breaks that). Otherwise it is
sklearn's ``permutation_importance`` on the frozen reference data (needs the target),
negative means (noise) clipped to 0. Values are normalized to sum to 1 (all 0 when the
model shows no signal) and sorted, largest first; ``method`` says which was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..domain.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

Method = Literal["feature_importances", "coef", "permutation"]


@dataclass(frozen=True)
class Importance:
    method: Method
    values: dict[str, float]

    def ranked(self) -> list[str]:
        return list(self.values)


def feature_importance(model: Any, X: pa.Table, y: Any = None, *, n_repeats: int = 5,
                       seed: int = 0) -> Importance:
    """Normalized importance of each column of ``X`` (the reference features) to ``model``."""
    import pyarrow as pa

    table = X if isinstance(X, pa.Table) else pa.table(X)
    names = table.column_names
    native = _native(model, names)
    if native is not None:
        return Importance(native[0], _normalized(names, native[1]))
    if y is None:
        raise InvalidInputError("the model has no feature_importances_ or coef_ matching the "
                                "reference columns, and permutation importance needs the "
                                "reference target: pass y", field="y")
    from sklearn.inspection import permutation_importance

    result = permutation_importance(model, table.to_pandas(), y, n_repeats=n_repeats,
                                    random_state=seed)
    return Importance("permutation", _normalized(names, result.importances_mean))


def _native(model: Any, names: list[str]) -> tuple[Method, Any] | None:
    import numpy as np

    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    seen = getattr(estimator, "feature_names_in_", None)
    if seen is not None and list(seen) != names:
        return None
    for attribute in ("feature_importances_", "coef_"):
        values = getattr(estimator, attribute, None)
        if values is None:
            continue
        array = np.abs(np.asarray(values, dtype=np.float64))
        if array.ndim == 2:
            array = array.mean(axis=0)
        if array.shape == (len(names),):
            method: Method = "feature_importances" if attribute.startswith("feature") \
                else "coef"
            return method, array
    return None


def _normalized(names: list[str], values: Any) -> dict[str, float]:
    import numpy as np

    clipped = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, None)
    total = clipped.sum()
    shares = clipped / total if total > 0 else clipped
    order = sorted(range(len(names)), key=lambda i: (-shares[i], names[i]))
    return {names[i]: float(shares[i]) for i in order}


def rank_drift(drift: pa.Table, importance: Importance) -> pa.Table:
    """The drift table with an ``importance`` column, drifted features first, then by
    importance: which drift matters most."""
    import pyarrow as pa

    weights = [importance.values.get(name) for name in drift.column("feature").to_pylist()]
    table = drift.append_column("importance", pa.array(weights, pa.float64()))
    order = sorted(range(table.num_rows), key=lambda i: (
        not table.column("drifted")[i].as_py(), -(weights[i] or 0.0)))
    return table.take(pa.array(order, pa.int64()))
