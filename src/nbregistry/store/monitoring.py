"""Delta tables of monitoring data: predictions, outcomes and computed metric windows.

One set per model, under the registry root, written with deltalake's writer, read through
:class:`Snapshot`. deltalake rebases a blind append that lost its commit; a commit lost to a
metaData change (another writer's new column) or a racing first write (exactly one writer
creates the table, at version 0) is retried here on the refreshed table.

``monitoring/<model>/predictions`` — partitioned by ``day``; one row per scored input:

    prediction_id  string              unique per prediction; default ids are time-ordered
                                       (UUIDv7 layout, 32 hex chars) so file statistics
                                       prune id lookups
    ts             timestamp[us, UTC]  when the prediction was made
    version        int64               the model version that scored it
    <feature>...   the version's feature schema, canonical types: integers -> int64,
                   floats -> double, strings/categoricals -> string, bool, date32,
                   timestamp[us, UTC]; NaN/±inf stored as null
    score          double              positive-class probability (classifiers), the
                                       prediction (regressors)
    label          int64               the predicted class (integer-coded); null when only
                                       a score was logged (regressors)
    <attribute>... columns that are not model inputs (segment, protected group), as logged
    day            date32              partition: the UTC date of ts (in the Delta log, not
                                       in the data files; Snapshot.relation() re-derives it)

``monitoring/<model>/outcomes`` — partitioned by ``day``; one row per observed outcome:

    prediction_id  string              the prediction it resolves
    ts             timestamp[us, UTC]  when the outcome was recorded
    actual         double              the true value (class as 0/1/2…, or the target)
    day            date32              partition: the UTC date of ts

``monitoring/<model>/metrics`` — not partitioned; one row per computed value:

    window_start, window_end  timestamp[us, UTC]  the window [start, end) it covers
    version        int64               model version (null: all versions)
    kind           string              drift | performance | fairness | …
    feature        string              feature, score or group it is about (null: model)
    metric         string              psi, ks, auc, air, …
    value          double
    status         string              ok | warn | alert | …
    computed_at    timestamp[us, UTC]

Every table: ``delta.appendOnly = true``, log and deleted-file retention of 36,500 days, never
VACUUMed (seals in the event chain point at these files). Every ``COMPACT_EVERY`` versions
the writer that lands there compacts small files and writes a checkpoint, so reads stay fast.
A later model version that adds a feature (or an attribute) adds a nullable column
(``schema_mode="merge"``); a column cannot change type (int64 data into a double column is
widened; anything narrower is refused with an error naming the column).
"""

from __future__ import annotations

import bisect
import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, TypeVar

import pyarrow as pa

from ..domain import timefmt
from ..domain.errors import (
    ConflictError,
    ForkedProcessError,
    InvalidInputError,
    StorageError,
)
from ..domain.validate import model_name
from . import forkguard
from .location import Location
from .snapshot import DataFile, FileCache, Snapshot, read_file

Kind = Literal["predictions", "outcomes", "metrics", "sketches"]
T = TypeVar("T")
KINDS: tuple[Kind, ...] = ("predictions", "outcomes", "metrics")
# derived data, rebuilt from the tables above whenever missing: never sealed, never evidence
DERIVED: tuple[Kind, ...] = ("sketches",)
ROOT = "monitoring"
TS = pa.timestamp("us", tz="UTC")
CONFIGURATION = {
    "delta.appendOnly": "true",
    "delta.logRetentionDuration": "interval 36500 days",
    "delta.deletedFileRetentionDuration": "interval 36500 days",
}
COMPACT_EVERY = 50
COMMIT_ATTEMPTS = 8
COMMIT_BACKOFF = 0.02  # seconds, doubling per lost commit, jittered: at most 5 s in all
COMPACT_TARGET_BYTES = 64 * 1024 * 1024  # larger files are left alone: compaction stays O(new)

