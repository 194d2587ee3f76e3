"""The audit-trail check: every link, every gap, every artifact, read fresh from storage."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from ..domain.canonical import GENESIS_HASH
from ..domain.entities import Event, Problem, VerifyReport
from ..domain.timefmt import ts_text
from ..store import EventLog, Location
from ..store.blobs import key_for
from ..store.eventlog import rows
from .fold import apply
from .signing import signature_problems
from .state import RegistryState, event_from_row, link_problem


def verify_log(location: Location, *, artifacts: bool = True,
               expected_head: tuple[int, str] | None = None,
               trusted_keys: Mapping[str, str | Sequence[str]] | None = None) -> VerifyReport:
    log = EventLog(location)
    if not log.exists():
        absent = Problem("missing", f"no event log at {log.uri}")
        return VerifyReport(False, 0, 0, 0, GENESIS_HASH, (absent,))
    log.open()
    table, missing, rewritten = log.read_each_file()
    problems = [Problem("missing_file", f"event data file missing or unreadable: {name}")
                for name in missing]
    problems += [Problem("rewritten_file", f"event data file {name} was rewritten after its "
                         "commit (its size differs from the Delta log)") for name in rewritten]
    events = [event_from_row(r) for r in rows(table)]
    seq, head = 0, GENESIS_HASH
    state, folding = RegistryState(), True
    last_ts: datetime | None = None
    for event in events:
        broken = link_problem(event, seq, head)
        if broken is not None:
            problems.append(broken)
            folding = False  # the state after a break means nothing
        elif folding:
            apply(state, event)
        if last_ts is not None and event.ts < last_ts:
            problems.append(Problem("clock", f"event {event.seq} is dated {ts_text(event.ts)}, "
                                    f"before the event preceding it ({ts_text(last_ts)}): "
                                    "backdated", event.seq))
        seq, head, last_ts = event.seq, event.hash, max(event.ts, last_ts or event.ts)
    problems += state.skipped
    if expected_head is not None and expected_head[0] > seq:
        problems.append(Problem("truncated", f"the log ends at seq {seq} but seq "
                                f"{expected_head[0]} ({expected_head[1][:12]}…) was seen"))
    elif expected_head is not None and not any(
            e.seq == expected_head[0] and e.hash == expected_head[1] for e in events):
        problems.append(Problem("head", f"event {expected_head[0]} no longer has the hash "
                                f"{expected_head[1][:12]}… recorded earlier"))
    problems += signature_problems(events, trusted_keys=trusted_keys)
    checked = 0
    if artifacts:
        for sha, event_seq in _artifacts(events):
            checked += 1
            damaged = _check_blob(location, sha, event_seq)
            if damaged is not None:
                problems.append(damaged)
    return VerifyReport(not problems, len(events), checked, seq, head, tuple(problems),
                        tuple(state.notices))


def _artifacts(events: list[Event]) -> list[tuple[str, int]]:
    out = []
    for event in events:
        if event.action == "register":
            out.append((event.payload["sha256"], event.seq))
            if event.payload.get("reference"):
                out.append((event.payload["reference"]["sha256"], event.seq))
    return out


def _check_blob(location: Location, sha: str, seq: int) -> Problem | None:
    try:
        data = location.read_bytes(key_for(sha))
    except FileNotFoundError:
        return Problem("artifact_missing", f"artifact {sha[:12]}… named by event {seq} is "
                       "missing", seq)
    if hashlib.sha256(data).hexdigest() != sha:
        return Problem("artifact_modified", f"artifact {sha[:12]}… named by event {seq} was "
                       "modified", seq)
    return None
