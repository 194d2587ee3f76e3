"""A buffered prediction logger for serving processes: one cheap ``log()`` per request.

``log()`` checks the row against the version's feature schema on the caller's thread (a bad
row is refused at once, not at flush time), appends it to an in-memory list and returns its
id. A background thread writes the rows as one Delta append when ``flush_rows`` rows are
waiting, or ``flush_interval`` seconds after the previous write; :meth:`close` (also run at
interpreter exit, and by the ``with`` block) writes the rest.

Memory is bounded: at most ``capacity`` rows are held (waiting plus being written). When the
buffer is full because writing is slow or failing, ``log()`` blocks until there is room
(backpressure) rather than dropping rows. A failed write is retried every
``retry_interval`` seconds with the rows kept; :attr:`stats` shows the failure.

What a crash can lose: a process killed without running exit handlers (``kill -9``, OOM
killer, power loss) loses the rows not yet written — at most ``capacity`` rows, at most
``flush_interval`` seconds of traffic plus a write in progress. It never leaves half a batch:
each write is one Delta commit, and data files of a commit that did not land are ignored by
readers, so the table stays readable and every batch is either all there or absent.
A normal exit (end of script, ``sys.exit``, SIGTERM handled by the server) writes everything.
"""

from __future__ import annotations

import atexit
import logging
import numbers
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from ..domain.errors import InvalidInputError, NbRegistryError, StorageError
from ..domain.validate import version_number
from ..store.monitoring import RESERVED, TS, kind_of
from .capture import FeatureSchema, prepare_predictions
from .convert import in_range, new_id, storage_type

log = logging.getLogger("nbregistry.monitoring")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LIVE: weakref.WeakSet[PredictionBuffer] = weakref.WeakSet()


@dataclass(frozen=True)
class BufferStats:
    logged: int             # rows accepted by log()
    written: int            # rows committed to the table
    pending: int            # rows held in memory (waiting or being written)
    batches: int            # successful writes
    failures: int           # failed write attempts (retried)
    dropped: int            # rows refused at write time (see last_error); normally 0
    last_error: str | None
    missing: Mapping[str, int] = field(default_factory=dict)  # nulls per feature, written rows


def _checker(name: str, dtype: str) -> Callable[[Any], Any]:
    """A per-value check + light conversion for one feature, by its stored type."""
    target = storage_type(dtype)
    kind = "other" if target is None else kind_of(target)
    if kind == "float":
        def check(v: Any) -> Any:
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                return v
            return _bad(name, v, "a number")
    elif kind == "int":
        def check(v: Any) -> Any:
            if isinstance(v, numbers.Integral) and not isinstance(v, bool):
                return int(v)
            if isinstance(v, float) and (v != v or v.is_integer()):
                return None if v != v else int(v)
            return _bad(name, v, "an integer")
    elif kind == "string":
        def check(v: Any) -> Any:
            return v if isinstance(v, str) else _bad(name, v, "a string")
    elif kind == "bool":
        def check(v: Any) -> Any:
            return bool(v) if type(v).__name__ in {"bool", "bool_"} else _bad(name, v, "a bool")
    elif kind in {"timestamp", "date"}:
        expected = datetime if kind == "timestamp" else date

        def check(v: Any) -> Any:
            return v if isinstance(v, expected) else _bad(name, v, expected.__name__)
    else:
        raise InvalidInputError(f"feature {name!r} has dtype {dtype}, which the buffered logger "
                                "does not take; log such batches with log_predictions",
                                field=name)
    return check


def _bad(name: str, value: Any, expected: str) -> Any:
    if value is None:
        return None
    raise InvalidInputError(f"feature {name!r} = {value!r} ({type(value).__name__}) is not "
                            f"{expected}; nothing was logged", field=name, value=value)


