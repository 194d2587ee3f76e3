"""What a report reads, pinned: the registry as of one head, monitoring tables and data
tables at fixed Delta versions.

A first run pins the head it opens with and each table's version at its first read; a
re-run (``nbr.reverify``) is handed those pins and reads exactly the same data. The
registry part is a fold of the log up to the pinned seq, after checking that the event
there still has the recorded hash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from ..domain.entities import Event
from ..domain.errors import IntegrityError, InvalidInputError
from ..registry import Registry, RegistryView, open_registry
from ..registry.fold import fold
from ..registry.monitor import Monitor
from ..registry.state import RegistryState
from ..store import MonitorTable, Snapshot, read_table

STORAGE_ENV = "NBREGISTRY_REPORT_STORAGE_OPTIONS"


@dataclass
class ReportContext:
    """The live registry (for the few writes a read may need, such as freezing a baseline),
    the pinned view every figure is read from, and the table versions read so far."""

    live: Registry
    registry: RegistryView
    head: tuple[int, str]
    pinned: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)

    def events(self) -> list[Event]:
        """The events up to the pinned head, oldest first."""
        return list(self.registry._current().events)

    def monitor(self, name: str) -> PinnedMonitor:
        """Monitoring of ``name`` that reads each table at its pinned Delta version."""
        return PinnedMonitor(self, name)

    def read_table(self, uri: str, version: int | None = None, *,
                   columns: list[str] | None = None) -> pa.Table:
        """A Delta table at ``version`` (a lineage pin), else at its pinned or current one."""
        version = self.pinned.get(uri, version)
        table, read = read_table(uri, version=version, columns=columns,
                                 storage_options=_storage_options() or None)
        self._note(uri, read)
        return table

    def _note(self, key: str, version: int) -> None:
        if version >= 0:
            self.pinned.setdefault(key, version)
            self.tables[key] = version


class PinnedMonitor(Monitor):
    """``Monitor`` whose questions read the context's table versions and whose default
    version comes from the pinned registry view."""

    def __init__(self, context: ReportContext, name: str) -> None:
        super().__init__(context.live, name)
        self.context = context

    def version(self, version: int | str | None = None) -> Any:
        view = self.context.registry
        if version is not None:
            return view.get(self.name, version)
        try:
            return view.get(self.name, stage="production")
        except Exception:  # no production version: the latest
            return view.get(self.name)

    def snapshots(self, start: Any = None, end: Any = None) -> tuple[Snapshot, Snapshot]:
        from ..domain.timefmt import parse_time

        begin = None if start is None else parse_time(start, field="start")
        stop = None if end is None else parse_time(end, field="end")
        return (self._snapshot(self.tables.predictions, begin, stop),
                self._snapshot(self.tables.outcomes, None, None))

    def has_predictions(self) -> bool:
        """Whether any prediction was logged (a report says so instead of failing)."""
        return self.tables.predictions.exists()

    def rows(self, start: Any = None, end: Any = None, *,
             version: int | str | None = None) -> pa.Table:
        """The logged predictions in ``[start, end)`` (of ``version``), each with its first
        recorded outcome as ``actual`` (null while it has not matured)."""
        from ..registry.monitor import joined

        predictions, outcomes = self.snapshots(start, end)
        if predictions.version < 0:
            return pa.table({})
        query = f"SELECT * FROM {joined(predictions, outcomes, inner=False)}" if \
            outcomes.version >= 0 else f"SELECT *, NULL::DOUBLE AS actual FROM " \
            f"{predictions.relation()}"
        if version is not None:
            query += f" WHERE version = {self.version(version).version}"
        table: pa.Table = self.connection().sql(query + " ORDER BY ts, prediction_id"
                                                    ).to_arrow_table()
        return table

    def _snapshot(self, table: MonitorTable, start: datetime | None,
                  end: datetime | None) -> Snapshot:
        pinned = self.context.pinned.get(table.key)
        snap = table.snapshot(start, end, version=pinned)
        self.context._note(table.key, snap.version)
        return snap


def open_report(registry_uri: str | None, pin: Mapping[str, Any] | None = None
                ) -> ReportContext:
    """Open the registry a report reads; ``pin`` (from a recorded report) fixes the head and
    the table versions."""
    live = open_registry(registry_uri, storage_options=_storage_options() or None,
                         create=False)
    if not pin:
        head = live.head
        return ReportContext(live, view_at(live, head), head)
    seq, digest = pin["head"]
    head = (int(seq), str(digest))
    return ReportContext(live, view_at(live, head), head,
                         pinned={str(k): int(v) for k, v in pin.get("tables", {}).items()})


def view_at(live: Registry, head: tuple[int, str]) -> RegistryView:
    """The registry as it was at event ``seq``, refusing a log whose event there changed."""
    seq, digest = head
    events = live._current().events
    if not 1 <= seq <= len(events):
        raise IntegrityError(f"the log has {len(events)} events, fewer than the head seq "
                             f"{seq} this report saw: it was cut. Run nbregistry verify.",
                             problems=[f"missing event {seq}"])
    if events[seq - 1].hash != digest:
        raise IntegrityError(f"event {seq} no longer has the hash this report saw "
                             f"({digest[:12]}…): the log was rewritten. Run nbregistry verify.",
                             problems=[f"event {seq} hash changed"])
    state = fold(RegistryState(), events[:seq])
    return RegistryView(live._location, state, live.user)


def _storage_options() -> dict[str, str]:
    text = os.environ.get(STORAGE_ENV)
    if not text:
        return {}
    options = json.loads(text)
    if not isinstance(options, dict):
        raise InvalidInputError(f"${STORAGE_ENV} must hold a JSON object", field="storage")
    return {str(k): str(v) for k, v in options.items()}
