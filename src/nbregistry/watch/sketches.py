"""Per-file sketches: drift counts kept per data file, so a window costs only its new files.

Delta data files never change once written, and counts of disjoint rows add up. So for each
data file of the predictions table, and each model version in it, the counts drift needs
(every feature's cells or levels against the version's frozen baseline, valid values, the
tails; ``monitoring.counts``) are computed once and kept in the model's ``sketches`` Delta
table, keyed by the file's path, the version and the baseline's sha256. A drift question
then sums the sketches of the files wholly inside its window, counts the files not sketched
yet in one scan grouped by file, and reads raw rows only from the files its window cuts
through. The figures equal the raw-row figures (the same counts, summed).

Sketches are derived data, never evidence: any can be rebuilt from the raw rows
(``Monitor.verify_sketches`` recomputes them), one that does not account for every row of
its file is rebuilt, and the audit log never names them. Questions use them but write
none; ``check()``, the watcher and ``Monitor.sketch()`` write them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from ..domain.errors import InvalidInputError
from ..domain.monitoring_policy import Band
from ..monitoring.counts import Counts, FeatureCounts, feature_counts
from ..store import MonitorTable, Snapshot
from ..store.monitoring import SKETCHES_SCHEMA
from ..store.snapshot import DataFile, read_file

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FORMAT = 2
FORMATS = (1, 2)  # the formats read
EXTRA_FORMAT = 100  # performance sketches (``perf_sketches``)
KEPT_TOTALS = 4    # window sums kept per (version, baseline): a watcher asks for two windows
RESUM = 200        # steps from a kept sum before summing afresh
SCHEMA = SKETCHES_SCHEMA
Key = tuple[str, int, str]  # file, version, baseline sha256


class SketchStore:
    """The sketches table of one model, read once and then incrementally."""

    def __init__(self, table: MonitorTable) -> None:
        self.table = table
        self._known: dict[Key, Counts] = {}
        self.extra: dict[Key, str] = {}  # other kinds of sketch (their own format), as text
        self._seen = -1  # the sketches table's version read so far
        self._files: set[str] = set()  # its data files read so far
        self._lock = threading.Lock()
        # recent window sums per (version, baseline, features): (files, sum, steps since a
        # full sum)
        self._totals: dict[tuple[Any, ...], list[tuple[frozenset[str], Counts, int]]] = {}

    def lookup(self, files: Sequence[DataFile], version: int, baseline: str
               ) -> dict[str, Counts]:
        """The sketches there are for ``files`` (path -> counts)."""
        self._refresh()
        found = {}
        for entry in files:
            counts = self._known.get((entry.path, version, baseline))
            if counts is not None:
                found[entry.path] = counts
        return found

    def add(self, sketches: dict[Key, Counts]) -> int:
        """Keep new sketches (one append); returns how many."""
        fresh = {k: c for k, c in sketches.items() if k not in self._known}
        if not fresh:
            return 0
        now = datetime.now(UTC)
        rows = [{"file": f, "version": v, "baseline": b, "rows": c.rows, "format": FORMAT,
                 "counts": dumps(c), "created_at": now} for (f, v, b), c in fresh.items()]
        self.table.append(pa.Table.from_pylist(rows, schema=SCHEMA))
        with self._lock:
            self._known.update(fresh)
        return len(fresh)

    def total(self, version: int, baseline: str, known: dict[str, Counts],
              names: Sequence[str]) -> Counts:
        """The sum of ``known`` (path -> sketch) from the nearest sum kept: a watcher's
        windows move by a few files a tick, so a tick adds the files that came and takes
        away those that left instead of summing the window again (every ``RESUM`` steps it
        sums afresh, so the tails' float sums carry no drift of rounding)."""
        files = frozenset(known)
        with self._lock:
            kept = self._totals.setdefault((version, baseline, tuple(names)), [])
            best = min(kept, key=lambda t: len(files ^ t[0]), default=None)
        if best is None or len(files ^ best[0]) >= len(files) or best[2] >= RESUM:
            total, steps = Counts(features={name: FeatureCounts() for name in names}), 0
            for counts in known.values():
                total.add(counts)
        else:
            total, steps = best[1].copy(), best[2] + 1
            for path in files - best[0]:
                total.add(known[path])
            for path in best[0] - files:
                total.add(self._known[(path, version, baseline)], sign=-1)
        with self._lock:
            kept.append((files, total.copy(), steps))
            del kept[:-KEPT_TOTALS]
        return total

    def lookup_extra(self) -> dict[Key, str]:
        """Every sketch of another kind (``EXTRA_FORMAT``), as text."""
        self._refresh()
        return self.extra

    def add_extra(self, sketches: dict[Key, tuple[int, str]]) -> int:
        """Keep sketches of another kind: key -> (rows, text); one append."""
        fresh = {k: v for k, v in sketches.items() if k not in self.extra}
        if not fresh:
            return 0
        now = datetime.now(UTC)
        self.table.append(pa.Table.from_pylist(
            [{"file": f, "version": v, "baseline": b, "rows": rows, "format": EXTRA_FORMAT,
              "counts": text, "created_at": now} for (f, v, b), (rows, text) in fresh.items()],
            schema=SCHEMA))
        with self._lock:
            self.extra.update({k: text for k, (_, text) in fresh.items()})
        return len(fresh)

    def _refresh(self) -> None:
        """Read the sketch files added since the last look (data files never change)."""
        with self._lock:
            if not self.table.exists() or self.table.version() == self._seen:
                return
            snap = self.table.snapshot()
            for local, entry in zip(snap.files, snap.entries, strict=True):
                if entry.path in self._files:
                    continue
                for row in read_file(local, list(SCHEMA.names), snap.schema).to_pylist():
                    key = (row["file"], row["version"], row["baseline"])
                    if row["format"] in FORMATS:
                        self._known.setdefault(key, loads(row["counts"], row["rows"],
                                                          row["format"]))
                    elif row["format"] == EXTRA_FORMAT:
                        self.extra.setdefault(key, row["counts"])
                self._files.add(entry.path)
            self._seen = snap.version


def dumps(counts: Counts) -> str:
    """Format 2: per feature its cells (or levels), their counts, the valid values and the
    tails; flat lists parse four times faster than format 1's [cell, count] pairs (a
    fresh process reads every sketch of the table)."""
    out = {}
    for name, c in counts.features.items():
        cells = sorted(c.histogram.items(), key=lambda kv: str(kv[0]))
        out[name] = [[k for k, _ in cells], [n for _, n in cells], c.valid, c.far_sum[0],
                     c.far_sum[1]]
    return json.dumps(out, separators=(",", ":"))


def loads(text: str, rows: int, form: int = FORMAT) -> Counts:
    out = Counts(rows=rows)
    for name, found in json.loads(text).items():
        if form == 1:
            histogram, valid, low, high = found
            cells = {k: int(n) for k, n in histogram}
        else:
            keys, counts, valid, low, high = found
            cells = dict(zip(keys, counts, strict=True))
        out.features[name] = FeatureCounts(cells, int(valid), (float(low), float(high)))
    return out


def split(snapshot: Snapshot, start: datetime | None, end: datetime | None
          ) -> tuple[list[int], list[int]]:
    """Indexes of the snapshot's files wholly inside ``[start, end)`` (by their statistics)
    and of the others (a window cuts through them, or they have no statistics)."""
    inside: list[int] = []
    edge: list[int] = []
    for i, entry in enumerate(snapshot.entries):
        whole = (entry.first is not None and entry.last is not None
                 and (start is None or entry.first >= start)
                 and (end is None or entry.last < end))
        (inside if whole else edge).append(i)
    return inside, edge


def subset(snapshot: Snapshot, indexes: Sequence[int], *, whole: bool) -> Snapshot:
    """The same snapshot restricted to some files (``whole``: without the time range, for
    files wholly inside it)."""
    return dataclasses.replace(
        snapshot, files=tuple(snapshot.files[i] for i in indexes),
        entries=tuple(snapshot.entries[i] for i in indexes),
        rows=sum(snapshot.entries[i].rows for i in indexes),
        start=None if whole else snapshot.start, end=None if whole else snapshot.end)


def per_file(con: Any, snapshot: Snapshot, specs: dict[str, Any], types: dict[str, str],
             where: str) -> dict[tuple[str, int], Counts]:
    """Counts per (file path, model version) of a snapshot's files, in one scan."""
    if not snapshot.files:
        return {}
    by_local = {local: entry.path for local, entry in zip(snapshot.files, snapshot.entries,
                                                          strict=True)}
    source = snapshot.relation(filename=True)
    found = feature_counts(con, source, where, specs, types,
                           keys=[("filename", "__file"), ("version", "__version")])
    return {(by_local[str(path)], int(version)): counts
            for (path, version), counts in found.items() if str(path) in by_local}


def build(con: Any, snapshot: Snapshot, indexes: Sequence[int], specs: dict[str, Any],
          types: dict[str, str], *, version: int, baseline: str) -> dict[Key, Counts]:
    """Sketches of the files at ``indexes`` (one scan), for every version in them, and an
    empty one for ``version`` where a file has none of its rows (so it is not looked at
    again)."""
    if not indexes:
        return {}
    found = per_file(con, subset(snapshot, indexes, whole=True), specs, types, "TRUE")
    out = {(path, v, baseline): counts for (path, v), counts in found.items()}
    for i in indexes:
        out.setdefault((snapshot.entries[i].path, version, baseline),
                       Counts(features={name: FeatureCounts() for name in specs}))
    return out


def window_counts(con: Any, predictions: Snapshot, relation: Callable[[Snapshot], str],
                  specs: dict[str, Any], types: dict[str, str], *, version: int,
                  baseline: str, store: SketchStore) -> tuple[Counts, dict[Key, Counts]]:
    """The window's counts for ``version``: sketches of the files wholly inside it, one
    scan of the inside files not sketched yet, raw rows of the files it cuts through.
    Returns the counts and the sketches computed on the way (for a writer to keep)."""
    inside, edge = split(predictions, predictions.start, predictions.end)
    whole = subset(predictions, inside, whole=True)
    known = store.lookup(whole.entries, version, baseline)
    total = store.total(version, baseline, known, list(specs))
    todo = [i for i, entry in zip(inside, whole.entries, strict=True)
            if entry.path not in known]
    fresh = build(con, predictions, todo, specs, types, version=version, baseline=baseline)
    for (_, v, _), counts in fresh.items():
        if v == version:
            total.add(counts)
    if edge:
        cut = subset(predictions, edge, whole=False)
        found = feature_counts(con, relation(cut), f"version = {version}", specs, types)
        for counts in found.values():
            total.add(counts)
    return total, fresh



def drift_table(con: Any, predictions: Snapshot, relation: Callable[[Snapshot], str],
                spec: dict[str, Any], *, version: int, baseline: str, store: SketchStore,
                band: Band) -> pa.Table:
    """``drift`` of a window for ``version`` against the frozen baseline ``spec`` (whose
    blob is ``baseline``), summing sketches where files are wholly in the window."""
    from ..monitoring import drift as drifts

    specs, types = drifts.prepared(con, relation(predictions), spec)
    counts, _ = window_counts(con, predictions, relation, specs, types, version=version,
                              baseline=baseline, store=store)
    if not counts.rows:
        raise InvalidInputError(f"the window has no prediction rows of v{version}: widen "
                                "the period or check the version", field="where")
    return drifts.from_counts(specs, counts, band=band)


def windows_tables(con: Any, predictions: Snapshot, relation: Callable[[Snapshot], str],
                   spec: dict[str, Any], *, version: int, baseline: str, store: SketchStore,
                   band: Band, step: timedelta) -> dict[tuple[int], pa.Table]:
    """``drift_windows``: per window of ``step`` from the snapshot's start (index -> drift
    table), summing the sketches of the files wholly inside one window and counting the
    rows of the others (a file that spans two windows, or the period's edge) in one scan
    grouped by window."""
    from ..monitoring import drift as drifts

    assert predictions.start is not None and predictions.end is not None
    begin, stop = predictions.start, predictions.end
    specs, types = drifts.prepared(con, relation(predictions), spec)
    inside: dict[int, list[int]] = {}
    edge: list[int] = []
    for i, entry in enumerate(predictions.entries):
        if entry.first is not None and entry.last is not None and begin <= entry.first \
                and entry.last < stop and (entry.first - begin) // step == \
                (entry.last - begin) // step:
            inside.setdefault((entry.first - begin) // step, []).append(i)
        else:
            edge.append(i)
    every = [i for found in inside.values() for i in found]
    known = store.lookup([predictions.entries[i] for i in every], version, baseline)
    fresh = build(con, predictions, [i for i in every if predictions.entries[i].path
                                     not in known], specs, types, version=version,
                  baseline=baseline)
    totals = {k: Counts(features={name: FeatureCounts() for name in specs}) for k in inside}
    for k, found in inside.items():
        for i in found:
            path = predictions.entries[i].path
            counts = known.get(path) or fresh.get((path, version, baseline))
            if counts is not None:
                totals[k].add(counts)
    if edge:
        micros = timedelta(microseconds=1)
        bucket = (f"CAST(floor((epoch_us(ts) - {(begin - EPOCH) // micros}) / "
                  f"{step // micros}) AS BIGINT)")
        cut = subset(predictions, edge, whole=False)
        for (k,), counts in feature_counts(con, relation(cut), f"version = {version}", specs,
                                           types, keys=[(bucket, "window")]).items():
            totals.setdefault(int(k), Counts(features={n: FeatureCounts() for n in specs}))
            totals[int(k)].add(counts)
    return {(k,): drifts.from_counts(specs, counts, band=band)
            for k, counts in sorted(totals.items()) if counts.rows}


def keep(con: Any, predictions: Snapshot, relation: Callable[[Snapshot], str],
         spec: dict[str, Any], *, version: int, baseline: str, store: SketchStore) -> int:
    """Sketch the snapshot's files not sketched yet; how many sketches were added."""
    from ..monitoring import drift as drifts

    if predictions.version < 0:
        return 0
    known = store.lookup(predictions.entries, version, baseline)
    todo = [i for i, entry in enumerate(predictions.entries) if entry.path not in known]
    if not todo:
        return 0
    specs, types = drifts.prepared(con, relation(predictions), spec)
    return store.add(build(con, predictions, todo, specs, types, version=version,
                           baseline=baseline))


def verify(con: Any, predictions: Snapshot, relation: Callable[[Snapshot], str],
           spec: dict[str, Any], *, version: int, baseline: str, store: SketchStore
           ) -> list[str]:
    """The sketched files whose sketch is not what their rows give now."""
    from ..monitoring import drift as drifts

    if predictions.version < 0:
        return []
    known = store.lookup(predictions.entries, version, baseline)
    indexes = [i for i, e in enumerate(predictions.entries) if e.path in known]
    if not indexes:
        return []
    specs, types = drifts.prepared(con, relation(predictions), spec)
    fresh = build(con, predictions, indexes, specs, types, version=version, baseline=baseline)
    return [path for path, counts in known.items()
            if not same(counts, fresh[(path, version, baseline)])]


def same(a: Counts, b: Counts) -> bool:
    """Equal counts (the tails' float sums to a relative 1e-9: summed in another order)."""
    if a.rows != b.rows or a.features.keys() != b.features.keys():
        return False
    for name, x in a.features.items():
        y = b.features[name]
        if x.histogram != y.histogram or x.valid != y.valid or not all(
                math.isclose(p, q, rel_tol=1e-9, abs_tol=1e-12)
                for p, q in zip(x.far_sum, y.far_sum, strict=True)):
            return False
    return True
