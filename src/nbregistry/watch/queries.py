"""SQL over snapshots and argument checks shared by the monitoring questions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError
from ..domain.timefmt import parse_time
from ..store import Snapshot

if TYPE_CHECKING:
    import pyarrow as pa


def joined(predictions: str, outcomes: str, *, inner: bool = True) -> str:
    """Predictions with ``actual``: the first outcome recorded per prediction id (the
    arguments are the two tables' relations, as the engine names them)."""
    first = (f"(SELECT prediction_id AS __id, arg_min(actual, ts) AS actual FROM {outcomes} "
             "GROUP BY prediction_id)")
    how = "JOIN" if inner else "LEFT JOIN"
    return (f"(SELECT p.*, o.actual FROM {predictions} AS p {how} {first} AS o "
            "ON p.prediction_id = o.__id)")


def as_time(value: Any, what: str) -> datetime | None:
    return None if value is None else parse_time(value, field=what)


def require_rows(snapshot: Snapshot, name: str) -> None:
    if snapshot.version < 0:
        raise InvalidInputError(f"{name!r} has logged no predictions yet: log them with "
                                "mon.log_predictions(...) or mon.logger()", field="model")


def error_stream(arrow: Callable[[str], pa.Table], predictions: str, outcomes: str, *,
                 limit: int, task: str) -> tuple[pa.Table, bool]:
    """The concept-drift detectors' stream (see ``Monitor.errors``) and whether it holds
    for as long as the outcomes do not change.

    The newest outcomes are taken first: when each has its prediction (the usual case) they
    are the stream, and predictions logged later cannot change it; an outcome whose
    prediction is not logged yet sends the question to every outcome."""
    error = ("CAST((p.score >= 0.5) <> (o.actual >= 0.5) AS DOUBLE)"
             if task == "classification" else "abs(p.score - o.actual)")

    def stream(source: str) -> pa.Table:
        return arrow(f"SELECT * FROM (SELECT o.ts AS outcome_ts, p.score, o.actual, {error} "
                     f"AS error FROM {source} AS o JOIN {predictions} AS p ON "
                     "p.prediction_id = o.prediction_id WHERE p.score IS NOT NULL AND "
                     f"o.actual IS NOT NULL ORDER BY o.ts DESC LIMIT {limit}) AS newest "
                     "ORDER BY outcome_ts")

    found = stream(f"(SELECT * FROM {outcomes} WHERE actual IS NOT NULL ORDER BY ts DESC "
                   f"LIMIT {limit})")
    if found.num_rows == limit:
        return found, True
    return stream(outcomes), False
