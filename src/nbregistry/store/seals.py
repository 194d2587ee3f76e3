"""Seals: evidence, kept in the event chain, that a monitoring table was not changed later.

A seal is a small JSON-able dict::

    {"table": "monitoring/credit_risk/predictions",  # relative to the registry root
     "table_id": "<Delta metaData id>",              # changes when a table is recreated
     "version": 12,                                  # Delta version sealed (-1: no table yet)
     "commit_sha256": "<sha256 of _delta_log/…12.json>",
     "files": 7, "files_sha256": "<sha256 of the sorted 'path<TAB>size' lines>",
     "rows": 12345,
     "content_sha256": "<sha256 of the sorted 'path<TAB>size<TAB>sha256(file)' lines>",
     "file_sha256": {"<path>": "<sha256>", …}}      # the files this seal first records

``content_sha256`` covers every data file live at the sealed version. Files are immutable,
so each is hashed once, at the first seal after it lands (the hashes are remembered between
seals as derived data: :mod:`.filehashes`); ``file_sha256`` puts each file's own hash in the
audit log once (up to ``MAX_RECORDED`` a seal, the rest at the next ones), so that a changed
file can be named. Seals written before content hashing lack both fields.

:func:`check_seals` proves, for every seal, as readable problems when it fails:

- the sealed commit file has the same bytes; the table was not recreated (another
  ``metaData.id``) nor cut back below the sealed version; the log (commits and checkpoints)
  still reconstructs the sealed file list, sizes and row count;
- with ``content_sha256``: every data file live at the sealed version still holds the bytes
  it held when sealed (each file's sha256 is recomputed from storage, streamed); a changed
  file is named (by the hash ``file_sha256`` recorded for it);
- after the seal, every commit that drops a sealed file (or a file a compaction wrote in its
  place) keeps its rows: ``dataChange = true`` removals (DELETE, UPDATE, MERGE, overwrite,
  RESTORE; possible only after turning ``delta.appendOnly`` off, itself reported) are
  reported; a compaction (``dataChange = false``) must write files that hold exactly the same
  rows, partition by partition (read and compared, :mod:`.rowcheck`), not just the same count;
- every such file is still in storage with the size the log records, and still in the
  current snapshot (a forged checkpoint cannot hide it).

So the rows a reader of the newest version gets include exactly the sealed rows. Not proven:
anything about rows before they were sealed (a seal vouches for the bytes it hashed, and a
seal without content fields for the file list, sizes and row counts only: a same-size
rewrite of a file only such seals cover passes until a content seal covers it), and rows
appended after the newest seal. Appending is always allowed: the tables are append-only,
not frozen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote

from ..domain.errors import IntegrityError, InvalidInputError
from . import commits, forkguard, rowcheck
from .filehashes import HashCache, Known, hash_files
from .location import Location
from .monitoring import MonitorTable

# Per table and seal: ~150 bytes each in the event, and one event holds at most 256 kB.
MAX_RECORDED = 400

Files = dict[str, tuple[int, int]]  # path -> (size, rows)


def _digest(lines: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def _files_digest(files: Mapping[str, tuple[int, int]]) -> str:
    return _digest(f"{p}\t{size}" for p, (size, _) in files.items())


def _content_digest(files: Mapping[str, tuple[int, int]], shas: Mapping[str, str]) -> str:
    return _digest(f"{p}\t{size}\t{shas[p]}" for p, (size, _) in files.items())


def _partition(values: Any) -> str:
    return json.dumps(values or {}, sort_keys=True)


class _Snap(NamedTuple):
    version: int
    table_id: str
    files: Files
    partitions: dict[str, str]  # path -> partition values (canonical JSON)


def _active(location: Location, key: str, version: int | None) -> _Snap:
    """A snapshot's data files, via deltalake (checkpoints included)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    def run() -> _Snap:
        options = location.storage_options or None
        dt = DeltaTable(location.join(key), version=version, storage_options=options)
        actions = pa.table(dt.get_add_actions(flatten=True))
        paths = [unquote(p) for p in actions["path"].to_pylist()]
        files = {p: (int(s), int(r or 0)) for p, s, r in zip(
            paths, actions["size_bytes"].to_pylist(), actions["num_records"].to_pylist(),
            strict=True)}
        # As the log writes them: text (cast by Arrow, which also spells years past 9999).
        names = [n for n in actions.column_names if n.startswith("partition.")]
        values = pa.table({n.removeprefix("partition."): actions[n].cast(pa.string())
                           for n in names}).to_pylist() if names else [{}] * len(paths)
        partitions = {p: _partition(v) for p, v in zip(paths, values, strict=True)}
        return _Snap(int(dt.version()), str(dt.metadata().id), files, partitions)

    return forkguard.guarded(run)


