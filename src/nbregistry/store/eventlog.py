"""The event log: a Delta table where each commit holds exactly one event.

A commit is put-if-absent on the Delta log, and we append with zero commit retries, so an
append lands at exactly the version our state was read at plus one, or fails. That turns
Delta's optimistic concurrency into compare-and-swap on the whole log: the chain cannot fork.

Storage stays linear: every FANOUT one-event files are merged into one file, every FANOUT
of those into one, and so on up to MAX_LEVEL (a log-structured merge: each event is
rewritten at most MAX_LEVEL times, and a file is never rewritten to grow). Merges are our
own OPTIMIZE commits (``dataChange = false``), compare-and-swapped like events. The files
they replace are deleted once they have been replaced for GRACE: a reader holding an older
snapshot that long falls back to the current one.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from ..domain.entities import Event
from ..domain.errors import ForkedProcessError, IntegrityError, InvalidInputError, StorageError
from . import commits, forkguard, onerow
from .commits import Entry
from .eventrows import SCHEMA, after, rows_where, runs, to_table
from .location import Location
from .replay import Replay, from_checkpoint, replay

TABLE = "_registry/events"
# History is evidence: keep the log (the JSON commits) for a century and refuse deletes and
# updates. The data files a merge replaced are deleted after GRACE (their rows live on,
# identical, in the merged file), and their tombstones expire from checkpoints as well:
# otherwise every checkpoint carries one tombstone per event ever written and their total
# size grows with the square of the log.
CONFIGURATION = {
    "delta.appendOnly": "true",
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 1 hours",
}
GRACE = timedelta(hours=1)
FANOUT = 50
MAX_LEVEL = 3  # files of up to FANOUT ** 3 = 125,000 events are not merged further
CHECKPOINT_EVERY = 500
KEEP_CHECKPOINTS = 2  # derived data: older ones are deleted


# The EventLogs open in this process, per registry: a new one starts from the freshest.
_OPEN: dict[tuple[str, str], weakref.WeakSet[EventLog]] = {}
_OPEN_LOCK = threading.Lock()
LOOKBACK = 8  # merge commits that may follow an event's commit before a state sees them


class CommitConflict(Exception):
    """Another writer took the next log version first; reload and retry."""


def level(entry: Entry) -> int:
    """0 for a one-event file, k for a file of up to FANOUT ** k events."""
    if entry.records is None:
        return MAX_LEVEL  # no statistics: leave it alone
    found = 0
    while entry.records > FANOUT ** found:
        found += 1
    return found


log = logging.getLogger("nbregistry")


class EventLog:
    def __init__(self, location: Location) -> None:
        self.location = location
        self.uri = location.join(TABLE)
        self._version = -1
        self._refusal: str | None = None
        self._protocol: dict[str, Any] = {}
        self._configuration: dict[str, Any] = {}
        self._live: dict[str, Entry] = {}  # the data files as of self._version
        self._vacuumed_at = float("-inf")
        self.lent = False
        # The one-event files this object wrote and not yet merged, with their event: a merge
        # that finds the same bytes in storage need not parse them again.
        self._written: dict[str, tuple[bytes, Event]] = {}

    def _options(self) -> dict[str, str] | None:
        return self.location.storage_options or None

    @property
    def version(self) -> int:
        """The last log version whose events this object has read or written."""
        return self._version

    def exists(self) -> bool:
        return self.location.exists(f"{TABLE}/_delta_log/{0:020d}.json")

    def create(self, genesis: Event) -> bool:
        """Create the table with the genesis event as version 0; False if another won."""
        from deltalake import CommitProperties, write_deltalake

        def run() -> None:
            # No retries: a loser must fail, not commit a second genesis as version 1.
            write_deltalake(self.uri, to_table([genesis]), mode="error",
                            configuration=CONFIGURATION, storage_options=self._options(),
                            commit_properties=CommitProperties(max_commit_retries=0))

        self.location.require_put_if_absent()
        try:
            forkguard.guarded(run)
        except ForkedProcessError:
            raise
        except Exception as exc:
            if self.exists():
                return False
            raise StorageError(f"cannot create the event log at {self.uri}: {exc}") from exc
        return True

    def open(self, *, warm: bool = True) -> None:
        """Load the snapshot from the last checkpoint and the commits after it; if the
        checkpoint cannot be read (derived data), replay every JSON commit instead.

        With ``warm``, the freshest other EventLog of this registry open in this process
        lends its snapshot instead (``lent`` says so): the commits it read or wrote are not
        read again, and those after it are read by the next ``read_new``, exactly as for an
        EventLog opened earlier."""
        key = (self.location.uri, json.dumps(sorted(self.location.storage_options.items())))
        with _OPEN_LOCK:
            lenders = sorted(_OPEN.get(key, ()), key=lambda other: -other._version)
        self.lent = warm and any(self._adopt(other) for other in lenders)
        if not self.lent:
            self._open_cold()
        with _OPEN_LOCK:
            _OPEN.setdefault(key, weakref.WeakSet()).add(self)

    def _adopt(self, other: EventLog) -> bool:
        version, live = other._version, dict(other._live)
        if version < 0 or other._version != version:  # it moved while copied: not this one
            return False
        self._version, self._live = version, live
        self._protocol, self._configuration = other._protocol, other._configuration
        self._refuse()
        return True

    def _open_cold(self) -> None:
        try:
            try:
                found = from_checkpoint(self.location, TABLE)
            except FileNotFoundError:  # pruned as we read its pointer: read the newer one
                found = from_checkpoint(self.location, TABLE)
        except (FileNotFoundError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            found = replay(self.location, TABLE)
            log.warning("the event log's checkpoint at %s is unreadable (%s); reading every "
                        "JSON commit instead. A damaged checkpoint is derived data: delete it "
                        "(and _delta_log/_last_checkpoint) to make opening fast again.",
                        self.uri, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if found.version < 0:
            raise StorageError(f"cannot open the event log at {self.uri}: it has no commits")
        self._version, self._live = found.version, dict(found.files)
        self._protocol, self._configuration = found.protocol, found.configuration
        self._refuse()

    def holds(self, version: int, seq: int, digest: str) -> bool:
        """Is the newest event commit at or before log ``version`` (merges may follow it)
        still the one of event ``seq`` with hash ``digest``? By the hash chain, that pins
        every event before it too."""
        for at in range(version, max(version - LOOKBACK, 0), -1):
            raw = self.location.read_optional(commits.log_key(TABLE, at))
            found = None if raw is None else commits.event_of(raw)
            if found is not None or raw is None:
                return found == (seq, digest)
        return False

    def _refuse(self) -> None:
        self._refusal = commits.writer_refusal(
            reader_version=int(self._protocol.get("minReaderVersion", 1)),
            writer_version=int(self._protocol.get("minWriterVersion", 2)),
            writer_features=self._protocol.get("writerFeatures"),
            configuration=self._configuration)

    def _load(self) -> Any:
        from deltalake import DeltaTable

        return forkguard.guarded(lambda: DeltaTable(self.uri, storage_options=self._options()))

    def replay(self, *, until: int | None = None) -> Replay:
        """The log replayed from its JSON commits (no checkpoints): what verify reads."""
        return replay(self.location, TABLE, until=until)

    def snapshot(self) -> Replay:
        """The current files from the last checkpoint and the commits after it."""
        return from_checkpoint(self.location, TABLE)

    def has_newer(self) -> bool:
        """Cheap probe (one stat or HEAD): has anyone committed after our snapshot?"""
        return self.location.exists(commits.log_key(TABLE, self._version + 1))

    def read_new(self, after_seq: int) -> pa.Table:
        """Events committed after our version, read commit by commit (no listing). A reader
        so far behind that a clean-up deleted files those commits name catches up from the
        current snapshot instead."""
        tables = []
        while True:
            try:
                raw = self.location.read_bytes(commits.log_key(TABLE, self._version + 1))
            except FileNotFoundError:
                break
            self._note_protocol(raw)
            added, removed = commits.file_actions(raw)
            for path in removed:
                self._live.pop(path, None)
                self._written.pop(path, None)
            for path, entry, new_rows in added:
                self._live[path] = entry
                if not new_rows:
                    continue  # a merge: the same rows in a new file
                try:
                    data = self.location.read_bytes(f"{TABLE}/{path}")
                except FileNotFoundError:
                    self.open(warm=False)
                    return self.read_after(after_seq)
                try:
                    table = commits.read_parquet(data)
                    tables.append(table if table.schema.equals(SCHEMA) else table.cast(SCHEMA))
                except (pa.ArrowException, ValueError) as exc:  # ValueError: other columns
                    raise IntegrityError(
                        f"event data file {path} named by commit {self._version + 1} is "
                        f"unreadable ({exc}); run `nbregistry verify`",
                        problems=[str(exc)]) from exc
            self._version += 1
        if not tables:
            return SCHEMA.empty_table()
        return after(pa.concat_tables(tables), after_seq)

    def _note_protocol(self, raw: bytes) -> None:
        protocol, metadata = commits.protocol_changes(raw)
        if protocol is None and metadata is None:
            return
        self._protocol = protocol or self._protocol
        if metadata is not None:
            self._configuration = dict(metadata.get("configuration") or {})
        self._refuse()

    # -- writing -------------------------------------------------------------------------
    def append(self, event: Event) -> int:
        """Commit one event at exactly version+1 and return that version, or raise
        CommitConflict. Every FANOUT one-event files the writer also merges them."""
        if self._refusal is not None:
            raise StorageError(f"refusing to append to the event log at {self.uri}: the table "
                               f"was changed in ways this writer does not honour "
                               f"({self._refusal}). Reading still works; restore the table's "
                               "protocol and properties (or its backup) to write again.")
        self.location.require_put_if_absent()
        name, data = commits.file_name(event.seq, event.seq), onerow.encode(event)
        started = time.monotonic()
        self.location.put(f"{TABLE}/{name}", data)
        landed = self._version + 1
        body = commits.commit_body(name, len(data), event)
        if not self.location.put_if_absent(commits.log_key(TABLE, landed), body):
            self.location.delete(f"{TABLE}/{name}")  # never referenced: not evidence
            raise CommitConflict(f"log version {landed} was taken by another writer")
        if time.monotonic() - started > GRACE.total_seconds() / 2:
            # paused that long between the two writes, a clean-up may have taken the data
            # file for an orphan: write it again (the same bytes) now that it is committed
            self.location.put(f"{TABLE}/{name}", data)
        self._version = landed
        self._live[name] = Entry(len(data), 1, event.seq, event.seq)
        self._written[name] = (data, event)
        if sum(1 for e in self._live.values() if e.records == 1) >= FANOUT:
            self.compact()
        return landed

    def compact(self) -> None:
        """Merge full levels of files (and every CHECKPOINT_EVERY versions checkpoint and
        delete what merges replaced) so reads stay flat as commits pile up. Best effort: if
        it fails (a racing writer) a later writer merges instead, and nothing is lost; but
        say so, since reads slow down until one succeeds."""
        try:
            forkguard.guarded(self._compact)
        except ForkedProcessError:
            raise
        except Exception as exc:
            log.warning("compaction of the event log at %s failed (a later writer will "
                        "retry): %s", self.uri, exc)

    def _compact(self) -> None:
        for depth in range(MAX_LEVEL):
            group = {p: e for p, e in self._live.items() if level(e) == depth}
            if len(group) < (FANOUT if depth else 2):
                break
            if not self._merge(group):
                return  # another writer moved on: whoever is next merges
        if self._version - self._checkpointed() >= CHECKPOINT_EVERY:
            self.checkpoint()
            if time.monotonic() - self._vacuumed_at >= GRACE.total_seconds() / 4:
                self.vacuum()  # it lists the table's folder: not at every checkpoint
                self._vacuumed_at = time.monotonic()

    def _merge(self, group: dict[str, Entry]) -> bool:
        import pyarrow.compute as pc

        table, missing, rewritten = self.read_each_file(group, known=self._written)
        if missing or rewritten:
            _damaged(missing, rewritten)
        table = table.take(pc.sort_indices(table.column("seq")))
        name, data = commits.compacted_file(table)
        self.location.put(f"{TABLE}/{name}", data)
        body = commits.compaction_body({p: e.size for p, e in group.items()}, name,
                                       len(data), commits.table_stats(table))
        if not self.location.put_if_absent(commits.log_key(TABLE, self._version + 1), body):
            self.location.delete(f"{TABLE}/{name}")
            return False
        self._version += 1
        for path in group:
            del self._live[path]
            self._written.pop(path, None)
        seqs = table.column("seq")
        self._live[name] = Entry(len(data), table.num_rows, seqs[0].as_py(), seqs[-1].as_py())
        return True

    def _checkpointed(self) -> int:
        try:
            raw = self.location.read_bytes(f"{TABLE}/{commits.LOG}/_last_checkpoint")
            return int(json.loads(raw)["version"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return -1

    def checkpoint(self) -> None:
        """A checkpoint at the current version (older ones are pruned): derived data that
        makes opening fast."""
        table = self._load()
        retention = CONFIGURATION["delta.deletedFileRetentionDuration"]
        if table.metadata().configuration.get("delta.deletedFileRetentionDuration") != retention:
            # a registry created before tombstones expired this soon: adopt the setting
            table.alter.set_table_properties({"delta.deletedFileRetentionDuration": retention})
        table.create_checkpoint()
        self._prune_checkpoints()

    def _prune_checkpoints(self) -> None:
        """Checkpoints are derived data; keeping every one makes storage grow without bound."""
        found = sorted(key for key, _, _ in self.location.list(f"{TABLE}/{commits.LOG}/")
                       if ".checkpoint." in key)
        versions = sorted({key.rsplit("/", 1)[-1].split(".")[0] for key in found})
        for key in found:
            if key.rsplit("/", 1)[-1].split(".")[0] not in versions[-KEEP_CHECKPOINTS:]:
                self.location.delete(key)

    def vacuum(self, *, grace: timedelta = GRACE) -> list[str]:
        """Delete the data files no live file needs: files a merge replaced, once the file
        holding their rows has existed for ``grace``, and files no commit names (a writer
        that died between its two writes) as old. Returns the names deleted. Files written
        within ``grace`` are never touched, whoever wrote them."""
        if grace < timedelta(0):
            raise InvalidInputError(f"grace must be zero or more, got {grace}: a negative "
                                    "grace would delete files being written now",
                                    field="grace")
        # The current files, not this object's (it may be behind a merge whose inputs it
        # still counts as live, and whose output it would take for a replaced file).
        live = from_checkpoint(self.location, TABLE).files
        listed = {key.rsplit("/", 1)[-1]: when
                  for key, _, when in self.location.list_shallow(f"{TABLE}/")}
        spans = sorted((e.low, e.high, p) for p, e in live.items()
                       if e.low is not None and e.high is not None)
        lows = [low for low, _, _ in spans]
        cutoff = datetime.now(UTC) - grace
        deleted = []
        for name, when in listed.items():
            if name in live or not name.endswith(".parquet") or when > cutoff:
                continue
            span = commits.seq_range(name)
            if span is not None:
                at = bisect.bisect_right(lows, span[0]) - 1
                if at < 0 or spans[at][1] < span[1]:
                    continue  # no live file we know of holds its rows (yet)
                holder = listed.get(spans[at][2])
                if holder is None or holder > cutoff:
                    continue
            self.location.delete(f"{TABLE}/{name}")
            deleted.append(name)
        return deleted

    # -- reading the snapshot ------------------------------------------------------------
    def files(self) -> dict[str, Entry]:
        """path -> entry of the snapshot's data files."""
        return dict(self._live)

    def read(self) -> pa.Table:
        """Every event of the snapshot; any damaged file refuses the whole read."""
        return self._read_live(lambda live: live)

    def read_after(self, seq: int) -> pa.Table:
        """Events with seq > ``seq`` of the snapshot; only files that can hold them are read."""
        return after(self._read_live(
            lambda live: {p: e for p, e in live.items() if e.high is None or e.high > seq}),
            seq)

    def read_seqs(self, seqs: list[int]) -> pa.Table:
        """The events with these seqs, reading only the files whose seq range holds one."""
        ordered = sorted(seqs)

        def holding(live: dict[str, Entry]) -> dict[str, Entry]:
            return {p: e for p, e in live.items() if e.low is None or e.high is None
                    or bisect.bisect_left(ordered, e.low) < bisect.bisect_right(ordered,
                                                                                 e.high)}

        wanted = set(ordered)
        return rows_where(self._read_live(holding), wanted.__contains__)

    def _read_live(self, select: Callable[[dict[str, Entry]], dict[str, Entry]]) -> pa.Table:
        """Read the selected files; if some are gone and the log has moved on, they were
        merged and cleaned up after GRACE: read the same selection of the current files."""
        table, missing, rewritten = self.read_each_file(select(self._live))
        if missing and not rewritten and self.has_newer():
            current = from_checkpoint(self.location, TABLE).files
            table, missing, rewritten = self.read_each_file(select(current))
        if missing or rewritten:
            _damaged(missing, rewritten)
        return table

    def read_each_file(self, files: dict[str, Entry] | None = None, *,
                       columns: list[str] | None = None,
                       known: dict[str, tuple[bytes, Event]] | None = None
                       ) -> tuple[pa.Table, list[str], list[str]]:
        """(rows, missing files, rewritten files) of the snapshot (or of ``files``), file by
        file: verify must report damage, not stop at the first. Files are read as bytes (not
        through deltalake's pyarrow dataset, whose filesystem bridge can abort the
        interpreter at exit), and a size that differs from the Delta log marks a rewritten
        file. ``known`` maps paths to the bytes and event this process wrote there: a file
        found with exactly those bytes is not parsed again (its row comes last)."""
        chosen = self._live if files is None else files
        known = known if known and columns is None else {}
        schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
        tables, missing, rewritten = [], [], []
        mine: list[Event] = []
        keys = [f"{TABLE}/{path}" for path in chosen]
        for (path, entry), (_, raw) in zip(chosen.items(), self.location.read_many(keys),
                                           strict=True):
            try:
                if raw is None:
                    raise FileNotFoundError(path)
                ours = known.get(path)
                if ours and ours[0] == raw:
                    mine.append(ours[1])
                else:
                    table = commits.read_parquet(raw, columns)
                    # cast only when needed: a no-op cast still imports pyarrow.compute
                    tables.append(table if table.schema.equals(schema) else table.cast(schema))
            except (OSError, pa.ArrowException, KeyError, ValueError):  # ValueError: columns
                missing.append(path)
                continue
            if len(raw) != entry.size:
                rewritten.append(path)
        if mine:
            tables.append(to_table(mine))
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        return table, missing, rewritten

    def stream(self, files: dict[str, Entry], *, columns: list[str] | None = None
               ) -> Iterator[tuple[pa.Table, list[str], list[str]]]:
        """``read_each_file`` run by run in seq order, each run's rows sorted: the whole log
        is never in memory at once."""
        import pyarrow.compute as pc

        for group in runs(files):
            table, missing, rewritten = self.read_each_file(group, columns=columns)
            yield table.take(pc.sort_indices(table.column("seq"))), missing, rewritten


def _damaged(missing: Sequence[str], rewritten: Sequence[str]) -> None:
    names = ", ".join([*missing, *rewritten])
    raise IntegrityError(
        f"event data files named by the Delta log are missing, unreadable or rewritten "
        f"({names}). The audit trail is damaged; run `nbregistry verify` and restore "
        "from backup.", problems=[*missing, *rewritten])
