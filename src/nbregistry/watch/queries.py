"""SQL over snapshots and argument checks shared by the monitoring questions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..domain.errors import InvalidInputError
from ..domain.timefmt import parse_time
from ..store import Snapshot


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
