"""The event log's rows and data files: the schema, tables of events, selecting rows by seq
without pyarrow.compute, and the seq runs of the data files."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from ..domain.entities import Event
from .commits import Entry

SCHEMA = pa.schema([
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("actor", pa.string(), nullable=False),
    pa.field("action", pa.string(), nullable=False),
    pa.field("model", pa.string()),
    pa.field("version", pa.int64()),
    pa.field("payload", pa.string(), nullable=False),
    pa.field("prev_hash", pa.string(), nullable=False),
    pa.field("hash", pa.string(), nullable=False),
])
def to_table(events: Sequence[Event]) -> pa.Table:
    return pa.Table.from_pydict({
        "seq": [e.seq for e in events],
        "event_id": [e.event_id for e in events],
        "ts": [e.ts for e in events],
        "actor": [e.actor for e in events],
        "action": [e.action for e in events],
        "model": [e.model for e in events],
        "version": [e.version for e in events],
        "payload": [e.payload_json for e in events],
        "prev_hash": [e.prev_hash for e in events],
        "hash": [e.hash for e in events],
    }, schema=SCHEMA)


def rows_where(table: pa.Table, keep: Callable[[int], bool]) -> pa.Table:
    """The rows whose seq passes ``keep``, as slices of ``table`` (in its order): no
    pyarrow.compute, whose import is a tenth of opening a registry."""
    seqs = table.column("seq").to_pylist()
    chosen = [i for i, seq in enumerate(seqs) if keep(seq)]
    if len(chosen) == len(seqs):
        return table
    pieces, start = [], 0
    for at, index in enumerate(chosen):
        if at + 1 == len(chosen) or chosen[at + 1] != index + 1:
            pieces.append(table.slice(chosen[start], index - chosen[start] + 1))
            start = at + 1
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


def after(table: pa.Table, seq: int) -> pa.Table:
    """The rows with seq greater than ``seq`` (in the table's order)."""
    return rows_where(table, lambda found: found > seq)


def runs(files: dict[str, Entry]) -> list[dict[str, Entry]]:
    """The files in seq order, grouped so that no two groups' seq ranges overlap: each group
    can be read, sorted and checked on its own. Files without statistics put everything in
    one group."""
    if any(e.low is None or e.high is None for e in files.values()):
        return [dict(files)] if files else []
    groups: list[dict[str, Entry]] = []
    top = -1
    for path, entry in sorted(files.items(), key=lambda item: item[1].low or 0):
        if groups and (entry.low or 0) <= top:
            groups[-1][path] = entry
        else:
            groups.append({path: entry})
        top = max(top, entry.high or 0)
    return groups