class PredictionBuffer:
    """Buffered, thread-safe prediction logging into one predictions table (``sink``)."""

    def __init__(self, sink: Callable[[pa.Table], object], *, schema: FeatureSchema,
                 version: int, attributes: Sequence[str] = (), positive: int | None = None,
                 flush_rows: int = 10_000, flush_interval: float = 10.0,
                 capacity: int = 100_000, retry_interval: float = 1.0) -> None:
        if not 0 < flush_rows <= capacity:
            raise InvalidInputError(f"need 0 < flush_rows <= capacity, got {flush_rows} and "
                                    f"{capacity}", field="flush_rows")
        if not flush_interval > 0 or not retry_interval > 0:
            raise InvalidInputError("flush_interval and retry_interval must be > 0 seconds",
                                    field="flush_interval")
        self.sink = sink
        self.schema = [dict(entry) for entry in schema]
        self.version = version_number(version)
        self.names = [entry["name"] for entry in self.schema]
        self._checks = [(n, _checker(n, e["dtype"])) for n, e in zip(
            self.names, self.schema, strict=True)]
        self.attributes = tuple(attributes)
        clash = sorted(set(self.attributes) & (RESERVED | set(self.names)))
        if clash:
            raise InvalidInputError(f"attributes {clash} clash with features or reserved "
                                    "columns", field="attributes")
        self.positive = positive
        self.flush_rows, self.capacity = flush_rows, capacity
        self.flush_interval, self.retry_interval = flush_interval, retry_interval
        self._rows: list[tuple[Any, ...]] = []
        self._inflight = 0
        self._closed = False
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._next_flush = time.monotonic() + flush_interval
        self._counts = {"logged": 0, "written": 0, "batches": 0, "failures": 0, "dropped": 0}
        self._missing: dict[str, int] = dict.fromkeys([*self.names, "score"], 0)
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="nbregistry-prediction-buffer",
                                        daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # -- logging ------------------------------------------------------------------------

    def log(self, features: Mapping[str, Any], prediction: Any, *, id: str | None = None,
            ts: datetime | None = None, label: int | None = None,
            attributes: Mapping[str, Any] | None = None) -> str:
        """Queue one prediction; returns its id. ``prediction``: a score (float), a class
        (int/bool), or the row's class probabilities. Blocks while the buffer is full."""
        try:
            values = [check(features[name]) for name, check in self._checks]
        except KeyError as exc:
            raise InvalidInputError(f"features lack {exc.args[0]!r} (version {self.version} "
                                    f"expects {self.names}); nothing was logged",
                                    field=str(exc.args[0])) from None
        source = features if attributes is None else attributes
        extra = [source.get(name) for name in self.attributes]
        score, label = self._output(prediction, label)
        us = time.time_ns() // 1000 if ts is None else _micros(ts)
        if id is None:
            id = new_id(us)
        elif not isinstance(id, str):
            raise InvalidInputError(f"id must be a string, got {type(id).__name__}", field="id")
        row = (id, us, score, label, *values, *extra)
        with self._cond:
            while not self._closed and len(self._rows) + self._inflight >= self.capacity:
                self._cond.notify_all()
                self._cond.wait()
            if self._closed:
                raise NbRegistryError("the prediction buffer is closed; create a new one")
            self._rows.append(row)
            self._counts["logged"] += 1
            if len(self._rows) == self.flush_rows:
                self._cond.notify_all()
        return id

    def _output(self, prediction: Any, label: Any) -> tuple[float | None, int | None]:
        if isinstance(prediction, bool | numbers.Integral):
            return float(prediction), int(prediction) if label is None else int(label)
        if isinstance(prediction, numbers.Real):
            return float(prediction), None if label is None else int(label)
        if hasattr(prediction, "__len__") and not isinstance(prediction, str | bytes):
            probs = [float(p) for p in prediction]
            if len(probs) == 1:
                return probs[0], None if label is None else int(label)
            pos = self.positive if self.positive is not None else 1
            if (len(probs) > 2 and self.positive is None) or not 0 <= pos < len(probs):
                raise InvalidInputError(f"{len(probs)} class probabilities: create the buffer "
                                        "with positive=<column index>", field="positive")
            best = max(range(len(probs)), key=probs.__getitem__)
            return probs[pos], best if label is None else int(label)
        raise InvalidInputError(f"prediction {prediction!r} is not a score, a class or class "
                                "probabilities", field="prediction")

    # -- writing ------------------------------------------------------------------------

    def _table(self, rows: list[tuple[Any, ...]]) -> tuple[pa.Table, dict[str, Any]]:
        columns = list(zip(*rows, strict=True))
        features = pa.table({name: pa.array(columns[4 + i], from_pandas=True)
                             for i, name in enumerate(self.names)})
        extra = {name: pa.array(columns[4 + len(self.names) + i], from_pandas=True)
                 for i, name in enumerate(self.attributes)}
        args = {"ids": pa.array(columns[0], pa.string()),
                "ts": pa.array(columns[1], pa.int64()).cast(TS),
                "labels": pa.array(columns[3], pa.int64()),
                "attributes": pa.table(extra) if extra else None}
        return features, {"predictions": pa.array(columns[2], pa.float64()), **args}

    def _drain(self) -> None:
        """Write everything queued so far, on the calling thread; raises if the write fails
        (the rows are kept for the next attempt)."""
        with self._write_lock:
            with self._cond:
                batch, self._rows = self._rows, []
                self._inflight = len(batch)
                self._next_flush = time.monotonic() + self.flush_interval
            if not batch:
                return
            try:
                try:
                    features, args = self._table(batch)
                except (pa.ArrowException, TypeError, ValueError) as exc:
                    raise InvalidInputError(f"buffered rows do not convert to Arrow: {exc}"
                                            ) from exc
                prepared = prepare_predictions(features, schema=self.schema,
                                               version=self.version, **args)
                self.sink(prepared.table)
            except InvalidInputError as exc:  # cannot succeed on retry: drop, loudly
                self._settle(batch, error=exc, keep=False)
                log.error("prediction buffer dropped %d rows: %s", len(batch), exc)
                raise
            except Exception as exc:
                self._settle(batch, error=exc, keep=True)
                raise
            self._settle(batch, missing=prepared.missing)

    def _settle(self, batch: list[tuple[Any, ...]], *, error: Exception | None = None,
                keep: bool = False, missing: Mapping[str, int] | None = None) -> None:
        with self._cond:
            self._inflight = 0
            if error is None:
                self._counts["written"] += len(batch)
                self._counts["batches"] += 1
                for name, count in (missing or {}).items():
                    self._missing[name] = self._missing.get(name, 0) + count
            else:
                self._last_error = f"{type(error).__name__}: {error}"
                self._counts["failures" if keep else "dropped"] += 1 if keep else len(batch)
                if keep:
                    self._rows[:0] = batch
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._rows) < self.flush_rows:
                    remaining = self._next_flush - time.monotonic()
                    if remaining <= 0 and self._rows:
                        break
                    self._cond.wait(remaining if remaining > 0 else self.flush_interval)
                if self._closed:
                    return  # close() writes the rest on its own thread, where errors surface
            try:
                self._drain()
            except InvalidInputError:
                pass  # dropped and counted in _drain
            except Exception as exc:
                log.warning("prediction buffer write failed, retrying in %.1fs: %s",
                            self.retry_interval, exc)
                with self._cond:
                    self._next_flush = time.monotonic() + self.retry_interval
                    self._cond.wait(self.retry_interval)

    def flush(self) -> None:
        """Write every row logged so far before returning."""
        self._drain()

    def close(self, timeout: float | None = None) -> None:
        """Stop the background thread and write the remaining rows. Raises StorageError
        naming how many rows could not be written."""
        with self._cond:
            if self._closed and not self._rows:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        _LIVE.discard(self)
        try:
            self._drain()
        except Exception as exc:
            raise StorageError(f"{len(self._rows)} buffered predictions could not be written: "
                               f"{exc}") from exc

    def __enter__(self) -> PredictionBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> BufferStats:
        with self._cond:
            return BufferStats(pending=len(self._rows) + self._inflight,
                               last_error=self._last_error, missing=dict(self._missing),
                               **self._counts)


def _micros(ts: datetime) -> int:
    if not isinstance(ts, datetime):
        raise InvalidInputError(f"ts must be a datetime, got {type(ts).__name__}", field="ts")
    aware = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    return in_range((aware - EPOCH) // timedelta(microseconds=1))  # not at the flush


@atexit.register
def _close_all() -> None:
    """Interpreter exit: write what every open buffer still holds."""
    for buffer in list(_LIVE):
        try:
            buffer.close()
        except Exception as exc:
            log.error("prediction buffer: %s", exc)
