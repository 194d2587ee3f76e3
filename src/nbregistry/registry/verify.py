"""The audit-trail check, read fresh from storage: each check says what passing it proves."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..domain.canonical import GENESIS_HASH
from ..domain.entities import Check, Problem, VerifyReport
from ..domain.errors import ForkedProcessError, NbRegistryError
from ..store import EventLog, Location, check_seals
from ..store.blobs import key_for
from ..store.commits import Entry
from ..store.eventlog import TABLE
from ..store.replay import Replay, elsewhere
from . import snapshot
from . import witness as witnesses
from .walk import Walk, clock_problems, walk_log

# Commits from which the replay runs in a child process: below, starting one costs more than
# it saves (0.4 s of imports; the replay itself costs about 40 µs a commit here).
PARALLEL_FROM = 20_000
# What each check proves when it passes, in an auditor's terms (docs/design.md repeats it).
PROVES = {
    "chain": "no event was altered, reordered, dropped or inserted unless every later hash "
             "was recomputed too (anyone who can write the registry can do that; the "
             "witness, a recorded head or signatures close the gap)",
    "events": "every event is well-formed and names what exists",
    "artifacts": "every model, reference, baseline and report-output blob an event names "
                 "is present and unmodified",
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
    "seals": "every monitoring row sealed in the audit log (predictions, outcomes, metric "
             "windows) is still there unchanged: the sealed commits and file lists are intact, "
             "each sealed data file still has the sha256 sealed for it (seals written before "
             "content hashing: the same size and row count only), nothing removed sealed "
             "rows, and every later compaction wrote exactly the rows it replaced, partition "
             "by partition. Rows appended after the newest seal are not covered yet",
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
    evidence, files, unreadable = _evidence(log)

    def walk_files(chosen: dict[str, Entry], at: int | None) -> tuple[Walk, list[Problem]]:
        walk = Walk(trusted_keys, expected_head, keep_hashes=witness is not None,
                    snapshot_at=at)
        problems = walk_log(log, chosen, walk, progress=progress)
        if walk.newest_vouched != at:  # the pointer was behind (or lied): walk again
            return walk_files(chosen, walk.newest_vouched)
        return walk, problems

    hint = snapshot.pointed_seq(location)
    walk, problems = walk_files(files, hint)
    commits = evidence()  # the JSON commits themselves, not the checkpoints derived from them
    if commits.files != files:  # the checkpoint disagrees with them: the evidence wins
        walk, problems = walk_files(commits.files, walk.snapshot_at)
    problems = [Problem("missing_commit", f"Delta log commit {v} is missing: the events "
                        "it held may be lost") for v in commits.missing] + problems
    problems += [Problem("missing_commit", f"Delta log commit {v} is unreadable")
                 for v in commits.unreadable]
    problems += walk.problems + walk.state.skipped + clock_problems(walk, commits.written)
    if walk.snapshot_at is not None and walk.snapshot_at > walk.seq:
        problems.append(Problem("snapshot", f"the newest snapshot event vouches for seq "
                                f"{walk.snapshot_at}, beyond the end of the log ({walk.seq})"))
    run = {"chain", "events", "signatures", "clock", "checkpoints"}
    notices: list[Problem] = []
    if expected_head is not None:
        run.add("expected_head")
        problems += _head_problems(walk.seq, expected_head, walk.expected_hash)
    if trusted_keys:
        run.add("pinned_keys")
    problems += _checkpoint_problems(unreadable)
    if walk.sealed:
        run.add("seals")
        problems += _seal_problems(location, walk.sealed)
    if witness is not None and walk.first_hash is not None:
        run.add("witness")
        problems += witnesses.check(witness, walk.first_hash, walk.hashes, walk.alarms)
        notices += witnesses.unwitnessed(witness, walk.first_hash, walk.witnessed)
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
                        tuple(problems), (*walk.state.notices, *notices), checks)


def _evidence(log: EventLog) -> tuple[Callable[[], Replay], dict[str, Entry], str | None]:
    """(a function returning the replay of every JSON commit, the files to read meanwhile,
    why the checkpoint cannot be read or None). A long log is replayed in a child process on
    the other core while this one reads the files the checkpoint names; the two must agree,
    or the files are read again."""
    try:
        quick = log.snapshot()
    except ForkedProcessError:
        raise
    except Exception as exc:  # derived data: report it, replay the evidence instead
        found = log.replay()
        return (lambda: found), found.files, (str(exc).splitlines() or [type(exc).__name__])[0]
    if quick.version >= PARALLEL_FROM:
        return elsewhere(log.location, TABLE, until=quick.version), quick.files, None
    found = log.replay(until=quick.version)
    return (lambda: found), found.files, None


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


def _checkpoint_problems(unreadable: str | None) -> list[Problem]:
    """Checkpoints are derived data; a damaged one does not lose events but stops fast
    opening (the registry then opens from the JSON commits)."""
    if unreadable is None:
        return []
    return [Problem("checkpoint", f"the event log's checkpoint cannot be read ({unreadable}): "
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
