"""sha256 of monitoring data files: streamed, in parallel, and remembered between seals.

Delta data files are immutable (a new name for every write, and the monitoring tables are
never VACUUMed), so each file is hashed once, at the first seal after it lands. The hashes
are remembered in ``monitoring/<model>/hashes/<kind>.json`` next to the tables, in the
registry's own storage (every machine that seals shares it):

    {"table_id": "<Delta metaData id>",
     "files": {"<path>": [size, "<sha256>", "<version>:<commit sha256> of the seal that
                          recorded it in the audit log, or null"]}}

It is derived data, not evidence: lose it and the next seal hashes every live file again;
poison it and the seal commits a wrong hash, which ``verify()`` reports (it recomputes every
hash from the files). It never makes a rewritten file pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from .location import Location

# hashlib and file/socket reads release the GIL: a few threads keep both cores (or the
# network) busy on many small files; more only queue on a 2-core machine.
THREADS = 4
_SHA = re.compile(r"^[0-9a-f]{64}$")


class Known(NamedTuple):
    size: int
    sha256: str
    recorded_by: str | None  # the seal that put this hash in the audit log, if any


def hash_files(location: Location, table_key: str, paths: Mapping[str, int]
               ) -> dict[str, tuple[str, int] | None]:
    """{path: (sha256, size as read), or None when the file is missing} for a table's data
    files (``paths`` maps each to its size in the Delta log)."""
    def one(path: str) -> tuple[str, tuple[str, int] | None]:
        try:
            return path, location.sha256(f"{table_key}/{path}")
        except FileNotFoundError:
            return path, None

    if len(paths) <= 1:
        return dict(one(p) for p in paths)
    with ThreadPoolExecutor(min(THREADS, len(paths))) as pool:
        return dict(pool.map(one, sorted(paths)))


class HashCache:
    """The remembered hashes of one table's live files (see the module docstring)."""

    def __init__(self, location: Location, table_key: str) -> None:
        parent, kind = table_key.rsplit("/", 1)
        self.location = location
        self.key = f"{parent}/hashes/{kind}.json"

    def load(self, table_id: str) -> dict[str, Known]:
        """The entries for this incarnation of the table; {} when absent or unreadable."""
        try:
            raw = self.location.read_optional(self.key)
            doc: Any = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(doc, dict) or doc.get("table_id") != table_id \
                or not isinstance(doc.get("files"), dict):
            return {}
        found = {}
        for path, entry in doc["files"].items():
            if (isinstance(entry, list) and len(entry) == 3 and type(entry[0]) is int
                    and isinstance(entry[1], str) and _SHA.match(entry[1])
                    and (entry[2] is None or isinstance(entry[2], str))):
                found[path] = Known(*entry)
        return found

    def store(self, table_id: str, entries: Mapping[str, Known]) -> None:
        doc = {"table_id": table_id, "files": {p: list(e) for p, e in sorted(entries.items())}}
        self.location.put(self.key, json.dumps(doc, separators=(",", ":")).encode())
