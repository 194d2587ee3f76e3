"""A configured DuckDB connection and the small SQL helpers the monitoring modules share.

Monitoring queries read prediction logs that can be far larger than memory, so the
connection gets a memory limit (DuckDB spills to ``temp_directory`` beyond it), UTC as its
time zone (windows are bucketed in UTC whatever the machine's zone) and no extension
auto-install: ``INSTALL`` needs the network, and parquet, json and icu are built in.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError
from ..domain.timefmt import window_parts

if TYPE_CHECKING:
    import duckdb

NUMERIC_TYPES = frozenset({
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE",
})


def connect(*, threads: int | None = None, memory_limit: str = "1GB",
            temp_directory: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set up for monitoring queries.

    ``threads`` defaults to the machine's cores; ``memory_limit`` bounds DuckDB's buffer
    pool (a DuckDB size string such as ``"1GB"``), spilling to ``temp_directory`` (default:
    a folder in the system temp directory) rather than growing past it.
    """
    import duckdb

    spill = temp_directory or os.path.join(tempfile.gettempdir(), "nbregistry-duckdb")
    config: dict[str, Any] = {
        "threads": threads or os.cpu_count() or 1,
        "memory_limit": memory_limit,
        "temp_directory": spill,
        "preserve_insertion_order": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise InvalidInputError(f"cannot configure DuckDB ({exc}); check threads and "
                                f"memory_limit (e.g. '1GB')") from exc
    con.execute("SET TimeZone = 'UTC'")
    return con


def quote(name: str) -> str:
    """A SQL identifier, quoted so any column name (spaces, quotes, keywords) is safe."""
    return '"' + name.replace('"', '""') + '"'


def number(value: float) -> str:
    """A float as a SQL literal that round-trips exactly (repr is shortest round-trip)."""
    text = repr(float(value))
    if text in ("nan", "inf", "-inf"):
        raise InvalidInputError(f"a non-finite number ({text}) cannot be a bound in a query")
    return f"({text})::DOUBLE"


def where_clause(where: str | None) -> str:
    return f"WHERE ({where})" if where and where.strip() else ""


def columns(con: Any, source: str) -> dict[str, str]:
    """Column name -> DuckDB type of ``source``, reading only its schema (another engine,
    such as ``spark.SparkEngine``, answers with its own ``columns``)."""
    import duckdb

    if not isinstance(con, duckdb.DuckDBPyConnection):
        found: dict[str, str] = con.columns(source)
        return found
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.Error as exc:
        raise InvalidInputError(f"cannot read the monitoring source {source[:200]!r}: {exc}",
                                field="source") from exc
    return {str(row[0]): str(row[1]) for row in rows}


def is_numeric(duck_type: str) -> bool:
    return duck_type in NUMERIC_TYPES or duck_type.startswith("DECIMAL")


def require_columns(available: dict[str, str], needed: list[str], *, what: str) -> None:
    missing = [name for name in needed if name not in available]
    if missing:
        raise InvalidInputError(
            f"{what}: the source has no column {', '.join(map(repr, missing))}; "
            f"it has {', '.join(sorted(available)) or 'no columns'}", field=missing[0])


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "days"}


def interval(window: str) -> str:
    """``"1d"``, ``"7d"``, ``"12h"``, ``"30m"``, ``"2w"`` as a DuckDB INTERVAL literal."""
    count, unit = window_parts(window)
    if unit == "w":
        count *= 7
    return f"INTERVAL '{count} {_UNITS[unit]}'"


def one(con: duckdb.DuckDBPyConnection, query: str,
        parameters: list[Any] | None = None) -> tuple[Any, ...]:
    """The single row of an aggregate query. ``fetchall`` rather than ``fetchone``: DuckDB
    2 keeps a half-read result open and refuses other work on the connection until it
    is finished."""
    rows = con.execute(query, parameters or []).fetchall()
    if len(rows) != 1:
        raise AssertionError(f"expected one row, got {len(rows)}")
    return tuple(rows[0])
