"""Capture, the write side of ``Monitor``: predictions and outcomes into their Delta
tables, checked against the version's feature schema, from a batch, a buffered logger for a
scoring service, or a scoring call that logs its own predictions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..domain.errors import InvalidInputError
from ..monitoring import capture
from ..monitoring.buffer import SPILL_BYTES, PredictionBuffer
from ..store import MonitoringTables
from .ports import Catalog, MonitorParts


class Capturing(MonitorParts):
    """What ``Monitor`` logs; the questions are the other half (``monitor.py``)."""

    name: str
    catalog: Catalog
    tables: MonitoringTables

    def log_predictions(self, features: Any, predictions: Any, *, ids: Any = None,
                        ts: Any = None, version: int | str | None = None,
                        attributes: Any = None, labels: Any = None,
                        positive: int | None = None) -> capture.PredictionReceipt:
        """Append scored rows to the prediction log (pandas, polars or Arrow).

        Columns are checked against the version's feature schema (recorded at register): a
        missing or mistyped column is an ``InvalidInputError`` naming it and nothing is
        written. Columns that are not features are not logged (the receipt lists them)
        unless named in ``attributes`` (e.g. a segment or a protected group). ``predictions``
        is a 1-D array of scores (or labels), or ``predict_proba`` output (the positive
        column is kept as ``score``, the arg-max as ``label``). ``ids`` default to
        time-ordered unique ids, ``ts`` to now (UTC), ``version`` to production's. The
        first rows of a version freeze its monitoring baseline, when it has none yet.
        """
        self._writer("log predictions")
        mv = self.version(version)
        receipt = capture.log_predictions(
            self.tables.predictions, features, predictions, schema=mv.features or None,
            version=mv.version, ids=ids, ts=ts, attributes=attributes, labels=labels,
            positive=positive)
        self._freeze_quietly(mv)
        return receipt

    def log_outcomes(self, ids: Any, actuals: Any, *, ts: Any = None
                     ) -> capture.OutcomeReceipt:
        """Record actual outcomes, joined to predictions by id (labels arrive late). Unknown
        ids are written and counted; an id already resolved is not written again and is
        counted as a duplicate: the receipt says how many of each."""
        self._writer("log outcomes")
        if not self.tables.predictions.exists():
            raise InvalidInputError(f"{self.name!r} has logged no predictions yet: log them "
                                    "with mon.log_predictions(...) before their outcomes",
                                    field="ids")
        return capture.log_outcomes(self.tables, ids, actuals, ts=ts)

    def logger(self, *, version: int | str | None = None, attributes: Sequence[str] = (),
               flush_rows: int = 10_000, flush_interval: float = 10.0,
               capacity: int = 100_000, max_wait: float = 0.5,
               max_retry_interval: float = 60.0,
               spill_dir: str | os.PathLike[str] | None = None,
               spill_bytes: int = SPILL_BYTES) -> PredictionBuffer:
        """A buffered, thread-safe logger for a scoring service: ``log(features_dict,
        score)`` returns at once; rows are written every ``flush_rows`` rows or
        ``flush_interval`` seconds and at exit. While the store is down it backs off and
        spills to local files replayed later; ``log()`` never waits longer than
        ``max_wait``; ``stats()`` says what happened (see docs/monitoring.md)."""
        self._writer("log predictions")
        mv = self.version(version)
        if not mv.features:
            raise InvalidInputError(f"{self.name} v{mv.version} has no feature schema: "
                                    "register it with reference_data=...", field="version")
        self._freeze_quietly(mv)
        return PredictionBuffer(self.tables.predictions, schema=mv.features,
                                version=mv.version, attributes=attributes,
                                flush_rows=flush_rows, flush_interval=flush_interval,
                                capacity=capacity, max_wait=max_wait,
                                max_retry_interval=max_retry_interval, spill_dir=spill_dir,
                                spill_bytes=spill_bytes)

    def predict(self, features: Any, *, alias: str | None = None,
                version: int | str | None = None, ids: Any = None,
                attributes: Any = None, trusted: bool | Sequence[str] = False) -> Any:
        """Score ``features`` with the production version (or ``alias`` / ``version``), log
        the predictions, and return them: one line in a scoring job."""
        ref = f"{self.name}@{alias}" if alias else self.name
        mv = (self.catalog.get(ref) if alias else self.version(version))
        model = self.catalog.load(ref if alias else self.name,
                                  None if alias else mv.version, trusted=trusted)
        names = [f["name"] for f in mv.features]
        inputs = features[names] if names and hasattr(features, "columns") else features
        output = (model.predict_proba(inputs) if hasattr(model, "predict_proba")
                  else model.predict(inputs))
        self.log_predictions(features, output, ids=ids, version=mv.version,
                             attributes=attributes)
        return output

