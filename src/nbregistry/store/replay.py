"""The Delta log replayed from its JSON commits alone, without checkpoints.

The JSON commits and the data files are the evidence; checkpoints are derived data that make
opening fast. Verification must not depend on them (a corrupt checkpoint is reported, not
fatal), and when deltalake cannot open a table because of one, the registry still opens
from the commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from . import commits
from .commits import Entry
from .location import Location

log = logging.getLogger("nbregistry")


@dataclass
class Replay:
    version: int = -1
    files: dict[str, Entry] = field(default_factory=dict)      # active path -> entry
    written: dict[int, datetime] = field(default_factory=dict)  # event seq -> commit time
    missing: list[int] = field(default_factory=list)            # log versions with no file
    unreadable: list[int] = field(default_factory=list)         # commits that don't parse
    protocol: dict[str, Any] = field(default_factory=dict)
    configuration: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)


def replay(location: Location, table: str, *, until: int | None = None) -> Replay:
    """Active files, commit times and damage, from one listing and every commit file (up to
    version ``until``, when given)."""
    out = Replay()
    versions: dict[int, tuple[str, datetime]] = {}
    for key, _, modified in location.list_shallow(f"{table}/{commits.LOG}/"):
        name = key.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            if until is None or int(name[:-5]) <= until:
                versions[int(name[:-5])] = (key, modified)
        elif ".checkpoint." in name:
            out.checkpoints.append(key)
    if not versions:
        return out
    out.version = max(versions)
    out.missing = [v for v in range(out.version + 1) if v not in versions]
    ordered = sorted(versions)
    keys = [versions[v][0] for v in ordered]
    adds: dict[str, bytes] = {}  # live path -> the line of its add action
    for version, (key, raw) in zip(ordered, location.read_many(keys), strict=True):
        try:
            if raw is None:
                raise FileNotFoundError(key)
            _apply_raw(out, adds, raw, version, versions[version][1])
        except (ValueError, UnicodeDecodeError, FileNotFoundError, KeyError, TypeError):
            out.unreadable.append(version)
    out.files = {path: commits.entry_of(json.loads(line)["add"]) for path, line in adds.items()}
    return out


# The commits nbregistry writes have a fixed shape, and verify reads every one of them: the
# lines it needs little of are read without a JSON parse (a third of the cost), falling back
# to one whenever a line is not exactly that shape. Statistics are parsed only for the
# files still live at the end.
_INFO, _SEQ = b'{"commitInfo":', b'"nbregistry.seq":"'
_ADD, _REMOVE = b'{"add":{"path":"', b'{"remove":{"path":"'


def _plain_path(line: bytes, prefix: bytes) -> str | None:
    """The path a line of that prefix names, when it needs no unescaping."""
    if not line.startswith(prefix):
        return None
    path = line[len(prefix):line.index(b'"', len(prefix))]
    return None if b"\\" in path or b"%" in path else path.decode()


def _apply_raw(out: Replay, adds: dict[str, bytes], raw: bytes, version: int,
               modified: datetime | None, dropped: set[str] | None = None) -> None:
    """One commit: adds kept as lines (parsed at the end, if still live), removes of files
    added before it (or, given ``dropped``, of files from a checkpoint: noted there)."""
    for line in raw.splitlines():
        if line.startswith(_INFO) and line.count(_SEQ) == 1:
            start = line.index(_SEQ) + len(_SEQ)
            digits = line[start:line.index(b'"', start)]
            if digits.isdigit() and modified is not None:
                out.written[int(digits)] = modified
            continue
        if (path := _plain_path(line, _ADD)) is not None:
            adds[path] = line
            continue
        if (path := _plain_path(line, _REMOVE)) is None and line.strip():
            action = json.loads(line)
            if "add" in action:
                adds[unquote(action["add"]["path"])] = line
                continue
            if "remove" not in action:
                _apply(out, [action], version, modified)
                continue
            path = unquote(action["remove"]["path"])
        if path is not None and adds.pop(path, None) is None and dropped is not None:
            dropped.add(path)
    if version == 0 and modified is not None:
        out.written.setdefault(1, modified)  # the genesis event, written by deltalake


def from_checkpoint(location: Location, table: str) -> Replay:
    """The snapshot from the last checkpoint and the commits after it, found by probing
    (no listing: listing the log costs as much as the log is long, 0.1 s at 10,000 commits
    in deltalake's open). Raises when the checkpoint cannot be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Replay()
    folder = f"{table}/{commits.LOG}"
    pointer = location.read_optional(f"{folder}/_last_checkpoint")
    if pointer is not None:
        found = json.loads(pointer)
        if found.get("parts") or found.get("v2Checkpoint"):
            raise ValueError("a multi-part or v2 checkpoint, which this reader does not read")
        version = int(found["version"])
        data = location.read_bytes(f"{folder}/{version:020d}.checkpoint.parquet")
        parquet = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False)
        # to_pylist and skip the nulls (tombstone rows): pyarrow.compute would cost more
        # to import than this does on a checkpoint of 200,000 rows
        listed = parquet.read(columns=["add.path", "add.size", "add.stats"],
                              use_threads=False).column("add")
        for add in listed.to_pylist():
            if add is not None:
                out.files[unquote(add["path"])] = commits.entry_of(add)
        rest = parquet.read(columns=["metaData.configuration", "protocol"], use_threads=False)
        metadata, protocol = ([row for row in rest.column(name).to_pylist() if row]
                              for name in ("metaData", "protocol"))
        out.configuration = dict(metadata[0]["configuration"] or []) if metadata else {}
        out.protocol = {k: v for k, v in (protocol[0] if protocol else {}).items()
                        if v is not None}
        out.version = version
    adds: dict[str, bytes] = {}  # the tail's, as in replay()
    dropped: set[str] = set()
    for raw in _tail(location, table, out.version):
        out.version += 1
        _apply_raw(out, adds, raw, out.version, None, dropped)
    for path in dropped:
        out.files.pop(path, None)
    out.files.update({path: commits.entry_of(json.loads(line)["add"])
                      for path, line in adds.items()})
    return out


