"""Sketching, the derived-data side of ``Monitor``: per-file drift sketches and per
(prediction file, outcome file) performance sketches, kept by ``check()``, the watcher and
``Monitor.sketch()``, and checked against the raw rows on request."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..domain.entities import ModelVersion
from ..store import Snapshot
from . import baselines, perf_sketches, sketches
from .ports import MonitorParts, Reads
from .queries import as_time

SKETCHES_ENV = "NBREGISTRY_SKETCHES"   # "off": every question reads the rows (reverify)


class Sketching(MonitorParts):
    """What ``Monitor`` keeps as sketches; the questions use them (``monitor.py``)."""

    engine: Any
    sketches: sketches.SketchStore
    _rows_only = False

    def _use_sketches(self) -> bool:
        """Whether questions may sum sketches: with the in-process engine, outside
        ``from_rows()``, unless ``$NBREGISTRY_SKETCHES`` is ``off`` (``reverify`` re-runs a
        report from the rows, so a rewritten sketch cannot vouch for itself)."""
        return (self.engine is None and not self._rows_only
                and os.environ.get(SKETCHES_ENV, "on") != "off")

    @contextlib.contextmanager
    def from_rows(self) -> Iterator[None]:
        """Questions asked inside read the rows alone: what an alert is judged on before
        it is recorded (an alert is evidence, and its action may move production)."""
        before, self._rows_only = self._rows_only, True
        try:
            yield
        finally:
            self._rows_only = before

    def _baseline(self, mv: ModelVersion) -> baselines.Baseline:
        raise NotImplementedError

    def _reads(self) -> Reads:
        raise NotImplementedError

    def _relation(self, snapshot: Snapshot) -> str:
        raise NotImplementedError

    def connection(self) -> Any:
        raise NotImplementedError

    def task(self, version: int | str | None = None) -> Any:
        raise NotImplementedError

    def verify_sketches(self, version: int | str | None = None) -> list[str]:
        """Recompute every sketch from the raw rows (the drift sketches of the version's
        frozen baseline, the performance sketches of every counted outcome file) and name
        the data files whose sketch differs (derived data: a wrong one is rebuilt by
        deleting the sketches table; the audit log never names them)."""
        mv = self.version(version)
        found = self._baseline(mv)
        if found.info.sha256 is None or self.engine is not None:
            return []
        reads = self._reads()
        predictions = reads.snapshot("predictions")
        return sketches.verify(self.connection(), predictions, self._relation, found.spec,
                               version=mv.version, baseline=found.info.sha256,
                               store=self.sketches) + perf_sketches.verify(
            self.connection(), predictions, reads.snapshot("outcomes"),
            task=self.task(mv.version), threshold=0.5, store=self.sketches)

    def sketch(self, version: int | str | None = None, *, start: Any = None,
               end: Any = None) -> int:
        """Sketch the prediction files of ``[start, end)`` (default: all) not sketched yet,
        for the version's frozen baseline, and count the outcome files not counted yet for
        performance (derived data, not evidence; check() and the watcher do this). Returns
        how many data files were sketched or counted."""
        self._writer("keep sketches")
        mv = self.version(version)
        self._freeze_quietly(mv)
        found = self._baseline(mv)
        if self.engine is not None or found.info.sha256 is None:
            return 0
        reads = self._reads()
        predictions = reads.snapshot("predictions", as_time(start, "start"),
                                     as_time(end, "end"))
        added = sketches.keep(self.connection(), predictions, self._relation, found.spec,
                              version=mv.version, baseline=found.info.sha256,
                              store=self.sketches)
        return added + perf_sketches.keep(
            self.connection(), reads.snapshot("predictions"), reads.snapshot("outcomes"),
            task=self.task(mv.version), threshold=0.5, store=self.sketches)

    def sketched_performance(self, start: datetime, end: datetime, *, version: int
                             ) -> tuple[dict[str, Any], float] | None:
        """``performance(None)`` of ``version`` over ``[start, end)`` from the performance
        sketches, with the bound of its ROC AUC; None when the raw rows must answer."""
        if not self._use_sketches():
            return None
        reads = self._reads()
        predictions = reads.snapshot("predictions", start, end)
        if predictions.version < 0:
            return None
        return perf_sketches.window(
            self.connection(), predictions, reads.snapshot("predictions"),
            reads.snapshot("outcomes"), version=version, task=self.task(version),
            threshold=0.5, store=self.sketches)
