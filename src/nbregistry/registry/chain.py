"""The hash chain: building the next event, reading one back, checking a link."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

import pyarrow as pa

from ..domain import validate
from ..domain.canonical import canonical_json, event_hash
from ..domain.entities import Event, Problem
from ..domain.errors import IntegrityError, InvalidInputError
from ..domain.events import check_payload
from ..domain.timefmt import ts_text
from . import signing
from .state import RegistryState


def make_event(state: RegistryState, actor: str, action: str, model: str | None,
               version: int | None, payload: dict[str, Any], *, signer: Any = None) -> Event:
    check_payload(action, payload)
    ts = datetime.now(UTC)
    if state.last_ts is not None and ts < state.last_ts:
        ts = state.last_ts  # keep the log's time non-decreasing across clock skew
    seq, event_id = state.seq + 1, uuid.uuid4().hex
    if signer is not None:
        data = signing.message(prev_hash=state.head_hash, seq=seq, event_id=event_id,
                               ts=ts_text(ts), actor=actor, action=action, model=model,
                               version=version, payload=payload)
        signature, fingerprint = signing.sign(signer, data)
        payload = {**payload, "signature": signature, "key_fingerprint": fingerprint}
    payload_json = canonical_json(payload)
    if len(payload_json) > validate.MAX_PAYLOAD_BYTES:
        raise InvalidInputError(f"the {action} event would be {len(payload_json):,} bytes, "
                                f"over the {validate.MAX_PAYLOAD_BYTES:,}-byte limit for one "
                                "event: keep large things in artifacts", field="payload")
    digest = event_hash(state.head_hash, seq, event_id, ts_text(ts), actor, action, model,
                        version, payload_json)
    return Event(seq=seq, event_id=event_id, ts=ts, actor=actor, action=action, model=model,
                 version=version, payload=payload, payload_json=payload_json,
                 prev_hash=state.head_hash, hash=digest)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ("seq", "event_id", "actor", "action", "model", "version", "payload", "prev_hash",
            "hash")


_REQUIRED = ("seq", "event_id", "ts", "actor", "action", "payload", "prev_hash", "hash")


def events_from_table(table: pa.Table) -> list[Event]:
    """Events sorted by seq; a row that cannot be an event raises IntegrityError (opening
    refuses a damaged log; ``verify()`` uses :func:`read_events` to report each one)."""
    events, problems = read_events(table)
    if problems:
        raise IntegrityError(f"the event log holds rows that are not events ("
                             f"{problems[0].message}{' …' if len(problems) > 1 else ''}). "
                             "Run `nbregistry verify` for a full report and restore the log "
                             "from backup.", problems=[p.message for p in problems])
    return events


def read_events(table: pa.Table) -> tuple[list[Event], list[Problem]]:
    """(the rows that are events, sorted by seq; a ``malformed`` problem per row that is not:
    a missing value, a time outside years 1-9999, a payload that is not a JSON object). The
    whole table is converted at once; row by row only to find the bad ones."""
    try:
        if not any(table[name].null_count for name in _REQUIRED):
            events = _events(table)
            if all(type(e.payload) is dict for e in events):
                return events, []
    except (OverflowError, ValueError, TypeError):
        pass
    good: list[Event] = []
    problems: list[Problem] = []
    for i in range(table.num_rows):
        row = table.slice(i, 1)
        seq = row["seq"][0].as_py()
        try:
            missing = [name for name in _REQUIRED if row[name].null_count]
            if missing:
                raise ValueError(f"no {', '.join(missing)}")
            event = _events(row)[0]
            if type(event.payload) is not dict:
                raise ValueError("its payload is not a JSON object")
        except (OverflowError, ValueError, TypeError) as exc:
            reason = "its time is outside years 1-9999" if isinstance(exc, OverflowError) \
                else str(exc).splitlines()[0]
            problems.append(Problem("malformed", f"the event row with seq {seq} cannot be read "
                                    f"({reason})", seq if isinstance(seq, int) else None))
            continue
        good.append(event)
    good.sort(key=lambda e: e.seq)
    return good, problems


def _events(table: pa.Table) -> list[Event]:
    """Column by column, with times from integer microseconds: pyarrow's own conversion of
    zoned timestamps imports pandas (0.4 s of every open), and sorted here rather than by
    pyarrow.compute (a tenth of an open to import; the rows nearly always come in order,
    which Python's sort takes in one pass)."""
    if table.num_rows == 0:
        return []
    c = {name: table[name].to_pylist() for name in _COLUMNS}
    micros = [us for chunk in table["ts"].chunks for us in chunk.view(pa.int64()).to_pylist()]
    rows = sorted(zip(c["seq"], c["event_id"], micros, c["actor"], c["action"], c["model"],
                      c["version"], c["payload"], c["prev_hash"], c["hash"], strict=True),
                  key=itemgetter(0))
    loads = json.loads
    return [Event(seq, eid, EPOCH + timedelta(microseconds=us), actor, action, model, version,
                  loads(payload), payload, prev, digest)
            for seq, eid, us, actor, action, model, version, payload, prev, digest in rows]


def link_problem(event: Event, seq: int, head_hash: str) -> Problem | None:
    """Why ``event`` cannot follow a log whose head is (seq, head_hash), or None."""
    if event.seq != seq + 1:
        kind = "duplicate" if event.seq <= seq else "gap"
        return Problem(kind, f"expected event seq {seq + 1}, found {event.seq}", event.seq)
    if event.prev_hash != head_hash:
        return Problem("chain", f"event {event.seq} does not link to the previous hash",
                       event.seq)
    expected = event_hash(event.prev_hash, event.seq, event.event_id, ts_text(event.ts),
                          event.actor, event.action, event.model, event.version,
                          event.payload_json)
    if expected != event.hash:
        return Problem("hash", f"event {event.seq} ({event.action} by {event.actor}) was "
                       "altered: its content no longer matches its hash", event.seq)
    return None
