"""SQL over snapshots and argument checks shared by the monitoring questions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from ..domain.errors import InvalidInputError
from ..domain.timefmt import parse_time
from ..store import Snapshot


def joined(predictions: Snapshot, outcomes: Snapshot, *, inner: bool = True) -> str:
    """Predictions with ``actual``: the first outcome recorded per prediction id."""
    first = (f"(SELECT prediction_id, arg_min(actual, ts) AS actual FROM "
             f"{outcomes.relation()} GROUP BY prediction_id)")
    how = "JOIN" if inner else "LEFT JOIN"
    return (f"(SELECT p.*, o.actual FROM {predictions.relation()} AS p {how} {first} AS o "
            "USING (prediction_id))")


def as_time(value: Any, what: str) -> datetime | None:
    return None if value is None else parse_time(value, field=what)


def newest(table: pa.Table, name: str, *, before: datetime | None = None) -> datetime:
    """The newest ``ts`` (of the rows dated before ``before``: a row from a fast clock or a
    forged row dated in the future does not move a default period)."""
    import pyarrow.compute as pc

    if before is not None:
        table = table.filter(pc.less(table["ts"], pa.scalar(before, table.schema.field(
            "ts").type)))
    if table.num_rows == 0:
        raise InvalidInputError(f"{name!r} has logged no predictions yet", field="model")

    try:
        found: datetime = pc.max(table["ts"]).as_py()
    except OverflowError as exc:  # a row dated past year 9999, not logged by nbregistry
        raise InvalidInputError(f"{name!r} has predictions dated after year 9999: pass end= "
                                "to leave them out", field="end") from exc
    return found


def require_rows(snapshot: Snapshot, name: str) -> None:
    if snapshot.version < 0:
        raise InvalidInputError(f"{name!r} has logged no predictions yet: log them with "
                                "mon.log_predictions(...) or mon.logger()", field="model")
