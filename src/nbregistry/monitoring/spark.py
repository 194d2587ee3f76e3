"""Monitoring's heavy pass on Spark, through Spark Connect.

Every aggregation is written once, in the DuckDB SQL the in-process engine runs, using only
constructs both engines have (``GROUP BY``, ``FILTER``, ``CASE``, arithmetic, a few
functions); ``SparkEngine`` transpiles it to Spark SQL with sqlglot and rewrites the handful
of functions Spark spells differently (``isfinite``, ``epoch_us``). The statistics are then
finished on the small arrays the pass returns, exactly as for DuckDB.

``SparkEngine`` looks like the DuckDB connection the monitoring functions take
(``execute(sql, parameters).fetchall()``), plus ``columns(relation)`` and
``relation(snapshot)``, which registers a snapshot's data files as a temporary view.
The client is ``pyspark-client`` (the pure-Python Spark Connect client, the ``spark``
extra); any Spark Connect server works: Spark 3.4+, Databricks (databricks-connect), Sail.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError
from ..domain.extras import require

if TYPE_CHECKING:
    import pyarrow as pa

    from ..store import Snapshot

SPARK_TYPES = {"double": "DOUBLE", "float": "FLOAT", "bigint": "BIGINT", "int": "INTEGER",
               "smallint": "SMALLINT", "tinyint": "TINYINT", "string": "VARCHAR",
               "boolean": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
               "timestamp_ntz": "TIMESTAMP", "binary": "BLOB"}
_PARAMETER = re.compile(r"\$([A-Za-z_]\w*)")


class SparkEngine:
    """A Spark session (Spark Connect) that runs monitoring SQL written for DuckDB."""

    dialect = "spark"

    def __init__(self, session: Any) -> None:
        self.session = session
        # windows are bucketed in UTC, as DuckDB's connection does
        session.conf.set("spark.sql.session.timeZone", "UTC")
        self._views: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, url: str) -> SparkEngine:
        """A session on the Spark Connect server at ``url`` (``sc://host:15002``)."""
        require("spark", "pyspark")
        from pyspark.sql import SparkSession

        if not url.startswith("sc://"):
            raise InvalidInputError(f"a Spark Connect URL looks like 'sc://host:15002', got "
                                    f"{url!r}", field="engine", value=url)
        return cls(SparkSession.builder.remote(url).getOrCreate())

    def __repr__(self) -> str:
        return f"<SparkEngine {self.session!r}>"

    # -- the connection interface the monitoring functions use --------------------------------
    def execute(self, sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None
                ) -> _Rows:
        text = self.sql(_bind(sql, parameters))
        try:
            rows = self.session.sql(text).collect()
        except Exception as exc:  # pyspark raises its own hierarchy, by server
            raise InvalidInputError(f"Spark could not run a monitoring query: {exc}; query: "
                                    f"{text[:300]}", field="engine") from exc
        return _Rows([tuple(row) for row in rows])

    def sql(self, duck_sql: str) -> str:
        """The Spark SQL for a DuckDB query of the monitoring modules."""
        require("spark", "sqlglot")
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(duck_sql, read="duckdb")
        tree = tree.transform(_spark_function, copy=False)
        assert isinstance(tree, exp.Expression)
        return str(tree.sql(dialect="spark"))

    def columns(self, relation: str) -> dict[str, str]:
        """Column name -> DuckDB-style type of a relation (a view or a subquery)."""
        frame = self.session.sql(self.sql(f"SELECT * FROM {relation}"))
        return {f.name: _duck_type(f.dataType.simpleString()) for f in frame.schema.fields}

    def arrow(self, sql: str) -> pa.Table:
        """A query's rows as Arrow (small reads: rows of a report, a replay)."""
        table: pa.Table = self.session.sql(self.sql(sql)).toArrow()
        return table

    def register(self, name: str, table: pa.Table) -> None:
        """A small Arrow table as a temporary view (a baseline's bins, a lookup)."""
        self.session.createDataFrame(table.to_pandas()).createOrReplaceTempView(name)

    def relation(self, snapshot: Snapshot) -> str:
        """A temporary view of a snapshot's data files (read where they are: ``uri``) with
        the rows of its ``[start, end)``, and ``day`` when the table is partitioned by it."""
        uris = tuple(entry.uri for entry in snapshot.entries)
        key = hashlib.sha256(repr((snapshot.table, snapshot.version, uris, snapshot.start,
                                   snapshot.end)).encode()).hexdigest()[:16]
        name = f"nbregistry_{key}"
        with self._lock:
            if name not in self._views:
                self._frame(snapshot, uris).createOrReplaceTempView(name)
                self._views.add(name)
        return name

    def _frame(self, snapshot: Snapshot, uris: tuple[str, ...]) -> Any:
        from pyspark.sql import functions as F

        if not uris:  # before the first write, or a period without files: the columns only
            fields = ", ".join(f"CAST(NULL AS {_spark_type(f.type)}) AS `{f.name}`"
                               for f in snapshot.schema if f.name != "day")
            frame = self.session.sql(f"SELECT {fields} WHERE FALSE")
        else:
            frame = self.session.read.option("mergeSchema", "true").parquet(*uris)
        column = F.col(snapshot.time_column)
        if snapshot.start is not None:
            frame = frame.filter(column >= F.lit(snapshot.start))
        if snapshot.end is not None:
            frame = frame.filter(column < F.lit(snapshot.end))
        if "day" in snapshot.schema.names:
            frame = frame.withColumn("day", F.to_date(column))
        return frame


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


def _spark_function(node: Any) -> Any:
    """DuckDB functions Spark spells differently (sqlglot keeps unknown names as they are)."""
    from sqlglot import exp

    if not isinstance(node, exp.Anonymous):
        return node
    name = node.name.lower()
    args = node.expressions
    if name == "isfinite" and len(args) == 1:
        value = args[0]
        return exp.paren(exp.and_(
            exp.not_(exp.func("isnan", value.copy())),
            exp.NEQ(this=exp.func("abs", value.copy()),
                    expression=exp.cast(exp.Literal.string("inf"), "double"))))
    if name == "epoch_us" and len(args) == 1:
        return exp.func("unix_micros", args[0])
    return node


def _bind(sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None) -> str:
    """DuckDB's ``$name`` parameters as literals (Spark Connect SQL takes none here)."""
    if not parameters:
        return sql
    if not isinstance(parameters, Mapping):
        raise InvalidInputError("the Spark engine takes named parameters only", field="sql")
    return _PARAMETER.sub(lambda m: _literal(parameters[m.group(1)]), sql)


def _literal(value: Any) -> str:
    """A DuckDB literal (the SQL is still DuckDB's here; sqlglot writes Spark's)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidInputError("a non-finite number cannot be a query parameter")
        return repr(value)
    if isinstance(value, datetime | date):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _duck_type(spark: str) -> str:
    if spark.startswith("decimal"):
        return spark.upper()
    return SPARK_TYPES.get(spark, spark.upper())


def _spark_type(arrow: Any) -> str:
    from ..store.monitoring import kind_of

    return {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN", "timestamp": "TIMESTAMP",
            "date": "DATE"}.get(kind_of(arrow), "STRING")
