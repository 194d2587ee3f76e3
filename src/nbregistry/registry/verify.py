"""The audit-trail check, read fresh from storage: each check says what passing it proves."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..domain.canonical import GENESIS_HASH
from ..domain.entities import Check, Event, Problem, VerifyReport
from ..domain.errors import NbRegistryError
from ..domain.timefmt import ts_text
from ..store import EventLog, Location, check_seals
from ..store.blobs import key_for
from . import snapshot
from . import witness as witnesses
from .chain import events_from_table, link_problem
from .fold import apply
from .signing import signature_problems
from .state import RegistryState

CLOCK_TOLERANCE = timedelta(minutes=5)
# What each check proves when it passes, in an auditor's terms (docs/design.md repeats it).
PROVES = {
    "chain": "no event was altered, reordered, dropped or inserted unless every later hash "
             "was recomputed too (anyone who can write the registry can do that; the "
             "witness, a recorded head or signatures close the gap)",
    "events": "every event is well-formed and names what exists",
    "artifacts": "every model and reference blob an event names is present and unmodified",
    "signatures": "events by users with an enrolled key were signed with that key (keys as "
                  "the log enrols them)",
    "pinned_keys": "those signatures were made with keys pinned outside the registry, so a "
                   "rewritten log cannot swap keys",
    "expected_head": "the log still holds the head recorded elsewhere: nothing before it was "
                     "cut or rewritten",
    "witness": "the log still holds every head published to the witness: nothing before the "
               "last published head was cut or rewritten",
    "checkpoints": "the log's checkpoints (derived data, not evidence) are readable, so "
                   "the registry opens fast",
    "seals": "monitoring data sealed in the audit log (predictions, outcomes, metric windows) "
             "was not deleted or rewritten afterwards, even by someone who turned "
             "appendOnly off",
    "clock": "event times agree with the storage's own clock (within 5 minutes) and never "
             "go backwards",
}
KINDS = {"missing_file": "chain", "missing_commit": "chain", "checkpoint": "checkpoints",
         "rewritten_file": "chain", "gap": "chain",
         "duplicate": "chain", "hash": "chain", "malformed": "events",
         "artifact_missing": "artifacts", "artifact_modified": "artifacts",
         "signature": "signatures", "pinned_key": "pinned_keys", "head": "expected_head",
         "clock": "clock", "truncated": "expected_head", "seal": "seals",
         "snapshot": "events"}


def verify_log(location: Location, *, artifacts: bool = True,
               expected_head: tuple[int, str] | None = None,
               trusted_keys: Mapping[str, str | Sequence[str]] | None = None,
               witness: Location | None = None, progress: bool = False) -> VerifyReport:
    log = EventLog(location)
    if not log.exists():
        absent = Problem("missing", f"no event log at {log.uri}")
        return VerifyReport(False, 0, 0, 0, GENESIS_HASH, (absent,))
    commits = log.replay()  # the evidence itself, not the checkpoints derived from it
    table, missing, rewritten = log.read_each_file(commits.files)
    problems = [Problem("missing_commit", f"Delta log commit {v} is missing: the events "
                        "it held may be lost") for v in commits.missing]
    problems += [Problem("missing_commit", f"Delta log commit {v} is unreadable")
                 for v in commits.unreadable]
    problems += [Problem("missing_file", f"event data file missing or unreadable: {name}")
                 for name in missing]
    problems += [Problem("rewritten_file", f"event data file {name} was rewritten after its "
                         "commit (its size differs from the Delta log)") for name in rewritten]
    events = events_from_table(table)
    state, chain_problems = _fold_checked(events, progress=progress)
    problems += chain_problems + state.skipped
    seq, head = (events[-1].seq, events[-1].hash) if events else (0, GENESIS_HASH)
    run = {"chain", "events", "signatures", "clock", "checkpoints"}
    if expected_head is not None:
        run.add("expected_head")
        problems += _head_problems(events, seq, expected_head)
    problems += signature_problems(events, trusted_keys=trusted_keys)
    if trusted_keys:
        run.add("pinned_keys")
    problems += _clock_problems(events, commits.written)
    problems += _checkpoint_problems(log)
    sealed = [seal for e in events if e.action == "seal"
              and isinstance(e.payload.get("tables"), dict)
              for seal in e.payload["tables"].values()]
    if sealed:
        run.add("seals")
        problems += _seal_problems(location, sealed)
    if witness is not None and events:
        run.add("witness")
        problems += witnesses.check(witness, events[0].hash, {e.seq: e.hash for e in events})
    checked = 0
    if artifacts:
        run.add("artifacts")
        for sha, event_seq in _artifacts(events):
            checked += 1
            damaged = _check_blob(location, sha, event_seq)
            if damaged is not None:
                problems.append(damaged)
    failed = {KINDS.get(p.kind, p.kind) for p in problems}
    checks = tuple(Check(name, name not in failed, PROVES[name]) for name in PROVES
                   if name in run)
    return VerifyReport(not problems, len(events), checked, seq, head, tuple(problems),
                        tuple(state.notices), checks)


def _fold_checked(events: list[Event], *, progress: bool = False
                  ) -> tuple[RegistryState, list[Problem]]:
    """Fold as far as the chain holds (a state after a break means nothing); report every
    broken link, every backdated event, and every state snapshot that is not the fold."""
    seq, head = 0, GENESIS_HASH
    state, folding, problems = RegistryState(), True, []
    last_ts: datetime | None = None
    from tqdm.auto import tqdm

    snapshots = {e.payload.get("seq"): e for e in events if e.action == "snapshot"}
    # Opt-in: a report that verifies must not embed a progress widget.
    for event in tqdm(events, desc="verifying the chain", unit=" events",
                      disable=not progress, leave=False):
        broken = link_problem(event, seq, head)
        if broken is not None:
            problems.append(broken)
            folding = False
        elif folding:
            apply(state, event)
            if event.seq in snapshots:
                problems += _snapshot_problems(state, snapshots[event.seq])
        if last_ts is not None and event.ts < last_ts:
            problems.append(Problem("clock", f"event {event.seq} is dated {ts_text(event.ts)}, "
                                    f"before the event preceding it ({ts_text(last_ts)}): "
                                    "backdated", event.seq))
        seq, head, last_ts = event.seq, event.hash, max(event.ts, last_ts or event.ts)
    return state, problems


def _snapshot_problems(state: RegistryState, vouching: Event) -> list[Problem]:
    """The snapshot recorded at this seq must be exactly this fold (opening trusts it)."""
    text = snapshot.dump(state)
    if hashlib.sha256(text.encode()).hexdigest() != vouching.payload.get("state_sha256"):
        return [Problem("snapshot", f"the state snapshot vouched for by event {vouching.seq} "
                        f"is not the fold of events 1..{state.seq}: opening from it would "
                        "show a different registry", vouching.seq)]
    return []


def _head_problems(events: list[Event], seq: int, expected: tuple[int, str]) -> list[Problem]:
    if expected[0] > seq:
        return [Problem("truncated", f"the log ends at seq {seq} but seq {expected[0]} "
                        f"({expected[1][:12]}…) was seen")]
    if not any(e.seq == expected[0] and e.hash == expected[1] for e in events):
        return [Problem("head", f"event {expected[0]} no longer has the hash "
                        f"{expected[1][:12]}… recorded earlier")]
    return []


def _clock_problems(events: list[Event], written: Mapping[int, datetime]) -> list[Problem]:
    """An event dated more than the tolerance away from when the storage wrote it: a writer
    with a wrong clock (or a forged time). A log copied from a backup gets new file times,
    so compare a restored copy against the backup's own metadata."""
    problems = []
    for event in events:
        stored = written.get(event.seq)
        if stored is not None and abs(event.ts - stored) > CLOCK_TOLERANCE:
            problems.append(Problem("clock", f"event {event.seq} ({event.action} by "
                                    f"{event.actor}) is dated {ts_text(event.ts)} but the "
                                    f"storage wrote it at {ts_text(stored)}", event.seq))
    return problems


def _seal_problems(location: Location, sealed: list[Any]) -> list[Problem]:
    try:
        return [Problem("seal", text) for text in check_seals(location, sealed)]
    except NbRegistryError as exc:
        return [Problem("seal", f"the monitoring seals could not be checked: {exc}")]


def _checkpoint_problems(log: EventLog) -> list[Problem]:
    """Checkpoints are derived data; a damaged one does not lose events but stops fast
    opening (the registry then opens from the JSON commits)."""
    try:
        log.open()
    except NbRegistryError as exc:
        return [Problem("checkpoint", f"the event log cannot be opened: {exc}")]
    if log.opened_from_commits:
        return [Problem("checkpoint", "deltalake cannot open the event log (a damaged "
                        "checkpoint?): delete the damaged *.checkpoint.parquet and "
                        "_delta_log/_last_checkpoint; they are derived data")]
    return []


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
