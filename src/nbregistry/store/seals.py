"""Seals: evidence, kept in the event chain, that a monitoring table was not rewritten later.

A seal is a small JSON-able dict::

    {"table": "monitoring/credit_risk/predictions",  # relative to the registry root
     "table_id": "<Delta metaData id>",              # changes when a table is recreated
     "version": 12,                                  # Delta version sealed (-1: no table yet)
     "commit_sha256": "<sha256 of _delta_log/…12.json>",
     "files": 7, "files_sha256": "<sha256 of the sorted 'path<TAB>size' lines>",
     "rows": 12345,
     "content_sha256": "<optional: sha256 of 'path<TAB>size<TAB>sha256(file)' lines>"}

:func:`check_seals` reports, as readable problems:

- the sealed commit file is missing or its bytes changed (rewritten commit JSON);
- the table was recreated (another ``metaData.id``) or cut back below the sealed version;
- the log no longer reconstructs the sealed file list (an earlier commit or checkpoint edited);
- a sealed data file is missing or has another size than the log records (rewritten);
  with ``content_sha256``, also a same-size rewrite (reads every sealed file: O(data));
- a later commit removes sealed rows with ``dataChange = true`` (DELETE, UPDATE, MERGE,
  overwrite, RESTORE) — possible only after turning ``delta.appendOnly`` off, which is
  itself reported;
- a later ``dataChange = false`` commit (compaction) that does not keep the row count, and
  sealed files (or their compacted successors) missing from the current snapshot (a forged
  checkpoint).

What it does not prove: a forged "compaction" that keeps the row count while changing values
in the rewritten files passes, because compaction legitimately writes new files. Keep
``content`` seals for the files, and compare row digests of the engine's reads, if that threat
matters. Appending rows is always allowed: the tables are append-only, not frozen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ..domain.errors import InvalidInputError
from . import commits, forkguard
from .location import Location
from .monitoring import MonitorTable


def _digest(lines: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def _files_digest(files: Mapping[str, tuple[int, int]]) -> str:
    return _digest(f"{p}\t{size}" for p, (size, _) in files.items())


def _content_digest(location: Location, key: str, files: Mapping[str, tuple[int, int]]) -> str:
    lines = []
    for path, (size, _) in files.items():
        data = location.read_bytes(f"{key}/{path}")
        lines.append(f"{path}\t{size}\t{hashlib.sha256(data).hexdigest()}")
    return _digest(lines)


Files = dict[str, tuple[int, int]]  # path -> (size, rows)


def _active(location: Location, key: str, version: int | None) -> tuple[int, str, Files]:
    """(version, table id, {path: (size, rows)}) of a snapshot, via deltalake."""
    import pyarrow as pa
    from deltalake import DeltaTable

    def run() -> tuple[int, str, Files]:
        options = location.storage_options or None
        dt = DeltaTable(location.join(key), version=version, storage_options=options)
        actions = pa.table(dt.get_add_actions(flatten=True))
        files = {unquote(p): (int(s), int(r or 0)) for p, s, r in zip(
            actions["path"].to_pylist(), actions["size_bytes"].to_pylist(),
            actions["num_records"].to_pylist(), strict=True)}
        return int(dt.version()), str(dt.metadata().id), files

    return forkguard.guarded(run)


def seal(table: MonitorTable, *, content: bool = False) -> dict[str, Any]:
    """Seal the newest version of ``table`` (see the module docstring for the fields)."""
    if not table.exists():
        return {"table": table.key, "table_id": None, "version": -1, "commit_sha256": None,
                "files": 0, "files_sha256": _digest([]), "rows": 0}
    version, table_id, files = _active(table.location, table.key, None)
    commit = table.location.read_bytes(commits.log_key(table.key, version))
    out: dict[str, Any] = {
        "table": table.key, "table_id": table_id, "version": version,
        "commit_sha256": hashlib.sha256(commit).hexdigest(), "files": len(files),
        "files_sha256": _files_digest(files), "rows": sum(r for _, r in files.values())}
    if content:
        out["content_sha256"] = _content_digest(table.location, table.key, files)
    return out


def check_seal(location: Location, sealed: Mapping[str, Any]) -> list[str]:
    return check_seals(location, [sealed])


def check_seals(location: Location, seals: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems found for any of ``seals`` (empty when every seal holds). Seals of one table
    are checked in one forward pass over its log, so checking all of them costs about as
    much as checking the oldest."""
    by_table: dict[str, list[Mapping[str, Any]]] = {}
    for item in seals:
        _validate(item)
        if int(item["version"]) >= 0:
            by_table.setdefault(str(item["table"]), []).append(item)
    problems: list[str] = []
    for key, items in by_table.items():
        items.sort(key=lambda s: int(s["version"]))
        problems += _TableCheck(location, key, items).run()
    return problems


def _validate(item: Mapping[str, Any]) -> None:
    needed = ("table", "table_id", "version", "commit_sha256", "files_sha256", "rows")
    missing = [k for k in needed if k not in item]
    if missing:
        raise InvalidInputError(f"not a monitoring seal: fields {missing} are missing",
                                field=missing[0])


