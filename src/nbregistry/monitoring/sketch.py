"""The fine grid a numeric feature is binned on, in numpy (baselines) and SQL (windows).

A grid is ``{"transform", "origin", "scale", "cells", "far"}``: a value ``x`` falls in cell
``floor((t(x) - origin) * scale)``, ``t`` being the identity or, for a strictly positive
skewed feature, the natural log (chosen when it makes the fullest cell less than half as
full: a lognormal income then gets cells as fine as a normal feature's). ``cells`` cells
span the reference's 0.1%-99.9% quantile range, ``far`` more on each side; values beyond
are clamped into the far-low cell ``-far-1`` or the far-high cell ``cells+far``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import duck

if TYPE_CHECKING:
    import numpy as np

CENTRAL = (0.001, 0.999)
FAR_RANGES = {"identity": 64, "log": 8}   # far cells per side, in multiples of ``cells``
TINY = 1e-300   # log grids: zero and negative values are clamped here (the far-low cell)


def make_grid(values: np.ndarray, cells: int) -> dict[str, Any]:
    """The grid for these finite reference values (identity, or log when much finer)."""
    import numpy as np

    grid = _linear(values, cells, "identity")
    if values.min() > 0:
        log_grid = _linear(np.log(values), cells, "log")
        low, high = far_edges(log_grid)
        if low > TINY * 10 and math.isfinite(high) and \
                _fullest(values, log_grid) < 0.5 * _fullest(values, grid):
            return log_grid
    return grid


def _linear(values: np.ndarray, cells: int, transform: str) -> dict[str, Any]:
    import numpy as np

    low, high = (float(q) for q in np.quantile(values, CENTRAL))
    if not high > low:
        low, high = float(values.min()), float(values.max())
    if high > low and (high - low) / cells > 0 and math.isfinite(cells / (high - low)):
        origin, scale = low, cells / (high - low)
    else:
        # one value (or a range too narrow for a double): one cell around it
        width = max(abs(low), 1.0) * 1e-6
        origin, scale = low - width / 2, 1.0 / width
    return {"transform": transform, "origin": origin, "scale": scale, "cells": cells,
            "far": FAR_RANGES[transform] * cells}


def _fullest(values: np.ndarray, grid: dict[str, Any]) -> float:
    import numpy as np

    _, counts = np.unique(cell_index(values, grid), return_counts=True)
    return float(counts.max()) / len(values)


def far_cells(grid: dict[str, Any]) -> tuple[int, int]:
    return -grid["far"] - 1, grid["cells"] + grid["far"]


def cell_index(values: np.ndarray, grid: dict[str, Any]) -> np.ndarray:
    """Cell of each finite value (numpy; the same arithmetic as ``cell_sql``)."""
    import numpy as np

    low, high = far_cells(grid)
    if grid["transform"] == "log":
        values = np.log(np.maximum(values, TINY))
    scaled = (values - grid["origin"]) * grid["scale"]
    index: np.ndarray = np.floor(np.clip(scaled, low, high)).astype(np.int64)
    return index


def cell_sql(column: str, grid: dict[str, Any], duck_type: str = "DOUBLE") -> str:
    """SQL giving each value's cell, clamped to the far cells.

    Deliberately lean, since it runs on every value: -inf falls in the far-low cell, NaN
    and +inf in the far-high cell, so a window with values in a far cell gets a second
    pass (``drift``) that tells them apart from finite ones.
    """
    low, high = far_cells(grid)
    value = column if duck_type == "DOUBLE" else f"CAST({column} AS DOUBLE)"
    if grid["transform"] == "log":
        value = f"ln(greatest({value}, {duck.number(TINY)}))"
    scaled = f"(({value} - {duck.number(grid['origin'])}) * {duck.number(grid['scale'])})"
    return f"CAST(floor(greatest(least({scaled}, {high}), {low})) AS INTEGER)"


def edges(grid: dict[str, Any], keys: np.ndarray) -> np.ndarray:
    """Where cells ``keys`` start, in the feature's own units."""
    import numpy as np

    position = grid["origin"] + np.asarray(keys, dtype=np.float64) / grid["scale"]
    out: np.ndarray = np.exp(position) if grid["transform"] == "log" else position
    return out


def far_edges(grid: dict[str, Any]) -> tuple[float, float]:
    """Where the far-low cell ends and the far-high cell starts, in the feature's units."""
    import numpy as np

    low, high = far_cells(grid)
    positions = edges(grid, np.array([low + 1, high]))
    return float(positions[0]), float(positions[1])
