"""The event log: a Delta table where each commit holds exactly one event.

A commit is put-if-absent on the Delta log, and we append with zero commit retries, so an
append lands at exactly the version our state was read at plus one, or fails. That turns
Delta's optimistic concurrency into compare-and-swap on the whole log: the chain cannot fork.
"""

from __future__ import annotations

import array
import bisect
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from ..domain.entities import Event
from ..domain.errors import ForkedProcessError, IntegrityError, StorageError
from . import commits, forkguard
from .location import Location
from .replay import Replay, replay

TABLE = "_registry/events"
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
# History is evidence: keep the log (the JSON commits) for a century, refuse deletes and
# updates, never VACUUM. Tombstones of compacted one-event files expire from checkpoints
# after a day (the files stay on disk; their rows live on, identical, in the compacted file):
# otherwise every checkpoint carries one tombstone per event ever written and their total
# size grows with the square of the log.
CONFIGURATION = {
    "delta.appendOnly": "true",
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 1 days",
}
COMPACT_EVERY = 50
CHECKPOINT_EVERY = 500
KEEP_CHECKPOINTS = 2  # derived data: older ones are deleted
COMPACT_TARGET_BYTES = 256 * 1024  # bigger files are left alone: compaction stays O(new)


class CommitConflict(Exception):
    """Another writer took the next log version first; reload and retry."""


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


log = logging.getLogger("nbregistry")


# pyarrow converts Python values by first asking pandas whether they are pandas objects, and
# importing pandas costs 0.3 s of every open: the read path never builds arrays from Python.
def int64s(values: list[int]) -> pa.Array:
    return pa.Array.from_buffers(pa.int64(), len(values),
                                 [None, pa.py_buffer(array.array("q", values))])


def after(table: pa.Table, seq: int) -> pa.Table:
    """The rows with seq greater than ``seq``, ordered by seq."""
    ordered = table.take(pc.sort_indices(table.column("seq")))
    return ordered.slice(bisect.bisect_right(ordered.column("seq").to_pylist(), seq))


