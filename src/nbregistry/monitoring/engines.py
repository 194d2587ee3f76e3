"""Which engine runs monitoring's heavy pass: DuckDB in this process (the default, no
server), or Spark through Spark Connect (``engine="sc://host:15002"``, a ``SparkSession``,
or ``$NBREGISTRY_ENGINE``). Both run the same SQL (``spark.py``)."""

from __future__ import annotations

import os
from typing import Any

from ..domain.errors import InvalidInputError

ENV = "NBREGISTRY_ENGINE"


def resolve_engine(engine: Any) -> Any:
    """None for in-process DuckDB, else a ``SparkEngine``."""
    if engine is None:
        engine = os.environ.get(ENV) or None
    if engine is None or engine == "duckdb":
        return None
    from .spark import SparkEngine

    if isinstance(engine, SparkEngine):
        return engine
    if isinstance(engine, str):
        return SparkEngine.connect(engine)
    if hasattr(engine, "sql") and hasattr(engine, "read"):  # a SparkSession (Connect)
        return SparkEngine(engine)
    raise InvalidInputError(f"engine must be 'duckdb', a Spark Connect URL ('sc://host:15002')"
                            f" or a SparkSession, got {type(engine).__name__}",
                            field="engine", value=str(engine))
