"""The audit-trail check, read fresh from storage: each check says what passing it proves."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow.compute as pc

from ..domain.canonical import GENESIS_HASH
from ..domain.entities import Check, Event, Problem, VerifyReport
from ..domain.errors import NbRegistryError
from ..domain.timefmt import ts_text
from ..store import EventLog, Location, check_seals
from ..store.blobs import key_for
from ..store.commits import Entry
from . import snapshot
from . import witness as witnesses
from .chain import events_from_table, link_problem
from .fold import interpret
from .signing import SignatureCheck
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
    problems = [Problem("missing_commit", f"Delta log commit {v} is missing: the events "
                        "it held may be lost") for v in commits.missing]
    problems += [Problem("missing_commit", f"Delta log commit {v} is unreadable")
                 for v in commits.unreadable]
    walk = _Walk(commits.written, trusted_keys, expected_head, keep_hashes=witness is not None,
                 snapshot_at=_trusted_snapshot(log, commits.files))
    from tqdm.auto import tqdm

    # Opt-in: a report that verifies must not embed a progress widget.
    with tqdm(total=sum(e.records or 1 for e in commits.files.values()), disable=not progress,
              desc="verifying the chain", unit=" events", leave=False) as bar:
        for table, missing, rewritten in log.stream(commits.files):
            problems += [Problem("missing_file", f"event data file missing or unreadable: "
                                 f"{name}") for name in missing]
            problems += [Problem("rewritten_file", f"event data file {name} was rewritten "
                                 "after its commit (its size differs from the Delta log)")
                         for name in rewritten]
            for event in events_from_table(table):
                walk.feed(event)
            bar.update(table.num_rows)
    walk.finish()
    problems += walk.problems + walk.state.skipped
    run = {"chain", "events", "signatures", "clock", "checkpoints"}
    if expected_head is not None:
        run.add("expected_head")
        problems += _head_problems(walk.seq, expected_head, walk.expected_hash)
    if trusted_keys:
        run.add("pinned_keys")
    problems += _checkpoint_problems(log)
    if walk.sealed:
        run.add("seals")
        problems += _seal_problems(location, walk.sealed)
    if witness is not None and walk.first_hash is not None:
        run.add("witness")
        problems += witnesses.check(witness, walk.first_hash, walk.hashes)
    checked = 0
    if artifacts:
        run.add("artifacts")
        for sha, event_seq in walk.blobs:
            checked += 1
            damaged = _check_blob(location, sha, event_seq)
            if damaged is not None:
                problems.append(damaged)
    failed = {KINDS.get(p.kind, p.kind) for p in problems}
    checks = tuple(Check(name, name not in failed, PROVES[name]) for name in PROVES
                   if name in run)
    return VerifyReport(not problems, walk.count, checked, walk.seq, walk.head,
                        tuple(problems), tuple(walk.state.notices), checks)


def _trusted_snapshot(log: EventLog, files: dict[str, Entry]) -> int | None:
    """The seq whose state the newest ``snapshot`` event vouches for: the one snapshot
    opening trusts, so the one verify recomputes (a light pass over three columns)."""
    newest: tuple[int, Any] | None = None
    for table, _, _ in log.stream(files, columns=["seq", "action", "payload"]):
        rows = table.filter(pc.equal(table.column("action"), "snapshot"))
        if rows.num_rows:
            newest = (rows.column("seq")[-1].as_py(), rows.column("payload")[-1].as_py())
    if newest is None:
        return None
    try:
        vouched = json.loads(newest[1]).get("seq")
    except (ValueError, AttributeError):
        return None  # a malformed event: the fold reports it
    return vouched if isinstance(vouched, int) else None


class _Walk:
    """One pass over the events in seq order, holding the fold and what later checks need
    (never the events themselves). The fold lags LAG events behind the reading, so that the
    ``snapshot`` event vouching for the state at seq N is seen before the fold passes N."""

    LAG = 256

    def __init__(self, written: Mapping[int, datetime],
                 trusted_keys: Mapping[str, str | Sequence[str]] | None,
                 expected_head: tuple[int, str] | None, *, keep_hashes: bool,
                 snapshot_at: int | None) -> None:
        self.state, self.folding = RegistryState(keep_events=False), True
        self.seq, self.head, self.count = 0, GENESIS_HASH, 0
        self.last_ts: datetime | None = None
        self.first_hash: str | None = None
        self.problems: list[Problem] = []
        self.signatures = SignatureCheck(trusted_keys)
        self.written = written
        self.expected = expected_head
        self.expected_hash: str | None = None
        self.hashes: dict[int, str] = {}
        self.keep_hashes = keep_hashes
        self.blobs: list[tuple[str, int]] = []
        self.sealed: list[Any] = []
        self.pending: deque[Event] = deque()
        self.snapshot_at = snapshot_at
        self.vouching: Event | None = None

    def feed(self, event: Event) -> None:
        if event.action == "snapshot" and event.payload.get("seq") == self.snapshot_at:
            if self.snapshot_at is not None and self.snapshot_at <= self.seq:
                self.problems.append(Problem("snapshot", f"the state snapshot vouched for by "
                                             f"event {event.seq} describes seq "
                                             f"{self.snapshot_at}, more than {self.LAG} "
                                             "events earlier: it cannot be checked",
                                             event.seq))
            self.vouching = event  # the newest one for that seq wins
        self.pending.append(event)
        if len(self.pending) > self.LAG:
            self._step(self.pending.popleft())

    def finish(self) -> None:
        while self.pending:
            self._step(self.pending.popleft())

    def _step(self, event: Event) -> None:
        broken = link_problem(event, self.seq, self.head)
        if broken is not None:
            self.problems.append(broken)
            self.folding = False  # a state after a break means nothing
        elif self.folding:
            interpret(self.state, event)
            if event.seq == self.snapshot_at and self.vouching is not None:
                self.problems += _snapshot_problems(self.state, self.vouching)
        self._check(event)
        self.count += 1
        self.first_hash = self.first_hash or event.hash
        self.seq, self.head = event.seq, event.hash
        self.last_ts = max(event.ts, self.last_ts or event.ts)

    def _check(self, event: Event) -> None:
        if self.last_ts is not None and event.ts < self.last_ts:
            self.problems.append(Problem("clock", f"event {event.seq} is dated "
                                         f"{ts_text(event.ts)}, before the event preceding "
                                         f"it ({ts_text(self.last_ts)}): backdated", event.seq))
        stored = self.written.get(event.seq)
        if stored is not None and abs(event.ts - stored) > CLOCK_TOLERANCE:
            self.problems.append(Problem("clock", f"event {event.seq} ({event.action} by "
                                         f"{event.actor}) is dated {ts_text(event.ts)} but "
                                         f"the storage wrote it at {ts_text(stored)}",
                                         event.seq))
        signed = self.signatures(event)
        if signed is not None:
            self.problems.append(signed)
        if self.keep_hashes:
            self.hashes[event.seq] = event.hash
        if self.expected is not None and event.seq == self.expected[0]:
            self.expected_hash = event.hash
        if event.action == "register":
            self.blobs.append((event.payload["sha256"], event.seq))
            if event.payload.get("reference"):
                self.blobs.append((event.payload["reference"]["sha256"], event.seq))
        elif event.action == "seal" and isinstance(event.payload.get("tables"), dict):
            self.sealed += event.payload["tables"].values()


def _snapshot_problems(state: RegistryState, vouching: Event) -> list[Problem]:
    """The snapshot recorded at this seq must be exactly this fold (opening trusts it)."""
    text = snapshot.dump(state)
    if hashlib.sha256(text.encode()).hexdigest() != vouching.payload.get("state_sha256"):
        return [Problem("snapshot", f"the state snapshot vouched for by event {vouching.seq} "
                        f"is not the fold of events 1..{state.seq}: opening from it would "
                        "show a different registry", vouching.seq)]
    return []


def _head_problems(seq: int, expected: tuple[int, str], found: str | None) -> list[Problem]:
    if expected[0] > seq:
        return [Problem("truncated", f"the log ends at seq {seq} but seq {expected[0]} "
                        f"({expected[1][:12]}…) was seen")]
    if found != expected[1]:
        return [Problem("head", f"event {expected[0]} no longer has the hash "
                        f"{expected[1][:12]}… recorded earlier")]
    return []


def _seal_problems(location: Location, sealed: list[Any]) -> list[Problem]:
    try:
        return [Problem("seal", text) for text in check_seals(location, sealed)]
    except NbRegistryError as exc:
        return [Problem("seal", f"the monitoring seals could not be checked: {exc}")]


def _checkpoint_problems(log: EventLog) -> list[Problem]:
    """Checkpoints are derived data; a damaged one does not lose events but stops fast
    opening (the registry then opens from the JSON commits)."""
    why = log.checkpoint_problem()
    if why is None:
        return []
    return [Problem("checkpoint", f"the event log's checkpoint cannot be read ({why}): "
                    "delete the damaged *.checkpoint.parquet and _delta_log/_last_checkpoint; "
                    "they are derived data")]


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
