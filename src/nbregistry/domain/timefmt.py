"""Times in the log: UTC, ISO 8601 with a "Z"; one reader for everything users type."""

from __future__ import annotations

from datetime import UTC, date, datetime

from .errors import InvalidInputError


def ts_text(ts: datetime) -> str:
    """The log's text form of a time (microseconds, UTC, "Z")."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    if ts.year >= 1000:  # isoformat is a third faster, and the chain hashes every ts
        return ts.isoformat(timespec="microseconds")[:-6] + "Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(when: object, *, field: str = "when") -> datetime:
    """An aware UTC datetime from ISO 8601 text, a datetime (naive means UTC) or a date."""
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInputError(f"cannot read {when!r} as a time: use ISO 8601, e.g. "
                                    "'2026-03-01T00:00:00Z'", field=field, value=when) from exc
    if not isinstance(when, datetime):
        if isinstance(when, date):
            when = datetime(when.year, when.month, when.day)
        else:
            raise InvalidInputError(f"expected a time (ISO text, datetime or date), got "
                                    f"{type(when).__name__}", field=field, value=when)
    try:
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise InvalidInputError(f"{when!r} is out of range", field=field, value=when) from exc
