"""Times in the log: UTC, ISO 8601 with a "Z"; one reader for everything users type."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from .errors import InvalidInputError

# Logged times must leave room for a window or a day partition on either side: Python's
# datetime ends with year 9999, and a window ending after that cannot even be written down.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)  # exclusive


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
        return utc(when)
    except (OverflowError, ValueError) as exc:
        raise InvalidInputError(f"{when!r} is out of range", field=field, value=when) from exc


# Window lengths, one syntax everywhere (the policy, check(), the questions, the panels):
# a positive count and a unit, seconds to weeks; at most ten years.
_WINDOW = re.compile(r"\s*([0-9]{1,9})\s*([smhdw])\s*")
WINDOW_UNITS = {"s": timedelta(seconds=1), "m": timedelta(minutes=1),
                "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_WINDOW = timedelta(days=3653)


def window_parts(text: object, *, field: str = "window") -> tuple[int, str]:
    """``"7d"`` -> ``(7, "d")``, refusing anything that is not a window length."""
    match = _WINDOW.fullmatch(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise InvalidInputError(f"window {text!r} must be a positive length such as '30s', "
                                "'30m', '12h', '7d' or '2w'", field=field, value=text)
    count, unit = int(match.group(1)), match.group(2)
    if count * WINDOW_UNITS[unit] > MAX_WINDOW:
        raise InvalidInputError(f"window {text!r} is longer than ten years: pass a shorter "
                                "window, or start= and end=", field=field, value=text)
    return count, unit


def parse_window(text: object, *, field: str = "window") -> timedelta:
    """A window length (``"30m"``, ``"12h"``, ``"7d"``, ``"2w"``) as a ``timedelta``."""
    count, unit = window_parts(text, field=field)
    return count * WINDOW_UNITS[unit]


def utc(when: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)

def shifted(ts: datetime, delta: timedelta, *, field: str = "ts") -> datetime:
    """``ts + delta``, or an InvalidInputError when that leaves years 1-9999."""
    try:
        return ts + delta
    except OverflowError as exc:
        raise InvalidInputError(
            f"{ts_text(ts)} {'+' if delta >= timedelta(0) else '-'} {abs(delta)} is outside "
            "years 1-9999, the times nbregistry can represent: rows dated at the edge of the "
            "calendar (check the logged ts) cannot be put in windows. Pass start/end to leave "
            "them out.", field=field, value=ts_text(ts)) from exc
