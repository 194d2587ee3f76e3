"""Independent readers of a Delta table, each run in its own process, for conformance tests.

``read_rows(reader, uri, order_by=[...], where=(column, op, value))`` returns the table's
rows as JSON-normalised dicts (timestamps as ISO strings in UTC, dates as ISO dates), so
rows from different readers and from nbregistry itself compare with ``==``. ``where`` is
pushed down to each reader as its own predicate (SQL, deltalake filters, a Polars
expression), so a reader that skips files on wrong statistics loses rows. The readers:

- ``deltalake``: deltalake's ``DeltaTable.to_pyarrow_table()`` (its log replay + pyarrow);
- ``deltalake-sql``: deltalake's ``QueryBuilder`` (delta-kernel + DataFusion);
- ``duckdb``: DuckDB's ``delta`` extension (``delta_scan``; delta-kernel-rs in C++ DuckDB),
  from the pip wheel ``duckdb-extension-delta``, which pins ``duckdb==1.5.5``: it runs in a
  venv of its own (``tests/.venv-delta-readers``), created on first use and reused;
- ``polars``: ``pl.read_delta`` (deltalake lists the files, Polars reads the parquet and
  fills partition columns), in the main environment;
- ``spark``: Spark SQL through PySpark's Spark Connect client (``pyspark-client``) on a
  Sail server (``pysail``) started in the reader process on a free loopback port:
  ``spark.read.format("delta").load(uri)``, in the main environment (the ``dev`` extra).

An ``s3://`` URI is read with the endpoint and credentials of ``env`` (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ..., as the s3server fixture gives them) set in the reader's
environment: deltalake, Polars and Sail take them from there; DuckDB gets them as an S3
secret, and reads the data files through its ``httpfs`` extension (also a pip wheel).

Each reader runs as a subprocess of this file (``python delta_readers.py READER URI ...``):
deltalake's pyarrow bridge was seen to abort the interpreter at exit, and DuckDB 1.5.5 cannot
share a process with the main environment's DuckDB. This module imports only the standard
library at the top so the venv (which has no pyarrow) can run it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

READERS = ("deltalake", "deltalake-sql", "duckdb", "polars", "spark")
VENV = Path(__file__).resolve().with_name(".venv-delta-readers")
# pytz: DuckDB's Python client needs it to return TIMESTAMP WITH TIME ZONE values.
VENV_PACKAGES = ["duckdb==1.5.5", "duckdb-extension-delta==1.5.5",
                 "duckdb-extension-httpfs==1.5.5", "pytz"]
_IN_VENV = {"duckdb"}
OPS = ("=", "<", "<=", ">", ">=")
Where = tuple[str, str, Any]


def normalise(value: Any) -> Any:
    """A value every reader renders the same way: aware datetimes as UTC ISO strings (naive
    ones without an offset, so a reader that drops the zone shows up), dates as ISO."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat(timespec="microseconds")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


def sort_rows(rows: list[dict[str, Any]], order_by: Sequence[str]) -> list[dict[str, Any]]:
    """``rows`` ordered by ``order_by``, nulls last (SQL engines disagree on where nulls
    go, so every reader's rows are put in this one order)."""
    return sorted(rows, key=lambda r: [(r[c] is None, 0 if r[c] is None else r[c])
                                       for c in order_by])


def venv_python() -> Path:
    """The reader venv's interpreter, creating the venv (one-off, ~20 s) when missing and
    topping it up when VENV_PACKAGES changed since it was built."""
    python, marker = VENV / "bin" / "python", VENV / "nbregistry-packages.json"
    wanted = json.dumps(VENV_PACKAGES)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    if python.exists():
        _pip_install(python)
        marker.write_text(wanted)
        return python
    # Built beside and renamed into place, so a half-built venv is never reused.
    building = VENV.with_name(f"{VENV.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, symlinks=True).create(building)
    _pip_install(building / "bin" / "python")
    (building / marker.name).write_text(wanted)
    try:
        building.rename(VENV)
    except OSError:  # another process finished first: use theirs
        shutil.rmtree(building, ignore_errors=True)
    return python


def _pip_install(python: Path) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *VENV_PACKAGES], check=True)