def seal(table: MonitorTable) -> dict[str, Any]:
    """Seal the newest version of ``table`` (see the module docstring for the fields),
    hashing the data files no earlier seal hashed."""
    if not table.exists():
        return {"table": table.key, "table_id": None, "version": -1, "commit_sha256": None,
                "files": 0, "files_sha256": _digest([]), "rows": 0,
                "content_sha256": _digest([]), "file_sha256": {}}
    snap = _active(table.location, table.key, None)
    commit = hashlib.sha256(table.location.read_bytes(
        commits.log_key(table.key, snap.version))).hexdigest()
    entries = _hashes(table, snap, f"{snap.version}:{commit}")
    return {"table": table.key, "table_id": snap.table_id, "version": snap.version,
            "commit_sha256": commit, "files": len(snap.files),
            "files_sha256": _files_digest(snap.files),
            "rows": sum(r for _, r in snap.files.values()),
            "content_sha256": _content_digest(snap.files, {p: e.sha256
                                                           for p, e in entries.items()}),
            "file_sha256": {p: e.sha256 for p, e in sorted(entries.items())
                            if e.recorded_by == f"{snap.version}:{commit}"}}


def _hashes(table: MonitorTable, snap: _Snap, me: str) -> dict[str, Known]:
    """Every live file's hash (remembered, or computed now), and which this seal records:
    the ones no seal recorded yet (and, when a lost commit race builds the same seal again,
    the ones this very seal chose before)."""
    cache = HashCache(table.location, table.key)
    known = cache.load(snap.table_id)
    todo = {p: size for p, (size, _) in snap.files.items()
            if p not in known or known[p].size != size}
    fresh = hash_files(table.location, table.key, todo)
    missing = sorted(p for p, got in fresh.items() if got is None)
    if missing:
        raise IntegrityError(f"{table.uri}: data file(s) {', '.join(missing[:3])} named by "
                             f"the Delta log at version {snap.version} are missing: the table "
                             "cannot be sealed. Run `nbregistry verify`.", problems=missing)
    entries = {p: Known(size, got[0], None) if (got := fresh.get(p)) is not None else known[p]
               for p, (size, _) in snap.files.items()}
    mine = sorted(p for p, e in entries.items() if e.recorded_by == me)
    pending = sorted(p for p, e in entries.items() if e.recorded_by is None)
    for path in (mine + pending)[:MAX_RECORDED]:
        entries[path] = entries[path]._replace(recorded_by=me)
    cache.store(snap.table_id, entries)
    return entries


def check_seal(location: Location, sealed: Mapping[str, Any]) -> list[str]:
    return check_seals(location, [sealed])


def check_seals(location: Location, seals: Sequence[Mapping[str, Any]]) -> list[str]:
    """Problems found for any of ``seals`` (empty when every seal holds). Seals of one table
    are checked in one forward pass over its log, and each data file is hashed once, so
    checking all of them costs about as much as checking the oldest."""
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
    recorded = item.get("file_sha256", {})
    if not isinstance(recorded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()):
        raise InvalidInputError("not a monitoring seal: file_sha256 must map data file paths "
                                "to sha256 hex digests", field="file_sha256")


