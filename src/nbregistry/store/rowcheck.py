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
    import pyarrow.compute as pc

    try:
        schema = pa.unify_schemas([t.schema for t in (*left, *right)],
                                  promote_options="permissive")
        schema = pa.schema([f.with_nullable(True) for f in schema]).remove_metadata()
        a, b = _aligned(left, schema), _aligned(right, schema)
        if a.num_rows != b.num_rows:
            return False
        # Sorted on every column, compared a column at a time: one sorted copy of one column
        # in memory, not of both sides.
        keys = [(name, "ascending") for name in schema.names]
        order_a, order_b = pc.sort_indices(a, keys), pc.sort_indices(b, keys)
        return all(a[name].take(order_a).equals(b[name].take(order_b))
                   for name in schema.names)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False  # the sides cannot even be aligned: not the same rows


def _aligned(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """One table (chunks, not copies) in ``schema``: absent columns as nulls, NaN as null."""
    import pyarrow.compute as pc

    aligned = []
    for table in tables:
        columns = []
        for field in schema:
            if field.name not in table.column_names:
                columns.append(pa.nulls(table.num_rows, field.type))
                continue
            column = table[field.name].cast(field.type)
            if pa.types.is_floating(field.type) and pc.any(pc.is_nan(column)).as_py():
                column = pc.if_else(pc.is_nan(column), pa.scalar(None, field.type), column)
            columns.append(column)
        aligned.append(pa.table(columns, schema=schema))
    return pa.concat_tables(aligned) if aligned else schema.empty_table()
