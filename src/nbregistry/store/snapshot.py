"""One Delta snapshot of a monitoring table, as local parquet files DuckDB can read.

Why not DuckDB's ``delta_scan``: duckdb 2.0 has no pip-installable ``delta`` or ``httpfs``
extension and ``INSTALL`` fails offline. Why not deltalake's ``to_pyarrow_dataset``: it was
seen to abort the interpreter at exit. So deltalake gives the snapshot's file list (with
partition values and statistics, for pruning) and DuckDB reads exactly those files with
``read_parquet``: never a removed file (compaction leaves them on disk) nor an uncommitted one.

On object stores the needed data files are copied to a local cache first, because DuckDB
cannot read ``s3://`` without ``httpfs``. Delta data files are immutable (a new name for
every write, and we never VACUUM), so a cache keyed by table URI + file path never goes
stale; each download is checked against the size in the Delta log. The cache lives in
``$NBREGISTRY_CACHE_DIR``, else ``$XDG_CACHE_HOME/nbregistry``, else ``~/.cache/nbregistry``,
and is safe to delete at any time (nothing evicts it automatically).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..domain.errors import StorageError
from . import forkguard
from .location import Location

DOWNLOAD_THREADS = 8
CHUNK = 8 * 1024 * 1024
# `day` is a partition column: by the Delta spec its value lives in the log, not in the
# files. It is the UTC date of `ts` by construction, so relation() derives it again.
DAY_SQL = "(DATE '1970-01-01' + CAST(floor(epoch_us(ts) / 86400000000) AS INTEGER))"


def default_cache_dir() -> Path:
    if env := os.environ.get("NBREGISTRY_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "nbregistry")


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_timestamp(value: datetime) -> str:
    return f"TIMESTAMPTZ '{value.astimezone(UTC).isoformat(sep=' ')}'"


@dataclass(frozen=True)
class Snapshot:
    """The data files of one Delta version of a table, pruned to ``[start, end)``.

    ``files`` are local paths of exactly the snapshot's data files whose ``day`` partition
    and time statistics overlap the range (all of them when no range is given); ``rows``
    counts the rows of those files. Files hold whole days, so queries must still filter
    rows: :meth:`relation` and :meth:`to_arrow` do it. ``version`` is -1 (and ``files``
    empty) before the table's first append.

    For DuckDB: ``con.execute(f"SELECT … FROM {snap.relation()} AS p")``.
    """

    table: str
    version: int
    files: tuple[str, ...]
    rows: int
    schema: pa.Schema
    start: datetime | None
    end: datetime | None
    schema_file: str
    time_column: str = "ts"

    def from_clause(self) -> str:
        """``read_parquet([...])`` over the files. A 0-row file with the table's full schema
        comes first, so every column exists with its type even when the range only holds
        files written before a later version added a feature (and when there are no files)."""
        paths = ", ".join(sql_string(p) for p in (self.schema_file, *self.files))
        return f"read_parquet([{paths}], union_by_name=true, hive_partitioning=false)"

    def where(self, column: str | None = None) -> str:
        """The row filter for ``[start, end)`` on ``column`` (default: the table's time
        column, ``ts`` or the metrics' ``window_start``); "TRUE" when unbounded."""
        column = column or self.time_column
        parts = []
        if self.start is not None:
            parts.append(f"{column} >= {sql_timestamp(self.start)}")
        if self.end is not None:
            parts.append(f"{column} < {sql_timestamp(self.end)}")
        return " AND ".join(parts) or "TRUE"

    def relation(self) -> str:
        """A parenthesized subquery to use after FROM: the rows of the range, plus ``day``
        when the table is partitioned by it."""
        day = f", {DAY_SQL} AS day" if "day" in self.schema.names else ""
        return f"(SELECT *{day} FROM {self.from_clause()} WHERE {self.where()})"

    def to_arrow(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of the range as one Arrow table (for small reads: it is all in memory).
        Columns a file lacks (added by a later version) come back as nulls."""
        import pyarrow.compute as pc

        wanted = list(columns) if columns is not None else [
            n for n in self.schema.names if n != "day"]
        filtering = self.start is not None or self.end is not None
        key = self.time_column
        read = [*wanted, key] if filtering and key not in wanted else wanted
        tables = [read_file(path, read, self.schema) for path in self.files]
        table = (pa.concat_tables(tables) if tables
                 else pa.schema([self.schema.field(n) for n in read]).empty_table())
        ts_type = pa.timestamp("us", tz="UTC")
        if self.start is not None:
            table = table.filter(pc.greater_equal(table[key], pa.scalar(self.start, ts_type)))
        if self.end is not None:
            table = table.filter(pc.less(table[key], pa.scalar(self.end, ts_type)))
        return table.select(wanted)


def read_file(path: str, names: Sequence[str], schema: pa.Schema) -> pa.Table:
    """Only ``names`` of one data file (ParquetFile, not pyarrow.dataset: see eventlog)."""
    parquet = pq.ParquetFile(path)
    present = [n for n in names if n in parquet.schema_arrow.names]
    return conform_read(parquet.read(columns=present), names, schema)


def conform_read(table: pa.Table, names: Sequence[str], schema: pa.Schema) -> pa.Table:
    """A file's columns in ``names`` order and the table's types; absent ones as nulls."""
    arrays = []
    for name in names:
        field = schema.field(name)
        if name in table.column_names:
            arrays.append(table[name].cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.table(arrays, names=list(names))


class FileCache:
    """Local copies of a remote table's immutable data files, plus schema placeholders."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def schema_file(self, schema: pa.Schema) -> str:
        """A 0-row parquet file with ``schema`` (content-addressed, written once)."""
        digest = hashlib.sha256(schema.serialize().to_pybytes()).hexdigest()[:32]
        path = self.root / "schemas" / f"{digest}.parquet"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
            pq.write_table(schema.empty_table(), tmp)
            os.replace(tmp, path)
        return str(path)

    def table_dir(self, table_uri: str) -> Path:
        return self.root / "delta" / hashlib.sha256(table_uri.encode()).hexdigest()[:24]

    def local_files(self, location: Location, table_key: str,
                    files: Sequence[tuple[str, int]]) -> list[str]:
        """Local paths for ``(relative path, size)`` data files of a table: the files
        themselves on a local registry, verified cached copies on an object store."""
        if location.is_local:
            return [os.path.join(location.uri, table_key, p) for p, _ in files]
        folder = self.table_dir(location.join(table_key))
        targets = [(f"{table_key}/{p}", folder / p, size) for p, size in files]
        todo = [t for t in targets if not _cached(t[1], t[2])]
        if todo:
            forkguard.check()
            with ThreadPoolExecutor(min(DOWNLOAD_THREADS, len(todo))) as pool:
                list(pool.map(lambda t: _download(location, *t), todo))
        return [str(path) for _, path, _ in targets]


def _cached(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def _download(location: Location, key: str, path: Path, size: int) -> None:
    import obstore

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        result: Any = obstore.get(location.store, key)
        with open(tmp, "wb") as out:
            for chunk in result.stream(min_chunk_size=CHUNK):
                out.write(chunk)
        got = tmp.stat().st_size
        if got != size:
            raise StorageError(
                f"data file {location.join(key)} is {got} bytes but the Delta log records "
                f"{size}: it was rewritten or truncated. Run `nbregistry verify`.")
        os.replace(tmp, path)
    except FileNotFoundError as exc:
        raise StorageError(f"data file {location.join(key)} named by the Delta log is "
                           "missing. Run `nbregistry verify`.") from exc
    except OSError as exc:
        raise StorageError(f"cannot download {location.join(key)}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