def versions(reader: str) -> dict[str, str]:
    """The library versions ``reader`` runs with (for reports)."""
    out = _run(reader, ["--versions"])
    result: dict[str, str] = json.loads(out)
    return result


def read_rows(reader: str, uri: str, *, order_by: Sequence[str], where: Where | None = None,
              env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The rows of the Delta table at ``uri`` (a local path, or ``s3://`` with ``env``) as
    ``reader`` sees them, ordered by ``order_by``; only those where ``column op value`` when
    ``where`` is given (value an int, float, str or aware datetime)."""
    return read_many(reader, uri, order_by=order_by, queries=[where], env=env)[0]


def read_many(reader: str, uri: str, *, order_by: Sequence[str],
              queries: Sequence[Where | None], env: Mapping[str, str] | None = None
              ) -> list[list[dict[str, Any]]]:
    """``read_rows`` for each of ``queries`` (None: every row), in one reader process."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}: use one of {READERS}")
    for where in queries:
        if where is not None and where[1] not in OPS:
            raise ValueError(f"unknown operator {where[1]!r}: use one of {OPS}")
    encoded = [None if w is None else [w[0], w[1], _encode(w[2])] for w in queries]
    found: list[list[dict[str, Any]]] = json.loads(
        _run(reader, [uri, ",".join(order_by), json.dumps(encoded)], env))
    return found


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("compare timestamps with an aware datetime")
        return {"$ts": value.astimezone(UTC).isoformat(timespec="microseconds")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "$ts" in value:
        return datetime.fromisoformat(value["$ts"])
    return value


def _sql_literal(value: Any, dialect: str) -> str:
    if isinstance(value, datetime):
        iso = value.isoformat(timespec="microseconds")
        if dialect == "duckdb":
            return f"TIMESTAMPTZ '{iso}'"
        return f"arrow_cast('{iso}', 'Timestamp(Microsecond, Some(\"UTC\"))')"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _sql_where(where: Where | None, dialect: str) -> str:
    if where is None:
        return ""
    column, op, value = where
    return f' WHERE "{column}" {op} {_sql_literal(value, dialect)}'


def _run(reader: str, args: list[str], env: Mapping[str, str] | None = None) -> str:
    python = venv_python() if reader in _IN_VENV else Path(sys.executable)
    done = subprocess.run([str(python), __file__, reader, *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        hint = ("\n(the Spark reader needs pysail and pyspark-client: pip install -e '.[dev]')"
                if reader == "spark" and "No module named" in done.stderr else "")
        raise RuntimeError(f"reader {reader} failed ({done.returncode}): "
                           f"{done.stderr[-3000:]}{hint}")
    return done.stdout


# -- the readers, run in the subprocess ---------------------------------------------------
def _deltalake(uri: str, order_by: list[str], where: Where | None) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    filters = None if where is None else [where]
    rows: list[dict[str, Any]] = DeltaTable(uri).to_pyarrow_table(filters=filters).to_pylist()
    return rows


def _deltalake_sql(uri: str, order_by: list[str], where: Where | None
                   ) -> list[dict[str, Any]]:
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder

    query = QueryBuilder().register("t", DeltaTable(uri))
    order = ", ".join(f'"{c}"' for c in order_by)
    sql = f"SELECT * FROM t{_sql_where(where, 'datafusion')} ORDER BY {order}"
    result = query.execute(sql).read_all()
    rows: list[dict[str, Any]] = pa.table(result).to_pylist()  # arro3 -> pyarrow
    return rows


def _duckdb_extension(name: str = "delta") -> Path:
    # The wheels only ship the binary (their __init__ is empty; the README's loader lives in
    # another package, duckdb-extensions): LOAD it by path.
    import importlib

    import duckdb

    package = importlib.import_module(f"duckdb_extension_{name}")
    return (Path(package.__file__ or "").parent / "extensions"
            / f"v{duckdb.__version__}" / f"{name}.duckdb_extension")


def _duckdb_s3_secret(con: Any) -> None:
    """The S3 endpoint and credentials of the environment, as a DuckDB secret (DuckDB reads
    no AWS variables itself)."""
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ["AWS_ENDPOINT_URL"])
    con.execute(f"LOAD '{_duckdb_extension('httpfs')}'")
    con.execute("CREATE SECRET s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
                "URL_STYLE 'path', USE_SSL ?)",
                [os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                 os.environ.get("AWS_REGION", "us-east-1"), endpoint.netloc,
                 endpoint.scheme == "https"])


def _duckdb(uri: str, order_by: list[str], where: Where | None) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"LOAD '{_duckdb_extension()}'")
    if uri.startswith("s3://"):
        _duckdb_s3_secret(con)
    con.execute("SET TimeZone = 'UTC'")
    order = ", ".join(f'"{c}"' for c in order_by)
    cursor = con.execute(
        f"SELECT * FROM delta_scan(?){_sql_where(where, 'duckdb')} ORDER BY {order}", [uri])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _polars(uri: str, order_by: list[str], where: Where | None) -> list[dict[str, Any]]:
    import operator

    import polars as pl

    if where is None:
        frame = pl.read_delta(uri)
    else:
        column, op, value = where
        compare = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt,
                   ">=": operator.ge}[op]
        frame = pl.scan_delta(uri).filter(compare(pl.col(column), value)).collect()
    rows: list[dict[str, Any]] = frame.sort(order_by).to_dicts()
    return rows


_SPARK: list[Any] = []  # the reader process's one (server, session)


def _spark_session() -> Any:
    if not _SPARK:
        from pysail.spark import SparkConnectServer
        from pyspark.sql import SparkSession

        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        host, port = server.listening_address
        session = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
        session.conf.set("spark.sql.session.timeZone", "UTC")
        _SPARK.extend([server, session])
    return _SPARK[1]


def _spark(uri: str, order_by: list[str], where: Where | None) -> list[dict[str, Any]]:
    import operator

    from pyspark.sql import functions as F

    frame = _spark_session().read.format("delta").load(uri)
    if where is not None:
        column, op, value = where
        compare = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt,
                   ">=": operator.ge}[op]
        frame = frame.filter(compare(F.col(column), F.lit(value)))
    rows: list[dict[str, Any]] = frame.orderBy(*order_by).toArrow().to_pylist()
    return rows


