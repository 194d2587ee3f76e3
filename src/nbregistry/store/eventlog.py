"""The event log: a Delta table where each commit holds exactly one event.

A commit is put-if-absent on the Delta log, and we append with zero commit retries, so an
append lands at exactly the version our state was read at plus one, or fails. That turns
Delta's optimistic concurrency into compare-and-swap on the whole log: the chain cannot fork.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..domain.entities import Event
from ..domain.errors import ForkedProcessError, IntegrityError, StorageError
from . import forkguard
from .location import Location

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
# History is evidence: keep the log and replaced files for a century, refuse deletes/updates.
CONFIGURATION = {
    "delta.appendOnly": "true",
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
}
COMPACT_EVERY = 50
COMPACT_TARGET_BYTES = 16 * 1024 * 1024


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


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows sorted by seq, timestamps as aware UTC datetimes."""
    return sorted(table.to_pylist(), key=lambda r: r["seq"])


class EventLog:
    def __init__(self, location: Location) -> None:
        self.location = location
        self.uri = location.join(TABLE)
        self._dt: Any = None

    def _options(self) -> dict[str, str] | None:
        return self.location.storage_options or None

    @property
    def version(self) -> int:
        return -1 if self._dt is None else int(self._dt.version())

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
        from deltalake import DeltaTable

        try:
            self._dt = forkguard.guarded(lambda: DeltaTable(self.uri,
                                                            storage_options=self._options()))
        except ForkedProcessError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot open the event log at {self.uri}: {exc}") from exc

    def has_newer(self) -> bool:
        """Cheap probe (one stat or HEAD): has anyone committed after our snapshot?"""
        return self.location.exists(f"{TABLE}/_delta_log/{self.version + 1:020d}.json")

    def refresh(self) -> None:
        forkguard.guarded(self._dt.update_incremental)

    def read(self, after_seq: int = 0) -> pa.Table:
        """Events with seq > after_seq in the current snapshot (file stats prune the rest)."""
        def run() -> pa.Table:
            dataset = self._dt.to_pyarrow_dataset()
            if after_seq <= 0:
                return dataset.to_table()
            return dataset.to_table(filter=ds.field("seq") > after_seq)

        try:
            return forkguard.guarded(run)
        except (OSError, pa.ArrowException) as exc:
            raise IntegrityError(
                f"an event data file named by the Delta log is missing or unreadable: {exc}. "
                "The audit trail is damaged; run `nbregistry verify` and restore from backup.",
                problems=[str(exc)]) from exc

    def append(self, event: Event) -> int:
        """Commit one event at exactly version+1 and return that version, or raise
        CommitConflict. Every COMPACT_EVERY versions the writer also compacts."""
        from deltalake import CommitProperties, PostCommitHookProperties, write_deltalake
        from deltalake.exceptions import CommitFailedError

        props = CommitProperties(max_commit_retries=0,
                                 custom_metadata={"nbregistry.seq": str(event.seq),
                                                  "nbregistry.hash": event.hash})
        # compact() checkpoints on its own schedule; the hooks would list the whole log.
        hooks = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)
        try:
            forkguard.guarded(lambda: write_deltalake(
                self._dt, to_table([event]), mode="append", commit_properties=props,
                post_commithook_properties=hooks))
        except CommitFailedError as exc:
            raise CommitConflict(str(exc)) from exc
        landed = self.version
        if landed % COMPACT_EVERY == 0:
            self.compact()
        return landed

    def compact(self) -> None:
        """Merge small files and checkpoint so reads stay flat as commits pile up."""
        def run() -> None:
            self._dt.optimize.compact(target_size=COMPACT_TARGET_BYTES)
            self._dt.create_checkpoint()

        # Best effort: if it fails (a racing compaction), a later writer compacts again.
        with contextlib.suppress(Exception):
            forkguard.guarded(run)

    def read_each_file(self) -> tuple[pa.Table, list[str], list[str]]:
        """(rows, missing files, rewritten files) of the snapshot, reading file by file: verify
        must report damage, not stop at the first. A file whose size no longer matches the log
        is read directly so that its rows can still be checked."""
        def run() -> tuple[pa.Table, list[str], list[str]]:
            tables, missing, rewritten = [], [], []
            for fragment in self._dt.to_pyarrow_dataset().get_fragments():
                try:
                    tables.append(fragment.to_table())
                    continue
                except (OSError, pa.ArrowException):
                    pass
                name = str(fragment.path).rsplit("/", 1)[-1]
                try:
                    raw = self.location.read_bytes(f"{TABLE}/{name}")
                    tables.append(pq.read_table(io.BytesIO(raw)).cast(SCHEMA))
                    rewritten.append(name)
                except (OSError, pa.ArrowException):
                    missing.append(name)
            return ((pa.concat_tables(tables) if tables else SCHEMA.empty_table()), missing,
                    rewritten)

        return forkguard.guarded(run)
