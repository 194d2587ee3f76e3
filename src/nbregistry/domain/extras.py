"""Optional extras: the core install is what a scoring service needs; the rest is opt-in."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

EXTRAS = {
    "notebook": "magics, panels and charts in Jupyter",
    "monitoring": "drift, performance and fairness monitoring (DuckDB)",
    "reports": "compliance reports (papermill)",
    "demo": "the `nbregistry demo` job (scikit-learn)",
    "spark": "monitoring on Spark through Spark Connect (pyspark-client, sqlglot)",
    "mlflow": "importing from MLflow and loading MLflow models",
}


def require(extra: str, module: str) -> ModuleType:
    """Import ``module`` or say which extra to install for it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{EXTRAS.get(extra, extra)} needs the {module!r} package, which is not "
            f"installed: pip install 'nbregistry[{extra}]'", extra=extra,
            module=module) from exc