@dataclass
class _TableCheck:
    location: Location
    key: str
    seals: list[Mapping[str, Any]]
    problems: list[str] = field(default_factory=list)
    active: dict[str, tuple[int, int]] = field(default_factory=dict)
    tracked: dict[str, int] = field(default_factory=dict)  # sealed files + compacted heirs
    rows_of: dict[str, int] = field(default_factory=dict)

    def run(self) -> list[str]:
        first = int(self.seals[0]["version"])
        if not self.location.exists(commits.log_key(self.key, 0)):
            return [f"{self.key}: the table is gone (sealed at version {first})"]
        for item in self.seals:
            self._commit(item)
        try:
            latest, table_id, current = _active(self.location, self.key, None)
            _, _, self.active = _active(self.location, self.key, first)
        except Exception as exc:
            return [*self.problems, f"{self.key}: the Delta log cannot be read at version "
                    f"{first} ({exc}); it was altered"]
        for item in self.seals:
            if item["table_id"] != table_id:
                self.problems.append(f"{self.key}: the table was recreated (id {table_id}, "
                                     f"sealed id {item['table_id']})")
                return self.problems
        if latest < int(self.seals[-1]["version"]):
            self.problems.append(f"{self.key}: the table is at version {latest}, behind the "
                                 f"sealed version {self.seals[-1]['version']}: commits deleted")
            return self.problems
        self.rows_of = {p: r for p, (_, r) in self.active.items()}
        self._walk(first, latest)
        self._against_current(current)
        self._files()
        return self.problems

    def _commit(self, item: Mapping[str, Any]) -> None:
        version = int(item["version"])
        try:
            raw = self.location.read_bytes(commits.log_key(self.key, version))
        except FileNotFoundError:
            self.problems.append(f"{self.key}: sealed commit {version} is missing")
            return
        if hashlib.sha256(raw).hexdigest() != item["commit_sha256"]:
            self.problems.append(f"{self.key}: sealed commit {version} was rewritten "
                                 "(its sha256 differs from the seal)")

    def _sealed_state(self, item: Mapping[str, Any]) -> None:
        """Compare the walked snapshot with a seal at its version; track its files."""
        version = int(item["version"])
        if _files_digest(self.active) != item["files_sha256"]:
            self.problems.append(f"{self.key}: the log no longer reconstructs the file list "
                                 f"sealed at version {version} (a commit or checkpoint at or "
                                 "before it was altered)")
        rows = sum(r for _, r in self.active.values())
        if rows != int(item["rows"]):
            self.problems.append(f"{self.key}: version {version} holds {rows} rows, sealed "
                                 f"{item['rows']}")
        for path, (size, _) in self.active.items():
            self.tracked[path] = size
        if "content_sha256" in item and _content_digest(
                self.location, self.key, self.active) != item["content_sha256"]:
            self.problems.append(f"{self.key}: the content of data files sealed at version "
                                 f"{version} changed")

    def _walk(self, first: int, latest: int) -> None:
        pending = {int(s["version"]): s for s in self.seals}
        self._sealed_state(pending.pop(first))
        for version in range(first + 1, latest + 1):
            try:
                raw = self.location.read_bytes(commits.log_key(self.key, version))
            except FileNotFoundError:
                self.problems.append(f"{self.key}: commit {version} is missing from the log")
                return
            self._apply(version, [json.loads(line) for line in raw.decode().splitlines()
                                  if line.strip()])
            if version in pending:
                self._sealed_state(pending.pop(version))

    def _apply(self, version: int, actions: list[dict[str, Any]]) -> None:
        info: dict[str, Any] = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        operation = info.get("operation", "?")
        adds = [a["add"] for a in actions if "add" in a]
        removes = [a["remove"] for a in actions if "remove" in a]
        for meta in (a["metaData"] for a in actions if "metaData" in a):
            setting = (meta.get("configuration") or {}).get("delta.appendOnly")
            if setting != "true":
                self.problems.append(f"{self.key}: version {version} ({operation}) set "
                                     f"delta.appendOnly to {setting!r}")
        for add in adds:
            stats = json.loads(add.get("stats") or "{}")
            self.rows_of[unquote(add["path"])] = int(stats.get("numRecords", 0))
        rewrite = bool(removes) and not any(
            a.get("dataChange", True) for a in [*adds, *removes])
        heirs = False
        for remove in removes:
            path = unquote(remove["path"])
            self.active.pop(path, None)
            if path in self.tracked:
                heirs = True
                if remove.get("dataChange", True):
                    self.problems.append(
                        f"{self.key}: version {version} ({operation}) removed sealed rows "
                        f"(data file {path}, {self.rows_of.get(path, '?')} rows)")
        for add in adds:
            path = unquote(add["path"])
            self.active[path] = (int(add["size"]), self.rows_of[path])
            if heirs and rewrite:
                self.tracked[path] = int(add["size"])
        if rewrite:
            before = sum(self.rows_of.get(unquote(r["path"]), 0) for r in removes)
            after = sum(self.rows_of[unquote(a["path"])] for a in adds)
            if before != after:
                self.problems.append(f"{self.key}: version {version} ({operation}) claims to "
                                     f"only reorganize files but turns {before} rows into "
                                     f"{after}")

    def _against_current(self, current: Mapping[str, tuple[int, int]]) -> None:
        for path in sorted(set(self.tracked) & set(self.active)):
            if path not in current:
                self.problems.append(f"{self.key}: sealed data file {path} is not in the "
                                     "current snapshot although no commit removed it (a "
                                     "checkpoint was altered)")

    def _files(self) -> None:
        sizes = {path: size for path, size, _ in self.location.list(f"{self.key}/")}
        for path, size in sorted(self.tracked.items()):
            got = sizes.get(f"{self.key}/{path}")
            if got is None:
                self.problems.append(f"{self.key}: sealed data file {path} is missing")
            elif got != size:
                self.problems.append(f"{self.key}: sealed data file {path} was rewritten "
                                     f"({got} bytes, the log records {size})")
