"""Delta commits written and read directly: one event = one data file + one commit file.

deltalake's writer lists the whole ``_delta_log`` on every append (local object stores can't
list from an offset), so its cost grows with the number of commits: 5 ms at 300 commits,
15 ms at 4,000 here. An append-only table with protocol (1, 2) needs nothing that makes a
hand-written commit hard: the data file, then ``_delta_log/<version>.json`` put-if-absent,
which is exactly deltalake's own commit primitive. Readers, compaction and checkpoints stay
deltalake's.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from ..domain.entities import Event

LOG = "_delta_log"


def log_key(table: str, version: int) -> str:
    return f"{table}/{LOG}/{version:020d}.json"


def data_file(table: pa.Table) -> tuple[str, bytes]:
    """A one-event parquet file, as small as parquet allows (~1.2 KB): no compression,
    statistics or embedded Arrow schema, which on one row only add bytes (the commit carries
    the statistics readers skip by, and compaction rewrites these into compressed files)."""
    name = f"part-00000-{uuid.uuid4()}-c000.parquet"
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="none", write_statistics=False,
                   store_schema=False, use_dictionary=False)
    return name, buffer.getvalue()


def commit_body(name: str, size: int, event: Event) -> bytes:
    """commitInfo + add, with the statistics readers skip files by. Every column a reader
    may filter on (seq, ts, action, model, version) has them: a reader given statistics for
    some columns only was seen to skip files it must read (deltalake 1.6, conformance test)."""
    now = int(time.time() * 1000)
    ts = event.ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event.ts.microsecond // 1000:03d}Z"
    bounds: dict[str, Any] = {"seq": event.seq, "ts": ts, "action": event.action}
    nulls = {"seq": 0, "ts": 0, "action": 0, "model": int(event.model is None),
             "version": int(event.version is None)}
    if event.model is not None:
        bounds["model"] = event.model
    if event.version is not None:
        bounds["version"] = event.version
    stats = {"numRecords": 1, "minValues": bounds, "maxValues": bounds, "nullCount": nulls}
    info = {"timestamp": now, "operation": "WRITE", "operationParameters": {"mode": "Append"},
            "isBlindAppend": True, "clientVersion": "nbregistry",
            "nbregistry.seq": str(event.seq), "nbregistry.hash": event.hash}
    add = {"path": name, "partitionValues": {}, "size": size, "modificationTime": now,
           "dataChange": True, "stats": json.dumps(stats, separators=(",", ":"))}
    lines = [json.dumps({"commitInfo": info}, separators=(",", ":")),
             json.dumps({"add": add}, separators=(",", ":"))]
    return ("\n".join(lines) + "\n").encode()


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


def event_seq(raw: bytes) -> int | None:
    """The seq of the event a hand-written commit holds (None for compaction commits)."""
    first = raw.split(b"\n", 1)[0]
    if b"nbregistry.seq" not in first:
        return None
    info: dict[str, Any] = json.loads(first).get("commitInfo", {})
    value = info.get("nbregistry.seq")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def added_files(raw: bytes, table_uri: str) -> list[str]:
    """Paths (relative to the table) of the data a commit added; compaction rewrites
    (dataChange = false) add no new rows and are skipped."""
    paths = []
    for line in raw.decode().splitlines():
        if not line.strip():
            continue
        action: dict[str, Any] = json.loads(line)
        add = action.get("add")
        if add and add.get("dataChange", True):
            path = unquote(add["path"])
            if "://" in path or path.startswith("/"):
                path = path.split(table_uri.rstrip("/") + "/", 1)[-1]
            paths.append(path)
    return paths


def read_parquet(raw: bytes) -> pa.Table:
    # ParquetFile, not read_table: read_table pulls in pyarrow.dataset (and pandas), is 3x
    # slower on small files and aborted the interpreter at exit in a bare script here.
    return pq.ParquetFile(io.BytesIO(raw)).read()
