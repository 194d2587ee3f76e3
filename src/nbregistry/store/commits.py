"""Delta commits written and read directly: one event = one data file + one commit file.

deltalake's writer lists the whole ``_delta_log`` on every append (local object stores can't
list from an offset), so its cost grows with the number of commits: 5 ms at 300 commits,
15 ms at 4,000 here. An append-only table with protocol (1, 2) needs nothing that makes a
hand-written commit hard: the data file, then ``_delta_log/<version>.json`` put-if-absent,
which is exactly deltalake's own commit primitive. Readers, compaction and checkpoints stay
deltalake's.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from ..domain.entities import Event

LOG = "_delta_log"


def log_key(table: str, version: int) -> str:
    return f"{table}/{LOG}/{version:020d}.json"


class Entry(NamedTuple):
    """One live data file: its size and, from the commit's statistics, its seq range."""
    size: int
    records: int | None = None
    low: int | None = None   # smallest seq in the file
    high: int | None = None  # largest seq in the file


# Data files are named for the seqs they hold, so a clean-up can tell which live file holds
# a removed file's rows (and since when) from a listing alone, without reading the log.
_NAME = re.compile(r"^e(\d{12})-(\d{12})-[0-9a-f]{32}\.parquet$")


def file_name(low: int, high: int) -> str:
    return f"e{low:012d}-{high:012d}-{uuid.uuid4().hex}.parquet"


def seq_range(name: str) -> tuple[int, int] | None:
    """The seqs a data file named by ``file_name`` holds (None for other names)."""
    found = _NAME.match(name)
    return (int(found.group(1)), int(found.group(2))) if found else None


def compacted_file(table: pa.Table) -> tuple[str, bytes]:
    """Many events (sorted by seq) in one compressed file."""
    seqs = table.column("seq")
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", store_schema=False)
    return file_name(seqs[0].as_py(), seqs[-1].as_py()), sink.getvalue().to_pybytes()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(ts: datetime, *, up: bool = False) -> str:
    """Delta statistics hold milliseconds: a maximum rounds up, or a reader filtering on a
    time between it and the true value would skip the file."""
    ms = ts.microsecond // 1000
    if up and ts.microsecond % 1000:
        ts = ts.replace(microsecond=0) + timedelta(milliseconds=ms + 1)
        ms = ts.microsecond // 1000
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def _stats(n: int, low: dict[str, Any], high: dict[str, Any], nulls: dict[str, int]) -> str:
    stats = {"numRecords": n, "minValues": low, "maxValues": high, "nullCount": nulls}
    return json.dumps(stats, separators=(",", ":"))


def event_stats(event: Event) -> str:
    """Statistics on every column a reader may filter on (seq, ts, action, model, version):
    a reader given statistics for some columns only was seen to skip files it must read
    (deltalake 1.6, conformance test)."""
    low: dict[str, Any] = {"seq": event.seq, "ts": _ms(event.ts), "action": event.action}
    high = {**low, "ts": _ms(event.ts, up=True)}
    for key in ("model", "version"):
        if getattr(event, key) is not None:
            low[key] = high[key] = getattr(event, key)
    nulls = {"seq": 0, "ts": 0, "action": 0, "model": int(event.model is None),
             "version": int(event.version is None)}
    return _stats(1, low, high, nulls)


def table_stats(table: pa.Table) -> str:
    """The same statistics, for a file of many events."""
    import pyarrow.compute as pc

    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for key in ("seq", "ts", "action", "model", "version"):
        column = table.column(key)
        nulls[key] = column.null_count
        if nulls[key] == len(column):
            continue
        bounds = pc.min_max(column.cast(pa.int64()) if key == "ts" else column)
        small, big = bounds["min"].as_py(), bounds["max"].as_py()
        if key == "ts":
            small = _ms(_EPOCH + timedelta(microseconds=small))
            big = _ms(_EPOCH + timedelta(microseconds=big), up=True)
        low[key], high[key] = small, big
    return _stats(table.num_rows, low, high, nulls)


def _line(action: str, body: dict[str, Any]) -> str:
    return json.dumps({action: body}, separators=(",", ":"))


def commit_body(name: str, size: int, event: Event) -> bytes:
    """commitInfo + add, with the statistics readers skip files by."""
    now = int(time.time() * 1000)
    info = {"timestamp": now, "operation": "WRITE", "operationParameters": {"mode": "Append"},
            "isBlindAppend": True, "clientVersion": "nbregistry",
            "nbregistry.seq": str(event.seq), "nbregistry.hash": event.hash}
    add = {"path": name, "partitionValues": {}, "size": size, "modificationTime": now,
           "dataChange": True, "stats": event_stats(event)}
    return (_line("commitInfo", info) + "\n" + _line("add", add) + "\n").encode()


