"""Where monitoring questions read their tables: a source that hands out Delta snapshots.

Every question starts with ``source.reads()`` and reads each table through it, so it sees
one Delta version of each table however many snapshots it takes, and says afterwards which
versions it read. A live source reads the newest versions; a pinned source (a report, or its
re-run by ``nbr.reverify``) reads the versions it was given and records the versions of the
tables it had no pin for, so that the same question asked later reads the same data.
"""

from __future__ import annotations

from datetime import datetime

from ..store import MonitoringTables, Snapshot
from .ports import TableKind


class Pinning:
    """The reads of one question (``ports.Reads``): the first snapshot of a table fixes its
    version; later snapshots of it (other time ranges) read that same version."""

    def __init__(self, tables: MonitoringTables, pins: dict[str, int],
                 record: dict[str, int] | None = None, *, fetch: bool = True) -> None:
        self._tables, self._pins, self._record = tables, pins, record
        self.fetch = fetch
        self.versions: dict[str, int] = {}

    def snapshot(self, kind: TableKind, start: datetime | None = None,
                 end: datetime | None = None) -> Snapshot:
        table = getattr(self._tables, kind)
        snap: Snapshot = table.snapshot(start, end, version=self._pins.get(table.key),
                                        fetch=self.fetch)
        if snap.version >= 0:
            self._pins.setdefault(table.key, snap.version)
            self.versions[table.key] = snap.version
            if self._record is not None:
                self._record[table.key] = snap.version
        return snap


class LiveSource:
    """The newest version of each table, fixed per question."""

    def __init__(self, tables: MonitoringTables) -> None:
        self.tables = tables

    def reads(self, *, fetch: bool = True) -> Pinning:
        return Pinning(self.tables, {}, fetch=fetch)

    def exists(self, kind: TableKind) -> bool:
        return bool(getattr(self.tables, kind).exists())


class PinnedSource:
    """The versions in ``pins`` (table key -> Delta version), shared by every question asked
    through this source (and by whoever else holds the dict: a report's other monitors): a
    table without a pin is pinned at its first read. Every version read is noted in
    ``record`` (a report keeps it in its event)."""

    def __init__(self, tables: MonitoringTables, pins: dict[str, int] | None = None, *,
                 record: dict[str, int] | None = None) -> None:
        self.tables = tables
        self.pins: dict[str, int] = pins if pins is not None else {}
        self.record: dict[str, int] = record if record is not None else {}

    def reads(self, *, fetch: bool = True) -> Pinning:
        return Pinning(self.tables, self.pins, self.record, fetch=fetch)

    def exists(self, kind: TableKind) -> bool:
        table = getattr(self.tables, kind)
        return table.key in self.pins or bool(table.exists())
