"""verify's one pass over the event log, in seq order, holding the fold and what the later
checks need, never the events themselves."""

from __future__ import annotations

import array
import gc
import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from ..domain.canonical import GENESIS_HASH
from ..domain.entities import Event, Problem
from ..domain.timefmt import ts_text
from ..store import EventLog
from ..store.commits import Entry
from . import snapshot
from .chain import EPOCH, link_problem, read_events
from .fold import interpret
from .signing import SignatureCheck
from .state import RegistryState
from .witness import WITNESSED_ACTIONS

CLOCK_TOLERANCE = timedelta(minutes=5)
MICROSECOND = timedelta(microseconds=1)
BATCH = 4096  # events turned into Python objects at a time


class Walk:
    """One pass over the events in seq order, holding the fold and what later checks need
    (never the events themselves). The fold lags LAG events behind the reading, so that the
    ``snapshot`` event vouching for the state at seq N is seen before the fold passes N.
    ``snapshot_at`` is the N to recompute: the one the newest ``snapshot`` event names, which
    only the pass itself finds out (``newest_vouched``), so the caller starts from the
    pointer's hint and walks again when the hint was wrong."""

    LAG = 256

    def __init__(self, trusted_keys: Mapping[str, str | Sequence[str]] | None,
                 expected_head: tuple[int, str] | None, *, keep_hashes: bool,
                 snapshot_at: int | None) -> None:
        self.state, self.folding = RegistryState(lean=True), True
        self.seq, self.head, self.count = 0, GENESIS_HASH, 0
        self.last_ts: datetime | None = None
        self.first_hash: str | None = None
        self.problems: list[Problem] = []
        self.signatures = SignatureCheck(trusted_keys)
        self.seqs, self.micros = array.array("q"), array.array("q")  # for the clock check
        self.expected = expected_head
        self.expected_hash: str | None = None
        self.hashes: dict[int, str] = {}
        self.keep_hashes = keep_hashes
        self.witnessed: dict[int, tuple[str, str]] = {}  # seq -> (action, actor)
        self.alarms: dict[int, int] = {}                  # forged head's seq -> alarm seq
        self.blobs: list[tuple[str, int]] = []
        self.sealed: list[Any] = []
        self.pending: deque[Event] = deque()
        self.snapshot_at = snapshot_at
        self.vouching: Event | None = None
        self.newest_vouched: int | None = None

    def feed(self, event: Event) -> None:
        if event.action == "snapshot":
            vouched = event.payload.get("seq")
            self.newest_vouched = vouched if isinstance(vouched, int) else None
        if (self.snapshot_at is not None and event.action == "snapshot"
                and event.payload.get("seq") == self.snapshot_at):
            if self.snapshot_at <= self.seq:
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
        signed = self.signatures(event)
        if signed is not None:
            self.problems.append(signed)
        if self.keep_hashes:
            self.hashes[event.seq] = event.hash
            if event.action in WITNESSED_ACTIONS:
                self.witnessed[event.seq] = (event.action, event.actor)
            forged = event.payload.get("seq") if event.action == "tamper_alarm" else None
            if isinstance(forged, int):
                self.alarms[forged] = event.seq
        if self.expected is not None and event.seq == self.expected[0]:
            self.expected_hash = event.hash
        if event.action == "register":  # a malformed one is reported by the fold
            reference = event.payload.get("reference")
            named = [event.payload.get("sha256")]
            if isinstance(reference, dict):
                named += [reference.get("sha256"), reference.get("baseline")]
            self.blobs += [(sha, event.seq) for sha in named if isinstance(sha, str)]
        elif event.action == "report" and "template_sha256" in event.payload:
            outputs = event.payload.get("outputs")  # kept in the store since runs record it
            if isinstance(outputs, dict):
                self.blobs += [(sha, event.seq) for sha in outputs.values()
                               if isinstance(sha, str)]
        elif event.action == "set_baseline" and isinstance(event.payload.get("sha256"), str):
            self.blobs.append((event.payload["sha256"], event.seq))
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


def clock_problems(walk: Walk, written: Mapping[int, datetime]) -> list[Problem]:
    """An event dated more than the tolerance away from when the storage wrote it: a writer
    with a wrong clock (or a forged time). A log copied from a backup gets new file times,
    so compare a restored copy against the backup's own metadata."""
    problems = []
    for seq, micros in zip(walk.seqs, walk.micros, strict=True):
        stored = written.get(seq)
        dated = EPOCH + timedelta(microseconds=micros)
        if stored is not None and abs(dated - stored) > CLOCK_TOLERANCE:
            problems.append(Problem("clock", f"event {seq} is dated {ts_text(dated)} but the "
                                    f"storage wrote it at {ts_text(stored)}", seq))
    return problems


def walk_log(log: EventLog, files: dict[str, Entry], walk: Walk, *, progress: bool
             ) -> list[Problem]:
    """Feed every event of ``files`` to ``walk``; the damaged files found on the way."""
    from tqdm.auto import tqdm

    problems: list[Problem] = []
    collecting = gc.isenabled()
    gc.disable()  # the fold holds a large state: full collections made each event dearer
    # Opt-in: a report that verifies must not embed a progress widget.
    try:
        with tqdm(total=sum(e.records or 1 for e in files.values()), disable=not progress,
                  desc="verifying the chain", unit=" events", leave=False) as bar:
            _walk_runs(log, files, walk, problems, bar)
    finally:
        if collecting:
            gc.enable()
    walk.finish()
    return problems


def _walk_runs(log: EventLog, files: dict[str, Entry], walk: Walk, problems: list[Problem],
               bar: Any) -> None:
    for table, missing, rewritten in log.stream(files):
        problems.extend(Problem("missing_file", f"event data file missing or unreadable: "
                                f"{name}") for name in missing)
        problems.extend(Problem("rewritten_file", f"event data file {name} was rewritten "
                                "after its commit (its size differs from the Delta log)")
                        for name in rewritten)
        for start in range(0, table.num_rows, BATCH):  # a merged file holds up to 125,000
            batch = table.slice(start, BATCH)
            events, malformed = read_events(batch)
            problems.extend(malformed)
            if malformed:  # the clock check takes the rows that are events
                walk.seqs.extend(e.seq for e in events)
                walk.micros.extend((e.ts - EPOCH) // MICROSECOND for e in events)
            else:
                walk.seqs.extend(batch.column("seq").to_pylist())
                walk.micros.extend(batch.column("ts").cast(pa.int64()).to_pylist())
            for event in events:
                walk.feed(event)
            bar.update(batch.num_rows)