def compaction_body(removed: dict[str, int], name: str, size: int, stats: str) -> bytes:
    """An OPTIMIZE commit: the merged file replaces its inputs, no row added or dropped
    (dataChange = false, which an appendOnly table allows)."""
    now = int(time.time() * 1000)
    info = {"timestamp": now, "operation": "OPTIMIZE",
            "operationParameters": {"files": str(len(removed))}, "isBlindAppend": False,
            "clientVersion": "nbregistry"}
    lines = [_line("commitInfo", info)]
    lines += [_line("remove", {"path": path, "deletionTimestamp": now, "dataChange": False,
                               "extendedFileMetadata": True, "partitionValues": {},
                               "size": removed_size})
              for path, removed_size in removed.items()]
    lines.append(_line("add", {"path": name, "partitionValues": {}, "size": size,
                               "modificationTime": now, "dataChange": False, "stats": stats}))
    return ("\n".join(lines) + "\n").encode()


def file_actions(raw: bytes) -> tuple[list[tuple[str, Entry, bool]], list[str]]:
    """(added files with their entry and dataChange flag, removed paths) of one commit."""
    adds: list[tuple[str, Entry, bool]] = []
    removes: list[str] = []
    for line in raw.decode().splitlines():
        if '"add"' not in line and '"remove"' not in line:
            continue
        action: dict[str, Any] = json.loads(line)
        if "add" in action:
            add = action["add"]
            adds.append((unquote(add["path"]), entry_of(add), bool(add.get("dataChange", True))))
        elif "remove" in action:
            removes.append(unquote(action["remove"]["path"]))
    return adds, removes


def event_of(raw: bytes) -> tuple[int, str] | None:
    """(seq, hash) of the event a commit written by ``commit_body`` adds; None for others."""
    try:
        info = json.loads(raw.split(b"\n", 1)[0]).get("commitInfo") or {}
        return int(info["nbregistry.seq"]), str(info["nbregistry.hash"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def entry_of(add: dict[str, Any]) -> Entry:
    try:
        stats = json.loads(add.get("stats") or "{}")
        records = stats.get("numRecords")
        low, high = stats["minValues"].get("seq"), stats["maxValues"].get("seq")
    except (ValueError, KeyError, TypeError, AttributeError):
        records = low = high = None
    return Entry(int(add["size"]), records if isinstance(records, int) else None,
                 low if isinstance(low, int) else None, high if isinstance(high, int) else None)


# What this writer honours: plain appends of files with statistics, nothing else.
WRITER_VERSION = 2
HONOURED_FEATURES = frozenset({"appendOnly", "invariants"})
_REFUSED_PROPERTIES = {
    "delta.enableDeletionVectors": "deletion vectors",
    "delta.enableChangeDataFeed": "the change data feed",
    "delta.enableInCommitTimestamps": "in-commit timestamps",
    "delta.enableRowTracking": "row tracking",
}


def writer_refusal(*, reader_version: int, writer_version: int,
                   writer_features: list[str] | None, configuration: dict[str, str | None]
                   ) -> str | None:
    """Why the hand-written commits may not append to a table with this protocol and
    these properties (a change someone made to it), or None when they may."""
    found = []
    if writer_version > 7 or (writer_version > WRITER_VERSION and writer_version < 7):
        found.append(f"writer version {writer_version} (this writer speaks {WRITER_VERSION})")
    if reader_version > 1 and writer_version < 7:
        found.append(f"reader version {reader_version}")
    extra = sorted(set(writer_features or ()) - HONOURED_FEATURES)
    if extra:
        found.append(f"writer features {', '.join(extra)}")
    for key, what in _REFUSED_PROPERTIES.items():
        if str(configuration.get(key, "false")).lower() == "true":
            found.append(f"{what} ({key} = true)")
    mapping = str(configuration.get("delta.columnMapping.mode") or "none").lower()
    if mapping != "none":
        found.append(f"column mapping (delta.columnMapping.mode = {mapping})")
    if str(configuration.get("delta.appendOnly", "false")).lower() != "true":
        found.append("delta.appendOnly was turned off")
    return "; ".join(found) or None


def protocol_changes(raw: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The protocol and metaData actions of one commit, if it has them."""
    protocol = metadata = None
    for line in raw.decode().splitlines():
        if '"protocol"' in line or '"metaData"' in line:
            action: dict[str, Any] = json.loads(line)
            protocol = action.get("protocol", protocol)
            metadata = action.get("metaData", metadata)
    return protocol, metadata


def read_parquet(raw: bytes, columns: list[str] | None = None) -> pa.Table:
    # ParquetFile, not read_table: read_table pulls in pyarrow.dataset (and pandas), is 3x
    # slower on small files and aborted the interpreter at exit in a bare script here. No
    # threads: a one-process CLI must not leave pyarrow's pool running at exit (a rare
    # SIGABRT seen here), and these files are read one after another anyway.
    # From an Arrow buffer, without pre-buffering (coalescing reads of bytes already in
    # memory): 0.1 ms a file instead of 0.17 ms through a Python BytesIO.
    return pq.ParquetFile(pa.BufferReader(raw), pre_buffer=False).read(columns=columns,
                                                                        use_threads=False)