def _stop_spark() -> None:
    # The session before the server: the other way round the interpreter hangs at exit.
    if _SPARK:
        server, session = _SPARK
        session.stop()
        server.stop()


def _versions(reader: str) -> dict[str, str]:
    from importlib.metadata import version

    names = {"deltalake": ["deltalake", "pyarrow"], "deltalake-sql": ["deltalake"],
             "duckdb": ["duckdb", "duckdb-extension-delta"],
             "polars": ["polars", "deltalake"], "spark": ["pysail", "pyspark-client"]}[reader]
    found = {n: version(n) for n in names}
    if reader == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute(f"LOAD '{_duckdb_extension()}'")
        row = con.execute("SELECT extension_version FROM duckdb_extensions() "
                          "WHERE extension_name = 'delta'").fetchone()
        found["delta extension"] = str(row[0]) if row else "?"
    return found


def main(argv: list[str]) -> None:
    reader, *rest = argv
    if rest == ["--versions"]:
        result: Any = _versions(reader)
    else:
        uri, order, encoded = rest
        read = {"deltalake": _deltalake, "deltalake-sql": _deltalake_sql,
                "duckdb": _duckdb, "polars": _polars, "spark": _spark}[reader]
        result = []
        for found in json.loads(encoded):
            where = None if found is None else (found[0], found[1], _decode(found[2]))
            columns = order.split(",")
            result.append(sort_rows(normalise(read(uri, columns, where)), columns))
        _stop_spark()
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    # Skip interpreter teardown: deltalake's pyarrow bridge can abort there, after the
    # answer is complete, and that crash says nothing about the table.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