class EventLog:
    def __init__(self, location: Location) -> None:
        self.location = location
        self.uri = location.join(TABLE)
        self._dt: Any = None
        self._version = -1
        self._refusal: str | None = None
        self._replay = Replay()

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

    def open(self) -> None:
        """Load the snapshot through deltalake (checkpoints make it fast); if deltalake
        cannot (a damaged checkpoint: derived data), replay the JSON commits instead."""
        from deltalake import DeltaTable

        try:
            self._dt = forkguard.guarded(lambda: DeltaTable(self.uri,
                                                            storage_options=self._options()))
        except ForkedProcessError:
            raise
        except Exception as exc:
            self._open_from_commits(exc)
            return
        self._version = int(self._dt.version())
        protocol = self._dt.protocol()
        self._refusal = commits.writer_refusal(
            reader_version=protocol.min_reader_version,
            writer_version=protocol.min_writer_version,
            writer_features=protocol.writer_features,
            configuration=self._dt.metadata().configuration)

    def _open_from_commits(self, error: Exception) -> None:
        found = replay(self.location, TABLE)
        if found.version < 0:
            raise StorageError(f"cannot open the event log at {self.uri}: {error}") from error
        log.warning("deltalake could not open the event log at %s (%s); reading it from its "
                    "JSON commits instead. A damaged checkpoint is derived data: delete it "
                    "(and _delta_log/_last_checkpoint) to make opening fast again.", self.uri,
                    str(error).splitlines()[0])
        self._dt, self._replay, self._version = None, found, found.version
        self._refusal = commits.writer_refusal(
            reader_version=int(found.protocol.get("minReaderVersion", 1)),
            writer_version=int(found.protocol.get("minWriterVersion", 2)),
            writer_features=found.protocol.get("writerFeatures"),
            configuration=found.configuration)

    @property
    def opened_from_commits(self) -> bool:
        return self._dt is None and self._version >= 0

    def replay(self) -> Replay:
        """The log replayed from its JSON commits (no checkpoints): what verify reads."""
        return replay(self.location, TABLE)

    def has_newer(self) -> bool:
        """Cheap probe (one stat or HEAD): has anyone committed after our snapshot?"""
        return self.location.exists(commits.log_key(TABLE, self._version + 1))

    def read_new(self, after_seq: int) -> pa.Table:
        """Events committed after our version, read commit by commit (no listing)."""
        tables = []
        while True:
            try:
                raw = self.location.read_bytes(commits.log_key(TABLE, self._version + 1))
            except FileNotFoundError:
                break
            self._note_protocol(raw)
            for path in commits.added_files(raw, self.uri):
                try:
                    data = self.location.read_bytes(f"{TABLE}/{path}")
                    tables.append(commits.read_parquet(data).cast(SCHEMA))
                except (OSError, pa.ArrowException) as exc:
                    raise IntegrityError(
                        f"event data file {path} named by commit {self._version + 1} is "
                        f"missing or unreadable ({exc}); run `nbregistry verify`",
                        problems=[str(exc)]) from exc
            self._version += 1
        if not tables:
            return SCHEMA.empty_table()
        table = pa.concat_tables(tables)
        return after(table, after_seq)

    def _note_protocol(self, raw: bytes) -> None:
        protocol, metadata = commits.protocol_changes(raw)
        if protocol is None and metadata is None:
            return
        if self._dt is None:
            self._replay.protocol = protocol or self._replay.protocol
            if metadata is not None:
                self._replay.configuration = dict(metadata.get("configuration") or {})
            reader = int(self._replay.protocol.get("minReaderVersion", 1))
            writer = int(self._replay.protocol.get("minWriterVersion", 2))
            features, config = (self._replay.protocol.get("writerFeatures"),
                                self._replay.configuration)
        else:
            self._dt.update_incremental()  # a rare event: let deltalake apply it properly
            current = self._dt.protocol()
            reader, writer = current.min_reader_version, current.min_writer_version
            features, config = current.writer_features, self._dt.metadata().configuration
        self._refusal = commits.writer_refusal(reader_version=reader, writer_version=writer,
                                               writer_features=features, configuration=config)

    def read(self) -> pa.Table:
        """Every event of the snapshot; any damaged file refuses the whole read."""
        return self._read_checked(self.files())

    def append(self, event: Event) -> int:
        """Commit one event at exactly version+1 and return that version, or raise
        CommitConflict. Every COMPACT_EVERY versions the writer also compacts."""
        if self._refusal is not None:
            raise StorageError(f"refusing to append to the event log at {self.uri}: the table "
                               f"was changed in ways this writer does not honour "
                               f"({self._refusal}). Reading still works; restore the table's "
                               "protocol and properties (or its backup) to write again.")
        self.location.require_put_if_absent()
        name, data = commits.data_file(to_table([event]))
        self.location.put(f"{TABLE}/{name}", data)
        landed = self._version + 1
        body = commits.commit_body(name, len(data), event)
        if not self.location.put_if_absent(commits.log_key(TABLE, landed), body):
            self.location.delete(f"{TABLE}/{name}")  # never referenced: not evidence
            raise CommitConflict(f"log version {landed} was taken by another writer")
        self._version = landed
        if landed % COMPACT_EVERY == 0:
            self.compact(checkpoint=landed % CHECKPOINT_EVERY == 0)
        return landed

    def compact(self, *, checkpoint: bool = True) -> None:
        """Merge small files (and checkpoint, pruning older checkpoints) so reads stay flat
        as commits pile up."""
        def run() -> None:
            if self._dt is None:
                raise StorageError("the table was opened from its JSON commits (a damaged "
                                   "checkpoint?), so deltalake cannot compact it")
            self._dt.update_incremental()
            config = self._dt.metadata().configuration
            retention = CONFIGURATION["delta.deletedFileRetentionDuration"]
            if config.get("delta.deletedFileRetentionDuration") != retention:
                # a registry created before tombstones expired: adopt the setting once
                self._dt.alter.set_table_properties(
                    {"delta.deletedFileRetentionDuration": retention})
            self._dt.optimize.compact(target_size=COMPACT_TARGET_BYTES)
            if checkpoint:
                self._dt.create_checkpoint()
                self._prune_checkpoints()

        # Best effort: if it fails (say, a racing compaction) a later writer compacts again,
        # and nothing is lost; but say so, since reads slow down until one succeeds.
        try:
            forkguard.guarded(run)
        except ForkedProcessError:
            raise
        except Exception as exc:
            log.warning("compaction of the event log at %s failed (a later writer will "
                        "retry): %s", self.uri, exc)

    def _prune_checkpoints(self) -> None:
        """Checkpoints are derived data; keeping every one makes storage grow without bound."""
        found = sorted(key for key, _, _ in self.location.list(f"{TABLE}/{commits.LOG}/")
                       if ".checkpoint." in key)
        versions = sorted({key.rsplit("/", 1)[-1].split(".")[0] for key in found})
        for key in found:
            if key.rsplit("/", 1)[-1].split(".")[0] not in versions[-KEEP_CHECKPOINTS:]:
                self.location.delete(key)

    def files(self) -> dict[str, int]:
        """path -> size of the snapshot's data files."""
        if self._dt is None:
            return dict(self._replay.files)
        actions = forkguard.guarded(lambda: self._dt.get_add_actions(flatten=True))
        return dict(zip(actions.column("path").to_pylist(),
                        actions.column("size_bytes").to_pylist(), strict=True))

    def _ranges(self) -> list[tuple[str, int, int | None, int | None]]:
        """(path, size, min seq, max seq) of each data file; None where there are no stats."""
        if self._dt is None:
            return [(p, size, None, None) for p, size in self._replay.files.items()]
        actions = forkguard.guarded(lambda: self._dt.get_add_actions(flatten=True))
        names = actions.schema.names
        lows = (actions.column("min.seq").to_pylist() if "min.seq" in names
                else [None] * len(actions))
        highs = (actions.column("max.seq").to_pylist() if "max.seq" in names
                 else [None] * len(actions))
        return list(zip(actions.column("path").to_pylist(),
                        actions.column("size_bytes").to_pylist(), lows, highs, strict=True))

    def read_after(self, seq: int) -> pa.Table:
        """Events with seq > ``seq`` of the snapshot; only files that can hold them are read."""
        files = {p: size for p, size, _, high in self._ranges() if high is None or high > seq}
        return after(self._read_checked(files), seq)

    def read_seqs(self, seqs: list[int]) -> pa.Table:
        """The events with these seqs, reading only the files whose seq range holds one."""
        ordered = sorted(seqs)
        files = {p: size for p, size, low, high in self._ranges()
                 if low is None or high is None
                 or bisect.bisect_left(ordered, low) < bisect.bisect_right(ordered, high)}
        table = self._read_checked(files)
        return table.filter(pc.is_in(table.column("seq"), value_set=int64s(ordered)))

    def _read_checked(self, files: dict[str, int]) -> pa.Table:
        table, missing, rewritten = self.read_each_file(files)
        if missing or rewritten:
            names = ", ".join([*missing, *rewritten])
            raise IntegrityError(
                f"event data files named by the Delta log are missing, unreadable or rewritten "
                f"({names}). The audit trail is damaged; run `nbregistry verify` and restore "
                "from backup.", problems=[*missing, *rewritten])
        return table

    def read_each_file(self, files: dict[str, int] | None = None
                       ) -> tuple[pa.Table, list[str], list[str]]:
        """(rows, missing files, rewritten files) of the snapshot (or of ``files``), file by
        file: verify must report damage, not stop at the first. Files are read as bytes (not
        through deltalake's pyarrow dataset, whose filesystem bridge can abort the
        interpreter at exit), and a size that differs from the Delta log marks a rewritten
        file."""
        tables, missing, rewritten = [], [], []
        for path, size in (self.files() if files is None else files).items():
            try:
                raw = self.location.read_bytes(f"{TABLE}/{unquote(path)}")
                tables.append(commits.read_parquet(raw).cast(SCHEMA))
            except (OSError, pa.ArrowException):
                missing.append(path)
                continue
            if len(raw) != size:
                rewritten.append(path)
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        return table, missing, rewritten
