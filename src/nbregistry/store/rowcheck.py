"""Do the files a compaction wrote hold exactly the rows of the files it replaced?

A compaction (``dataChange = false``) legitimately writes new files with new bytes, so hashes
cannot vouch for them; their rows can. Partition by partition (the partition value counts:
rows filed under another day vanish from windowed reads), both sides are read, aligned on
the union of their columns (a file written before a feature was added lacks that column:
nulls), sorted on every column and compared exactly. NaN counts as null (the capture stores
NaN as null; a float column may hold either).

Cost: every byte of both sides is read and decoded once; memory holds one partition's rows
of one compaction (a compaction merges files smaller than 64 MB, so that is bounded by what
was appended since the previous one, not by the table).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from .location import Location

File = tuple[str, str]  # (path in the table, its partition values as canonical JSON)


def same_rows(location: Location, table_key: str, before: Sequence[File],
              after: Sequence[File]) -> bool:
    """True when every partition holds the same multiset of rows on both sides. Raises
    FileNotFoundError for a missing file and pyarrow errors for an unreadable one."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for side, files in enumerate((before, after)):
        for path, partition in files:
            groups.setdefault(partition, ([], []))[side].append(path)
    for old, new in groups.values():
        left = [_read(location, table_key, p) for p in old]
        right = [_read(location, table_key, p) for p in new]
        if not _equal(left, right):
            return False
    return True


def _read(location: Location, table_key: str, path: str) -> pa.Table:
    # Not pyarrow's thread pool: a rare abort at interpreter exit was traced to it.
    if location.is_local:
        source: str | pa.BufferReader = os.path.join(location.uri, table_key, path)
        if not os.path.exists(source):
            raise FileNotFoundError(source)
    else:
        source = pa.BufferReader(location.read_bytes(f"{table_key}/{path}"))
    return pq.ParquetFile(source).read(use_threads=False)


def _equal(left: list[pa.Table], right: list[pa.Table]) -> bool:
    try:
        schema = pa.unify_schemas([t.schema for t in (*left, *right)],
                                  promote_options="permissive")
        return bool(_canonical(left, schema).equals(_canonical(right, schema)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False  # the sides cannot even be aligned: not the same rows


def _canonical(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    import pyarrow.compute as pc

    schema = pa.schema([f.with_nullable(True) for f in schema]).remove_metadata()
    if not tables:
        return schema.empty_table()
    aligned = []
    for table in tables:
        columns = []
        for field in schema:
            if field.name not in table.column_names:
                columns.append(pa.nulls(table.num_rows, field.type))
                continue
            column = table[field.name].cast(field.type)
            if pa.types.is_floating(field.type):
                column = pc.if_else(pc.is_nan(column), pa.scalar(None, field.type), column)
            columns.append(column)
        aligned.append(pa.table(columns, schema=schema))
    rows = pa.concat_tables(aligned)
    return rows.sort_by([(name, "ascending") for name in schema.names])