PREDICTION_FIELDS = [pa.field("prediction_id", pa.string()), pa.field("ts", TS),
                     pa.field("version", pa.int64())]
PREDICTION_OUTPUTS = [pa.field("score", pa.float64()), pa.field("label", pa.int64())]
OUTCOMES_SCHEMA = pa.schema([pa.field("prediction_id", pa.string()), pa.field("ts", TS),
                             pa.field("actual", pa.float64())])
METRICS_SCHEMA = pa.schema([
    pa.field("window_start", TS), pa.field("window_end", TS), pa.field("version", pa.int64()),
    pa.field("kind", pa.string()), pa.field("feature", pa.string()),
    pa.field("metric", pa.string()), pa.field("value", pa.float64()),
    pa.field("status", pa.string()), pa.field("computed_at", TS)])
SKETCHES_SCHEMA = pa.schema([
    pa.field("file", pa.string()), pa.field("version", pa.int64()),
    pa.field("baseline", pa.string()), pa.field("rows", pa.int64()),
    pa.field("format", pa.int64()), pa.field("counts", pa.string()),
    pa.field("created_at", TS)])
# Names a feature or attribute may not take in the predictions table.
RESERVED = frozenset({"prediction_id", "ts", "version", "score", "label", "day"})


def table_key(model: str, kind: Kind) -> str:
    if kind not in (*KINDS, *DERIVED):
        raise InvalidInputError(f"unknown monitoring table {kind!r}: use one of {KINDS}")
    return f"{ROOT}/{model_name(model)}/{kind}"


def base_schema(kind: Kind) -> pa.Schema:
    """The columns every table of ``kind`` has (predictions add features and attributes)."""
    if kind == "predictions":
        return pa.schema([*PREDICTION_FIELDS, *PREDICTION_OUTPUTS])
    return {"outcomes": OUTCOMES_SCHEMA, "metrics": METRICS_SCHEMA,
            "sketches": SKETCHES_SCHEMA}[kind]