@dataclass
class _TableCheck:
    location: Location
    key: str
    seals: list[Mapping[str, Any]]
    problems: list[str] = field(default_factory=list)
    active: Files = field(default_factory=dict)          # the walked version's files
    partitions: dict[str, str] = field(default_factory=dict)
    tracked: dict[str, int] = field(default_factory=dict)  # sealed files + compacted heirs
    rows_of: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, tuple[str, int]] = field(default_factory=dict)  # sha256, seal version
    hashes: dict[str, tuple[str, int] | None] = field(default_factory=dict)  # recomputed
    named: set[str] = field(default_factory=set)  # files already reported as changed

    def run(self) -> list[str]:
        first = int(self.seals[0]["version"])
        if not self.location.exists(commits.log_key(self.key, 0)):
            return [f"{self.key}: the table is gone (sealed at version {first})"]
        for item in self.seals:
            self._commit(item)
        try:
            latest = _active(self.location, self.key, None)
            start = _active(self.location, self.key, first)
        except Exception as exc:
            return [*self.problems, f"{self.key}: the Delta log cannot be read at version "
                    f"{first} ({exc}); it was altered"]
        for item in self.seals:
            if item["table_id"] != latest.table_id:
                self.problems.append(f"{self.key}: the table was recreated (id "
                                     f"{latest.table_id}, sealed id {item['table_id']})")
                return self.problems
        if latest.version < int(self.seals[-1]["version"]):
            self.problems.append(f"{self.key}: the table is at version {latest.version}, behind "
                                 f"the sealed version {self.seals[-1]['version']}: commits "
                                 "deleted")
            return self.problems
        self.active, self.partitions = dict(start.files), dict(start.partitions)
        self.rows_of = {p: r for p, (_, r) in self.active.items()}
        self._recorded()
        self._walk(first, latest.version)
        self._against_current(latest.files)
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

    def _recorded(self) -> None:
        """Each file's own hash as the seals recorded it; two different ones for a file
        mean it changed between those seals."""
        for item in self.seals:
            version = int(item["version"])
            for path, sha in item.get("file_sha256", {}).items():
                earlier = self.recorded.setdefault(path, (sha, version))
                if earlier[0] != sha and path not in self.named:
                    self.named.add(path)
                    self.problems.append(
                        f"{self.key}: data file {path} was sealed as sha256 {earlier[0][:12]}… "
                        f"at version {earlier[1]} and as {sha[:12]}… at version {version}: it "
                        "was rewritten in between")

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
        if "content_sha256" in item:
            self._content(item, version)

    def _content(self, item: Mapping[str, Any], version: int) -> None:
        """Recompute the content digest from the files themselves (each hashed once)."""
        todo = {p: size for p, (size, _) in self.active.items() if p not in self.hashes}
        self.hashes.update(hash_files(self.location, self.key, todo))
        now: dict[str, str] = {}
        for path, (size, _) in self.active.items():
            got = self.hashes[path]
            if got is None or got[1] != size:
                return  # missing or resized: _files names it
            now[path] = got[0]
        if _content_digest(self.active, now) == item["content_sha256"]:
            return
        changed = [p for p in sorted(self.active)
                   if p in self.recorded and self.recorded[p][0] != now[p]]
        for path in changed:
            if path not in self.named:
                self.named.add(path)
                then, at = self.recorded[path]
                self.problems.append(
                    f"{self.key}: sealed data file {path} was rewritten: its sha256 is now "
                    f"{now[path][:12]}…, sealed as {then[:12]}… at version {at} (same size)")
        unknown = sorted(p for p in self.active if p not in self.recorded)
        if not changed and unknown:
            self.problems.append(
                f"{self.key}: the data files sealed at version {version} no longer hash as "
                f"sealed; the changed one is among the {len(unknown)} whose own hash no seal "
                f"recorded: {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}")
        elif not changed:
            self.problems.append(
                f"{self.key}: the content digest sealed at version {version} does not match "
                "the files, although each still has the hash recorded for it: that seal was "
                "computed from wrong hashes (a tampered hash cache in monitoring/<model>/"
                "hashes/?)")

    def _walk(self, first: int, latest: int) -> None:
        pending = {int(s["version"]): s for s in self.seals}
        self._sealed_state(pending.pop(first))
        for version in range(first + 1, latest + 1):
            try:
                raw = self.location.read_bytes(commits.log_key(self.key, version))
                actions = [json.loads(line) for line in raw.decode().splitlines()
                           if line.strip()]
            except FileNotFoundError:
                self.problems.append(f"{self.key}: commit {version} is missing from the log")
                return
            except ValueError as exc:
                self.problems.append(f"{self.key}: commit {version} is not valid JSON ({exc})")
                return
            try:
                self._apply(version, actions)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.problems.append(f"{self.key}: commit {version} holds malformed actions "
                                     f"({type(exc).__name__}: {exc})")
                return
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
            self.rows_of[unquote(add["path"])] = _records(add)
        for remove in removes:
            path = unquote(remove["path"])
            if path in self.tracked and remove.get("dataChange", True) is not False:
                self.problems.append(
                    f"{self.key}: version {version} ({operation}) removed sealed rows "
                    f"(data file {path}, {self.rows_of.get(path, '?')} rows)")
        moved = [unquote(r["path"]) for r in removes if r.get("dataChange", True) is False]
        heirs = {unquote(a["path"]): a for a in adds if a.get("dataChange", True) is False}
        touched = any(p in self.tracked for p in moved)
        if moved and (touched or all(a.get("dataChange", True) is False for a in adds)):
            self._reorganized(version, operation, moved, heirs, check_rows=touched)
        for remove in removes:
            self.active.pop(unquote(remove["path"]), None)
        for add in adds:
            path = unquote(add["path"])
            self.active[path] = (int(add["size"]), self.rows_of[path])
            self.partitions[path] = _partition(add.get("partitionValues"))
            if touched and path in heirs:
                self.tracked[path] = int(add["size"])

    def _reorganized(self, version: int, operation: str, moved: list[str],
                     heirs: Mapping[str, Mapping[str, Any]], *, check_rows: bool) -> None:
        """A commit that claims to only move rows between files (a compaction)."""
        before = sum(self.rows_of.get(p, 0) for p in moved)
        after = sum(self.rows_of[p] for p in heirs)
        if before != after:
            self.problems.append(f"{self.key}: version {version} ({operation}) claims to "
                                 f"only reorganize files but turns {before} rows into {after}")
            return
        if not check_rows:
            return
        import pyarrow as pa

        old = [(p, self.partitions.get(p, "?")) for p in moved]
        new = [(p, _partition(a.get("partitionValues"))) for p, a in heirs.items()]
        try:
            same = rowcheck.same_rows(self.location, self.key, old, new)
        except (OSError, pa.ArrowException) as exc:
            self.problems.append(f"{self.key}: version {version} ({operation}) cannot be "
                                 f"checked: a file it names is missing or unreadable ({exc})")
            return
        if not same:
            self.problems.append(
                f"{self.key}: version {version} ({operation}) claims to only reorganize "
                f"files but changes sealed rows: {_names(heirs)} do not hold the rows of the "
                f"files they replace ({_names(moved)}), although the row count ({before}) "
                "matches")

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


def _records(add: Mapping[str, Any]) -> int:
    try:
        return int(json.loads(add.get("stats") or "{}").get("numRecords", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


def _names(paths: Iterable[str]) -> str:
    names = sorted(paths)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
