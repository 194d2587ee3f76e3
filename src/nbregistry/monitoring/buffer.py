"""A buffered prediction logger for serving processes: one cheap ``log()`` per request.

``log()`` checks the row against the version's feature schema on the caller's thread (a bad
row is refused at once, not at flush time), appends it to an in-memory list and returns its
id. A background thread writes the rows as one Delta append when ``flush_rows`` rows are
waiting, or ``flush_interval`` seconds after the previous write; :meth:`close` (also run at
interpreter exit, and by the ``with`` block) writes the rest.

When the store cannot be written, nothing holds the serving thread for long and no row goes
silently (docs/monitoring.md, "When the store is down"): a failed batch is spilled to a
local Arrow IPC file (:mod:`nbregistry.store.spill`); the writer backs off exponentially,
spilling every ``flush_rows`` new rows meanwhile; the next successful write, or the next
logger of the table, replays the spill files, skipping rows the table already holds. With
no spill room, rows wait in memory up to ``capacity``; ``log()`` waits at most ``max_wait``
for room, then spills on the caller's thread or drops the row and counts it. One warning
per episode; :meth:`stats` has the rest.

What a crash can lose: a process killed without running exit handlers (``kill -9``, OOM
killer, power loss) loses the rows held in memory: at most ``capacity`` rows, at most
``flush_interval`` seconds of traffic plus a write in progress. Spilled rows are fsynced and
replayed by the next logger. A batch is never half written: each write is one Delta commit,
and readers ignore data files of a commit that did not land.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pyarrow as pa

from ..domain.errors import InvalidInputError, NbRegistryError, StorageError
from ..domain.validate import version_number
from ..store.monitoring import RESERVED, MonitorTable
from ..store.spill import SpillDir, spill_for
from .capture import FeatureSchema
from .convert import new_id
from .rows import Row, checker, micros, output, rows_table

log = logging.getLogger("nbregistry.monitoring")
SPILL_BYTES = 256 * 1024 * 1024
_LIVE: weakref.WeakSet[PredictionBuffer] = weakref.WeakSet()


@dataclass(frozen=True)
class BufferStats:
    """A logger's health. ``written`` counts every row this logger committed, replayed
    spill files included (also those an earlier logger left)."""

    logged: int             # rows log() took (the dropped ones too)
    written: int            # rows committed to the table (or found there on replay)
    pending: int            # rows held in memory (waiting, being written, kept after a failure)
    spilled: int            # rows this logger wrote to spill files
    replayed: int           # rows written from spill files (part of ``written``)
    on_disk: int            # rows in the table's spill directory now, waiting to be replayed
    dropped: int            # rows lost: refused at write time, or buffer and spill both full
    batches: int            # successful writes
    failures: int           # failed write attempts
    consecutive_failures: int  # since the last successful write; 0 when healthy
    last_error: str | None
    last_success: datetime | None  # time of the last successful write
    spill_dir: str | None
    missing: Mapping[str, int] = field(default_factory=dict)  # nulls per feature, written rows


def _table_of(sink: Any) -> MonitorTable | None:
    """The monitoring table behind ``sink``: a MonitorTable, or its bound ``append`` (what
    callers passed before a table could be given directly)."""
    if isinstance(sink, MonitorTable):
        return sink
    owner = getattr(sink, "__self__", None)
    return owner if isinstance(owner, MonitorTable) and sink == owner.append else None


class PredictionBuffer:
    """Buffered, thread-safe prediction logging into one predictions table (``sink``: a
    :class:`MonitorTable`, or any callable that appends an Arrow table)."""

    def __init__(self, sink: MonitorTable | Callable[[pa.Table], object], *,
                 schema: FeatureSchema, version: int, attributes: Sequence[str] = (),
                 positive: int | None = None, flush_rows: int = 10_000,
                 flush_interval: float = 10.0, capacity: int = 100_000,
                 retry_interval: float = 1.0, max_retry_interval: float = 60.0,
                 max_wait: float = 0.5, spill_dir: str | os.PathLike[str] | None = None,
                 spill_bytes: int = SPILL_BYTES) -> None:
        if not 0 < flush_rows <= capacity:
            raise InvalidInputError(f"need 0 < flush_rows <= capacity, got {flush_rows} and "
                                    f"{capacity}", field="flush_rows")
        if not (flush_interval > 0 and 0 < retry_interval <= max_retry_interval
                and max_wait >= 0):
            raise InvalidInputError("need flush_interval > 0, 0 < retry_interval <= "
                                    "max_retry_interval and max_wait >= 0 (seconds)",
                                    field="retry_interval")
        table = _table_of(sink)
        self._append: Callable[[pa.Table], object] = (
            table.append if table else cast(Callable[[pa.Table], object], sink))
        self._known = table.find_ids if table else None  # to skip rows already written
        self._spill = spill_for(table.uri if table else None, spill_dir, spill_bytes)
        self.target = table.uri if table else getattr(sink, "__qualname__", repr(sink))
        self.schema = [dict(entry) for entry in schema]
        self.version = version_number(version)
        self.names = [entry["name"] for entry in self.schema]
        self._checks = [(n, checker(n, e["dtype"])) for n, e in zip(
            self.names, self.schema, strict=True)]
        self.attributes = tuple(attributes)
        clash = sorted(set(self.attributes) & (RESERVED | set(self.names)))
        if clash:
            raise InvalidInputError(f"attributes {clash} clash with features or reserved "
                                    "columns", field="attributes")
        self.positive = positive
        self.flush_rows, self.capacity, self.max_wait = flush_rows, capacity, max_wait
        self.flush_interval, self.retry_interval = flush_interval, retry_interval
        self.max_retry_interval = max_retry_interval
        self._init_state()
        self._thread = threading.Thread(target=self._run, name="nbregistry-prediction-buffer",
                                        daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def _init_state(self) -> None:
        self._rows: list[Row] = []     # logged, not yet tried
        self._busy = 0                 # rows being written or spilled
        self._held: list[pa.Table] = []  # failed batches kept in memory (no spill room)
        self._held_rows = 0
        self._closed = False
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._next_flush = time.monotonic() + self.flush_interval
        self._retry_at = 0.0
        self._consecutive = 0
        self._spill_refused = False    # the spill directory was full: wait for a write
        self._replay_due = self._spill is not None and bool(self._spill.waiting())
        self._warned: set[str] = set()  # warnings given in this episode
        self._counts = dict.fromkeys(["logged", "written", "spilled", "replayed", "dropped",
                                      "batches", "failures"], 0)
        self._missing: dict[str, int] = dict.fromkeys([*self.names, "score"], 0)
        self._last_error: str | None = None
        self._last_success: datetime | None = None

    # -- logging ------------------------------------------------------------------------

    def log(self, features: Mapping[str, Any], prediction: Any, *, id: str | None = None,
            ts: datetime | None = None, label: int | None = None,
            attributes: Mapping[str, Any] | None = None) -> str:
        """Queue one prediction; returns its id. ``prediction``: a score (float), a class
        (int/bool), or the row's class probabilities. Waits at most ``max_wait`` seconds
        when the buffer is full; a row that then finds no room in memory or on disk is
        dropped and counted (``stats().dropped``), its id still returned."""
        try:
            values = [check(features[name]) for name, check in self._checks]
        except KeyError as exc:
            raise InvalidInputError(f"features lack {exc.args[0]!r} (version {self.version} "
                                    f"expects {self.names}); nothing was logged",
                                    field=str(exc.args[0])) from None
        source = features if attributes is None else attributes
        extra = [source.get(name) for name in self.attributes]
        score, label = output(prediction, label, self.positive)
        us = time.time_ns() // 1000 if ts is None else micros(ts)
        if id is None:
            id = new_id(us)
        elif not isinstance(id, str):
            raise InvalidInputError(f"id must be a string, got {type(id).__name__}", field="id")
        row = (id, us, score, label, *values, *extra)
        with self._cond:
            rows = self._rows
            if len(rows) + self._busy + self._held_rows < self.capacity and not self._closed:
                rows.append(row)  # the common case, inline: this is the serving thread
                self._counts["logged"] += 1
                if len(rows) == self.flush_rows:
                    self._cond.notify_all()
                return id
            if self._wait_for_room():
                self._accept(row)
                return id
            spill = self._spill is not None and not self._spill_refused and bool(self._rows)
        if spill and self._spill_queue():  # the writer is stuck in a slow write: spill here
            with self._cond:
                self._accept(row)
            return id
        with self._cond:
            self._counts["logged"] += 1
            self._drop(1, "the buffer is full and the rows cannot be spilled")
        return id

    def _used(self) -> int:
        return len(self._rows) + self._busy + self._held_rows

    def _wait_for_room(self) -> bool:
        """With the lock held: wait up to ``max_wait`` for room; False when still full."""
        deadline = None
        while not self._closed and self._used() >= self.capacity:
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.max_wait
                self._cond.notify_all()
            if now >= deadline:
                return False
            self._cond.wait(deadline - now)
        if self._closed:
            raise NbRegistryError("the prediction buffer is closed; create a new one")
        return True

    def _accept(self, row: Row) -> None:
        self._rows.append(row)
        self._counts["logged"] += 1
        if len(self._rows) == self.flush_rows:
            self._cond.notify_all()

    def _drop(self, rows: int, why: str) -> None:
        """With the lock held: count lost rows, warn once per episode."""
        self._counts["dropped"] += rows
        if "drop" not in self._warned:
            self._warned.add("drop")
            log.warning("prediction logger for %s is dropping rows: %s (capacity %d rows, "
                        "spill %s); stats().dropped counts them", self.target, why,
                        self.capacity, self._spill.path if self._spill else "off")

    # -- converting and parking ---------------------------------------------------------

    def _prepare(self, rows: list[Row]) -> pa.Table | None:
        """The predictions table for ``rows``; None (rows dropped, loudly) when they do not
        convert, which no retry would change."""
        try:
            return rows_table(rows, schema=self.schema, version=self.version,
                              attributes=self.attributes)
        except (InvalidInputError, pa.ArrowException, TypeError, ValueError) as exc:
            self._refused(len(rows), exc)
            return None

    def _refused(self, rows: int, exc: Exception) -> None:
        with self._cond:
            self._counts["dropped"] += rows
            self._last_error = f"{type(exc).__name__}: {exc}"
        log.error("prediction logger for %s dropped %d rows: %s", self.target, rows, exc)

    def _try_spill(self, table: pa.Table) -> bool:
        """Write ``table`` to a spill file; False when there is no spill directory or it
        is full or failing (then no further spill is tried until the next write attempt)."""
        if self._spill is None or self._spill_refused:
            return False
        try:
            if self._spill.put(table):
                with self._cond:
                    self._counts["spilled"] += table.num_rows
                    self._replay_due = True
                return True
        except Exception as exc:  # a full or broken disk: keep the rows in memory instead
            log.warning("prediction logger for %s cannot spill to %s: %s", self.target,
                        self._spill.path, exc)
        self._spill_refused = True
        return False

    def _park(self, table: pa.Table) -> None:
        """Keep a batch the store refused: in a spill file, else in memory."""
        if not self._try_spill(table):
            with self._cond:
                self._held.append(table)
                self._held_rows += table.num_rows

    def _spill_queue(self) -> bool:
        """Move the rows waiting in memory to a spill file (from any thread); False when
        the spill directory refused them (they stay queued)."""
        with self._cond:
            rows, self._rows = self._rows, []
            self._busy += len(rows)
        table = self._prepare(rows) if rows else None
        spilled = table is None or self._try_spill(table)  # None: nothing left to keep
        with self._cond:
            self._busy -= len(rows)
            if not spilled:
                self._rows[:0] = rows
            self._cond.notify_all()
        return spilled

    # -- writing ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                action = self._next_action()
            if action == "stop":
                return  # close() writes the rest on its own thread, where errors surface
            with contextlib.suppress(Exception):  # counted, parked and logged on the way
                if action == "spill":
                    self._spill_queue()
                else:
                    self._drain()

    def _next_action(self) -> str:
        """With the lock held: wait until there is something to do."""
        while not self._closed:
            now = time.monotonic()
            if self._consecutive:  # failing: wait out the backoff, spilling what piles up
                if len(self._rows) >= self.flush_rows and self._spill is not None \
                        and not self._spill_refused:
                    return "spill"
                if now >= self._retry_at and (self._rows or self._held or self._replay_due):
                    return "write"
                timeout = self._retry_at - now if now < self._retry_at else self.flush_interval
            elif len(self._rows) >= self.flush_rows or self._replay_due or (
                    self._rows and now >= self._next_flush):
                return "write"
            else:
                timeout = self._next_flush - now if self._rows else self.flush_interval
            self._cond.wait(max(timeout, 0.001))
        return "stop"

    def _drain(self) -> None:
        """Write the queued rows, then what earlier failures left (in memory, then spill
        files), on the calling thread. Raises what the store raised; rows are parked."""
        with self._write_lock:
            with self._cond:
                rows, self._rows = self._rows, []
                self._busy += len(rows)
                self._next_flush = time.monotonic() + self.flush_interval
                self._spill_refused = False
            try:
                table = self._prepare(rows) if rows else None
                if table is not None:
                    try:
                        self._commit(table, again=False)
                    except InvalidInputError as exc:  # cannot succeed on retry: drop, loudly
                        self._refused(table.num_rows, exc)
                        raise
                    except Exception:
                        self._park(table)
                        raise
            finally:
                with self._cond:
                    self._busy -= len(rows)
                    self._cond.notify_all()
            self._replay()

    def _commit(self, table: pa.Table, *, again: bool, replayed: bool = False) -> None:
        """Append ``table`` and count it. ``again``: an earlier attempt may have landed
        (a failure reported after the commit), so rows the table already holds are skipped."""
        try:
            rows = table
            if again and self._known is not None:
                import pyarrow.compute as pc

                there = self._known(table["prediction_id"])
                if len(there):
                    rows = table.filter(pc.invert(pc.is_in(table["prediction_id"],
                                                           value_set=there)))
            if rows.num_rows:
                self._append(rows)
        except InvalidInputError:
            raise
        except Exception as exc:
            self._failed(exc)
            raise
        self._succeeded(table, replayed=replayed)

    def _replay(self) -> None:
        """Write the batches kept in memory, then the spill files, oldest first. Raises
        (the rest kept) when the store fails again."""
        while self._held:
            table = self._held[0]
            try:
                self._commit(table, again=True)
            except InvalidInputError as exc:
                self._refused(table.num_rows, exc)
            with self._cond:
                self._held.pop(0)
                self._held_rows -= table.num_rows
                self._cond.notify_all()
        if self._spill is None:
            return
        for path in self._spill.waiting():
            claim = self._spill.claim(path)
            if claim is None:
                continue  # another logger of this table replays it
            try:
                self._commit(claim.read(), again=True, replayed=True)
            except (InvalidInputError, pa.ArrowInvalid) as exc:
                self._refused(SpillDir.rows(path), exc)
                log.error("kept the refused spill file as %s", claim.reject())
                continue
            except BaseException:
                claim.release()
                raise
            claim.done()  # deleted before the lock goes: nobody replays it twice
        with self._cond:
            self._replay_due = False

    def _succeeded(self, table: pa.Table, *, replayed: bool) -> None:
        with self._cond:
            counts, rows = self._counts, table.num_rows
            counts["written"] += rows
            counts["batches"] += 1
            counts["replayed"] += rows if replayed else 0
            for name in self._missing:
                if name in table.column_names:
                    self._missing[name] += table[name].null_count
            self._last_success = datetime.now(UTC)
            recovered, self._consecutive = self._consecutive, 0
            self._warned.clear()
        if recovered:
            log.info("prediction logger for %s writes again after %d failed attempts",
                     self.target, recovered)

    def _failed(self, exc: Exception) -> None:
        with self._cond:
            self._counts["failures"] += 1
            self._consecutive += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            delay = min(self.retry_interval * 2.0 ** min(self._consecutive - 1, 30),
                        self.max_retry_interval)
            self._retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
            first = "fail" not in self._warned
            self._warned.add("fail")
        where = (f"spilled to {self._spill.path}" if self._spill is not None
                 else "kept in memory")
        (log.warning if first else log.debug)(
            "prediction logger for %s cannot write (%s); retrying with backoff up to %gs, "
            "rows %s", self.target, self._last_error, self.max_retry_interval, where)

    def flush(self) -> None:
        """Write every row logged so far, and what is spilled, before returning. Raises
        what the store raised when it cannot (the rows are then spilled or kept)."""
        self._drain()

    def close(self, timeout: float | None = None) -> None:
        """Stop the background thread and write the remaining rows. When the store fails,
        they are spilled (a logger for this table writes them when it starts); raises
        StorageError naming how many rows could be neither written nor spilled."""
        with self._cond:
            if self._closed and not self._rows and not self._held:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        _LIVE.discard(self)
        try:
            self._drain()
        except InvalidInputError:
            raise
        except Exception as exc:
            lost = self._spill_held()
            if lost:
                raise StorageError(f"{lost} buffered predictions could not be written: "
                                   f"{exc}") from exc
            log.warning("prediction logger for %s closed while the store fails (%s): the "
                        "rows wait in %s for the next logger of this table", self.target,
                        exc, self._spill.path if self._spill else None)

    def _spill_held(self) -> int:
        """Spill the batches kept in memory; the rows that could not be."""
        with self._write_lock:
            self._spill_refused = False
            kept = [t for t in self._held if not self._try_spill(t)]
            with self._cond:
                self._held = kept
                self._held_rows = sum(t.num_rows for t in kept)
                return self._held_rows

    def __enter__(self) -> PredictionBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> BufferStats:
        """Counters and health, see :class:`BufferStats`."""
        on_disk = self._spill.usage()[0] if self._spill is not None else 0
        with self._cond:
            return BufferStats(
                pending=self._used(), on_disk=on_disk,
                consecutive_failures=self._consecutive, last_error=self._last_error,
                last_success=self._last_success, missing=dict(self._missing),
                spill_dir=None if self._spill is None else str(self._spill.path),
                **self._counts)


@atexit.register
def _close_all() -> None:
    """Interpreter exit: write what every open buffer still holds."""
    for buffer in list(_LIVE):
        try:
            buffer.close()
        except Exception as exc:
            log.error("prediction buffer: %s", exc)