class MonitorTable:
    """One monitoring Delta table. Thread-safe: a buffered logger may flush from its own
    thread while the serving thread reads."""

    def __init__(self, location: Location, model: str, kind: Kind, *,
                 cache: FileCache | None = None) -> None:
        self.location = location
        self.kind = kind
        self.key = table_key(model, kind)
        self.uri = location.join(self.key)
        self.cache = cache or FileCache()
        self.partition_by = ["day"] if kind in ("predictions", "outcomes") else []
        self.time_column = {"metrics": "window_start", "sketches": "created_at"}.get(kind, "ts")
        self._dt: Any = None
        self._lock = threading.RLock()

    def _options(self) -> dict[str, str] | None:
        return self.location.storage_options or None

    def exists(self) -> bool:
        return self.location.exists(f"{self.key}/_delta_log/{0:020d}.json")

    def _open(self, *, refresh: bool = True) -> Any:
        """The table's DeltaTable, refreshed to the newest version; None before the first
        append."""
        from deltalake import DeltaTable

        if self._dt is None:
            if not self.exists():
                return None
            self._dt = DeltaTable(self.uri, storage_options=self._options())
        elif refresh:
            self._dt.update_incremental()
        return self._dt

    def _guarded(self, what: str, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                return forkguard.guarded(fn)
            except (ForkedProcessError, InvalidInputError, ConflictError):
                raise
            except Exception as exc:
                raise StorageError(f"cannot {what} {self.uri}: {exc}") from exc

    def version(self) -> int:
        """The newest Delta version, or -1 when nothing was written yet."""
        dt: Any = self._guarded("open", self._open)
        return -1 if dt is None else int(dt.version())

    def schema(self) -> pa.Schema:
        """The table schema (with ``day``), or the base schema before the first append."""
        dt = self._guarded("open", self._open)
        return base_schema(self.kind) if dt is None else pa.schema(dt.schema().to_arrow())

    def append(self, data: pa.Table) -> int:
        """Append rows in one Delta commit; returns the table's version after it (the current
        one when ``data`` is empty). Column types are checked against the table before
        writing: a refused batch writes nothing. A commit lost to a concurrent writer that
        deltalake does not rebase (a metaData commit: another writer's new column, or a
        racing first write) is retried on the refreshed table, ``COMMIT_ATTEMPTS`` times."""
        from deltalake.exceptions import CommitFailedError

        if data.num_rows == 0:
            return self.version()
        data = self._shape(data)

        def run() -> int:
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    return self._write(data, refresh=attempt > 0)
                except CommitFailedError as exc:
                    lost = exc
                    time.sleep(random.uniform(0, COMMIT_BACKOFF * 2 ** attempt))
            raise ConflictError(f"cannot append to {self.uri}: the commit lost to concurrent "
                                f"writers {COMMIT_ATTEMPTS} times ({lost}); try again")

        version = self._guarded("append to", run)
        if version > 0 and version % COMPACT_EVERY == 0:
            self.compact()
        return version

    def _write(self, data: pa.Table, *, refresh: bool) -> int:
        """One commit attempt. The handle is refreshed only after a lost commit: deltalake
        moves it past our own commits, and a blind append to an older version is rebased."""
        from deltalake import CommitProperties, write_deltalake

        options: dict[str, Any] = {"mode": "append", "schema_mode": "merge",
                                   "partition_by": self.partition_by or None,
                                   "storage_options": self._options()}
        dt = self._open(refresh=refresh)
        if dt is None:
            # No retries: a creating commit that lost the race for version 0 would otherwise
            # be committed again on top, a second protocol + metaData ("create") commit whose
            # schema and properties replace the winner's. Losing raises; we then append.
            write_deltalake(self.uri, data, configuration=CONFIGURATION,
                            commit_properties=CommitProperties(max_commit_retries=0), **options)
            dt = self._open()
        else:
            write_deltalake(dt, conform(data, pa.schema(dt.schema().to_arrow())), **options)
        return int(dt.version())

    def _shape(self, data: pa.Table) -> pa.Table:
        """Required columns present with castable types, ``day`` derived from ``ts``."""
        import pyarrow.compute as pc  # lazily: opening a registry never needs it

        base = base_schema(self.kind)
        if self.kind in ("metrics", "sketches"):
            extra = sorted(set(data.column_names) - set(base.names))
            if extra:
                raise InvalidInputError(f"{self.kind} rows have unknown columns {extra}: the "
                                        f"table has {base.names}", field=extra[0])
        missing = [n for n in base.names if n not in data.column_names]
        if missing:
            raise InvalidInputError(f"{self.kind} rows lack column(s) {missing}; expected at "
                                    f"least {base.names}", field=missing[0])
        data = conform(data, base)
        for name in ("prediction_id", "ts"):
            if name in data.column_names and data[name].null_count:
                raise InvalidInputError(f"{self.kind}: {data[name].null_count} row(s) have no "
                                        f"{name}; every row needs one", field=name)
        if self.partition_by:
            day = pc.cast(data["ts"], pa.date32())
            if "day" in data.column_names:
                data = data.drop_columns(["day"])
            data = data.append_column("day", day)
        return data

    def compact(self) -> None:
        """Merge small files and checkpoint. Best effort: a failure (a racing compaction)
        leaves the table as it was, and a later writer compacts again."""
        def run() -> None:
            dt = self._open()
            dt.optimize.compact(target_size=COMPACT_TARGET_BYTES)
            dt.create_checkpoint()

        with contextlib.suppress(StorageError):
            self._guarded("compact", run)

    def _reader(self, version: int | None) -> Any:
        from deltalake import DeltaTable

        if version is None:
            return self._open()
        if not self.exists():
            raise InvalidInputError(f"{self.uri} has no version {version}: nothing was written")
        return DeltaTable(self.uri, version=version, storage_options=self._options())

    def _actions(self, version: int | None) -> tuple[int, pa.Table | None, pa.Schema]:
        def run() -> tuple[int, pa.Table | None, pa.Schema]:
            dt = self._reader(version)
            if dt is None:
                return -1, None, base_schema(self.kind)
            return (int(dt.version()), pa.table(dt.get_add_actions(flatten=True)),
                    pa.schema(dt.schema().to_arrow()))

        return self._guarded("read", run)

    def snapshot(self, start: datetime | None = None, end: datetime | None = None, *,
                 version: int | None = None, fetch: bool = True) -> Snapshot:
        """The files of one Delta version (the newest unless ``version`` is given) whose
        rows may fall in ``[start, end)`` of the time column (``ts``; ``window_start`` for
        metrics): pruned by the ``day`` partition and by the column's statistics. On object
        stores the files are fetched to the local cache first, unless ``fetch`` is False
        (an engine that reads the store itself: ``entries`` name the files)."""
        import pyarrow.compute as pc

        start, end = utc(start, "start"), utc(end, "end")
        if start is not None and end is not None and end <= start:
            raise InvalidInputError(f"end {end.isoformat()} is not after start "
                                    f"{start.isoformat()}: pass start < end", field="end")
        at, actions, schema = self._actions(version)
        files: list[tuple[str, int]] = []
        rows = 0
        entries: list[DataFile] = []
        if actions is not None:
            actions = actions.filter(_overlaps(actions, start, end, self.time_column))
            files = list(zip(paths(actions), actions["size_bytes"].to_pylist(), strict=True))
            rows = int(pc.sum(actions["num_records"]).as_py() or 0)
            entries = self._entries(actions, files)
        local = self._guarded("fetch files of", lambda: self.cache.local_files(
            self.location, self.key, files)) if fetch else []
        stored = pa.schema([f for f in schema if f.name not in self.partition_by])
        return Snapshot(table=self.key, version=at, files=tuple(local), rows=rows,
                        schema=schema, start=start, end=end,
                        schema_file=self.cache.schema_file(stored), time_column=self.time_column,
                        entries=tuple(entries))

    def _entries(self, actions: pa.Table, files: list[tuple[str, int]]) -> list[DataFile]:
        names = actions.column_names
        counts = actions["num_records"].to_pylist()
        lows = (actions[f"min.{self.time_column}"].to_pylist()
                if f"min.{self.time_column}" in names else [None] * len(files))
        highs = (actions[f"max.{self.time_column}"].to_pylist()
                 if f"max.{self.time_column}" in names else [None] * len(files))
        return [DataFile(path, self.location.join(f"{self.key}/{path}"), size, int(n or 0),
                         low, high)
                for (path, size), n, low, high in zip(files, counts, lows, highs, strict=True)]

    def read(self, start: datetime | None = None, end: datetime | None = None, *,
             columns: Sequence[str] | None = None, version: int | None = None) -> pa.Table:
        """Rows of one snapshot in ``[start, end)`` as Arrow, for small reads."""
        return self.snapshot(start, end, version=version).to_arrow(columns)

    def find_ids(self, ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The distinct ``prediction_id`` values among ``ids`` that the newest snapshot
        holds. Files whose id statistics cannot contain any of them are not read."""
        import pyarrow.compute as pc

        wanted = pc.unique(pa.chunked_array([ids]).cast(pa.string()).drop_null())
        _, actions, schema = self._actions(None)
        if actions is None or len(wanted) == 0:
            return pa.array([], pa.string())
        ordered = sorted(wanted.to_pylist())
        lows = actions["min.prediction_id"].to_pylist() if "min.prediction_id" in \
            actions.column_names else [None] * actions.num_rows
        highs = actions["max.prediction_id"].to_pylist() if "max.prediction_id" in \
            actions.column_names else [None] * actions.num_rows
        keep = [lo is None or hi is None or _any_between(ordered, lo, hi)
                for lo, hi in zip(lows, highs, strict=True)]
        actions = actions.filter(pa.array(keep, pa.bool_()))
        files = list(zip(paths(actions), actions["size_bytes"].to_pylist(), strict=True))
        local = self._guarded("fetch files of", lambda: self.cache.local_files(
            self.location, self.key, files))
        found = []
        for path in local:
            column = read_file(path, ["prediction_id"], schema)["prediction_id"]
            found.append(column.filter(pc.is_in(column, value_set=wanted)))
        if not found:
            return pa.array([], pa.string())
        return pc.unique(pa.chunked_array(found, pa.string()).combine_chunks())


class MonitoringTables(NamedTuple):
    predictions: MonitorTable
    outcomes: MonitorTable
    metrics: MonitorTable


def monitoring_tables(location: Location, model: str, *,
                      cache: FileCache | None = None) -> MonitoringTables:
    """The three tables of one model, sharing one file cache."""
    cache = cache or FileCache()
    return MonitoringTables(*(MonitorTable(location, model, kind, cache=cache)
                              for kind in KINDS))


def utc(value: datetime | None, what: str) -> datetime | None:
    """Aware UTC; a naive datetime is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime, got {type(value).__name__}",
                                field=what, value=value)
    return timefmt.utc(value)


def paths(actions: pa.Table) -> list[str]:
    from urllib.parse import unquote

    return [unquote(p) for p in actions["path"].to_pylist()]


def _overlaps(actions: pa.Table, start: datetime | None, end: datetime | None,
              column: str) -> pa.Array:
    """Files whose day partition and time statistics may hold rows in [start, end)."""
    import pyarrow.compute as pc

    keep = pa.array([True] * actions.num_rows, pa.bool_())
    names = actions.column_names
    if start is not None:
        if "partition.day" in names:
            keep = pc.and_(keep, pc.greater_equal(actions["partition.day"], start.date()))
        if f"max.{column}" in names:
            keep = pc.and_(keep, pc.fill_null(pc.greater_equal(
                actions[f"max.{column}"], pa.scalar(start, TS)), True))
    if end is not None:
        last = (end - timedelta(microseconds=1)).date()
        if "partition.day" in names:
            keep = pc.and_(keep, pc.less_equal(actions["partition.day"], last))
        if f"min.{column}" in names:
            keep = pc.and_(keep, pc.fill_null(pc.less(actions[f"min.{column}"],
                                                      pa.scalar(end, TS)), True))
    return keep.combine_chunks() if isinstance(keep, pa.ChunkedArray) else keep


def _any_between(ordered: list[str], low: str, high: str) -> bool:
    i = bisect.bisect_left(ordered, low)
    return i < len(ordered) and ordered[i] <= high


# -- column types --------------------------------------------------------------------------

def kind_of(t: pa.DataType) -> str:
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_dictionary(t):
        return "string" if kind_of(t.value_type) == "string" else "other"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "other"


def widens(source: pa.DataType, target: pa.DataType) -> bool:
    """Can every value of ``source`` be stored as ``target`` without losing meaning?"""
    a, b = kind_of(source), kind_of(target)
    return (source.equals(target) or a == "null" or a == b != "other"
            or (a == "int" and b == "float"))


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast ``data``'s columns that ``schema`` also has to its types (safe casts only)."""
    import pyarrow.compute as pc

    for i, name in enumerate(data.column_names):
        if name not in schema.names:
            continue
        target = schema.field(name).type
        column = data.column(i)
        if column.type.equals(target):
            continue
        if not widens(column.type, target):
            raise InvalidInputError(
                f"column {name!r} is {column.type} but the table stores {target}: a Delta "
                "column cannot change type. Convert the values, or log them under a new "
                "column name.", field=name)
        try:
            cast = pc.cast(column, target, safe=not pa.types.is_timestamp(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(f"column {name!r} does not fit {target}: {exc}",
                                    field=name) from exc
        data = data.set_column(i, pa.field(name, target), cast)
    return data