def _tail(location: Location, table: str, version: int) -> Iterator[bytes]:
    """The commits after ``version``, up to the first that does not exist: probed one by one
    on a local disk (a failed open costs microseconds), listed from an offset and fetched
    concurrently on an object store (each probe would be a round trip)."""
    if location.is_local:
        while (raw := location.read_optional(commits.log_key(table, version + 1))) is not None:
            version += 1
            yield raw
        return
    listed = location.list_after(f"{table}/{commits.LOG}/", commits.log_key(table, version))
    keys: list[str] = []
    for key in sorted(key for key, _, _ in listed):
        if key != commits.log_key(table, version + len(keys) + 1):
            continue
        keys.append(key)
    for _, raw in location.read_many(keys):
        if raw is None:
            return
        yield raw


def _apply(out: Replay, actions: list[dict[str, Any]], version: int,
           modified: datetime | None) -> None:
    for action in actions:
        if "add" in action:
            out.files[unquote(action["add"]["path"])] = commits.entry_of(action["add"])
        elif "remove" in action:
            out.files.pop(unquote(action["remove"]["path"]), None)
        elif "protocol" in action:
            out.protocol = action["protocol"]
        elif "metaData" in action:
            out.configuration = dict(action["metaData"].get("configuration") or {})
        elif "commitInfo" in action:
            seq = action["commitInfo"].get("nbregistry.seq")
            if modified is not None and isinstance(seq, str) and seq.isdigit():
                out.written[int(seq)] = modified
    if version == 0 and modified is not None:
        out.written.setdefault(1, modified)  # the genesis event, written by deltalake


def elsewhere(location: Location, table: str, *, until: int) -> Callable[[], Replay]:
    """``replay`` in a child process, on the machine's other core, while this one goes on:
    returns the function that waits for it. A child started with ``python -m`` (not
    multiprocessing, whose children re-run a script's unguarded top level), given the
    request on stdin (credentials stay out of the process list)."""
    import contextlib
    import os
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[2])  # where this nbregistry is imported from
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    try:
        child = subprocess.Popen([sys.executable, "-m", "nbregistry.store.replay"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path})
    except OSError:  # no interpreter to start (an embedded Python): replay here, later
        return lambda: replay(location, table, until=until)
    request = {"uri": location.uri, "options": location.storage_options, "table": table,
               "until": until}
    assert child.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # a child that died at once: wait() says so
        child.stdin.write(pickle.dumps(request))
        child.stdin.close()
    child.stdin = None  # sent: communicate() must not flush it

    def wait() -> Replay:
        out, err = child.communicate()
        if child.returncode != 0:  # say why, then do it here
            log.warning("replaying the log in a child process failed (%s); replaying here",
                        err.decode(errors="replace").strip().splitlines()[-1:] or "no output")
            return replay(location, table, until=until)
        found: Replay = pickle.loads(out)
        return found
    return wait


def _serve() -> None:
    import pickle
    import sys

    request = pickle.load(sys.stdin.buffer)
    found = replay(Location.parse(request["uri"], request["options"]), request["table"],
                   until=request["until"])
    pickle.dump(found, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)


if __name__ == "__main__":
    # the package's own module, so that what is pickled is nbregistry.store.replay.Replay
    from nbregistry.store.replay import _serve as serve

    serve()
