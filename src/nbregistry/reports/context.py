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
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from ..domain.entities import Event
from ..domain.errors import InvalidInputError
from ..domain.timefmt import ts_text
from ..registry import Registry, RegistryView, open_registry
from ..store import monitoring_tables, read_table
from ..watch import Monitor, PinnedSource

STORAGE_ENV = "NBREGISTRY_REPORT_STORAGE_OPTIONS"


@dataclass
class ReportContext:
    """The live registry (where its artifacts are read), the view pinned at the head every
    figure is read from, and the Delta versions: ``pinned`` (given, or fixed at first read)
    and ``tables`` (every version this report read)."""

    live: Registry
    registry: RegistryView
    head: tuple[int, str]
    pinned: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)  # from the runner: who, when, template

    def provenance(self) -> dict[str, Any]:
        """Who ran this report, when, with which nbregistry and template, and the monitoring
        baseline of the version it is about (its reference data's sha256)."""
        baseline = None
        model, version = self.run.get("model"), self.run.get("version")
        if model and version is not None:
            found = self.registry.frozen_baseline(str(model), int(version))
            if found is not None:
                baseline = {"sha256": found["sha256"], "seq": found["seq"],
                            "reference": (found.get("source") or {}).get("reference")}
        return {"by": str(self.run.get("by") or self.live.user),
                "started": str(self.run.get("started") or ts_text(datetime.now(UTC))),
                "nbregistry": nbregistry_version(), "template": str(self.run.get("template", "")),
                "template_sha256": str(self.run.get("template_sha256", "")),
                "baseline": baseline}

    def events(self) -> list[Event]:
        """The events up to the pinned head, oldest first."""
        return self.registry.events()

    def monitor(self, name: str) -> Monitor:
        """Monitoring of ``name`` as of the pinned head, reading each table at its pinned
        Delta version (read-only: a report records nothing but itself)."""
        tables = monitoring_tables(self.live.ledger.location, name)
        self.registry.get(name)
        source = PinnedSource(tables, self.pinned, record=self.tables)
        return Monitor(self.registry, name, tables=tables, source=source)

    def read_table(self, uri: str, version: int | None = None, *,
                   columns: list[str] | None = None) -> pa.Table:
        """A Delta table at ``version`` (a lineage pin), else at its pinned or current one."""
        version = self.pinned.get(uri, version)
        table, read = read_table(uri, version=version, columns=columns,
                                 storage_options=_storage_options() or None)
        if read >= 0:
            self.pinned.setdefault(uri, read)
            self.tables[uri] = read
        return table


def nbregistry_version() -> str:
    """The running nbregistry's version (looked up at run time: a static import of the
    package root from here would put the root and the reports in one import cycle)."""
    import importlib

    return str(importlib.import_module("nbregistry").__version__)


def open_report(registry_uri: str | None, pin: Mapping[str, Any] | None = None
                ) -> ReportContext:
    """Open the registry a report reads; ``pin`` (from a recorded report) fixes the head and
    the table versions."""
    live = open_registry(registry_uri, storage_options=_storage_options() or None,
                         create=False)
    pin = dict(pin or {})
    run = dict(pin.get("run") or {})
    if "head" not in pin:  # a first run: the runner passes only who, when and what
        head = live.head
        return ReportContext(live, live.at(head), head, run=run)
    seq, digest = pin["head"]
    head = (int(seq), str(digest))
    return ReportContext(live, live.at(head), head,
                         pinned={str(k): int(v) for k, v in pin.get("tables", {}).items()},
                         run=run)


def _storage_options() -> dict[str, str]:
    text = os.environ.get(STORAGE_ENV)
    if not text:
        return {}
    options = json.loads(text)
    if not isinstance(options, dict):
        raise InvalidInputError(f"${STORAGE_ENV} must hold a JSON object", field="storage")
    return {str(k): str(v) for k, v in options.items()}
