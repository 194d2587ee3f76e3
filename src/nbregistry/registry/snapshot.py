"""State snapshots: the folded state at seq N, so opening reads it and folds only the events
after N instead of the whole log.

A snapshot is canonical JSON (compressed into a content-addressed blob) of everything the
fold produced except the version records themselves: for those it keeps each version's
register-event seq (records are read from the log when first used). Its hashes are recorded
in the chain by a ``snapshot`` event, which is what authenticates it: opening uses only the
snapshot the newest ``snapshot`` event vouches for (an edited, swapped, planted or older
one is refused or passed over), and ``verify()`` re-folds the whole chain and recomputes
that snapshot from the fold (recomputing every one would cost the square of the log).
``_registry/snapshot.json`` only points at the newest one; it is a hint, never trusted.

A second handle opened in a process that already holds the registry copies that handle's
state instead of reading storage again (see "in-process copies" below).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
import zlib
from dataclasses import dataclass
from typing import Any

from ..domain.canonical import canonical_json
from ..domain.entities import (
    Approval,
    Event,
    GateResult,
    ModelVersion,
    Problem,
    PromotionRequest,
)
from ..domain.errors import NbRegistryError
from ..domain.policy import parse_policy
from ..domain.timefmt import parse_time, ts_text
from ..store import BlobStore, EventLog, Location
from .chain import events_from_table
from .fold import fold
from .state import Loader, ModelState, RegistryState, Versions

FORMAT = 1
SNAPSHOT_EVERY = 1000
POINTER = "_registry/snapshot.json"
log_ = logging.getLogger("nbregistry")


def dump(state: RegistryState) -> str:
    """The state as canonical JSON (deterministic: a fold and a snapshot-plus-tail give the
    same text at the same seq)."""
    return canonical_json({
        "format": FORMAT, "seq": state.seq, "head_hash": state.head_hash,
        "registry_id": state.registry_id, "creator": state.creator, "event_format": state.format,
        "last_ts": None if state.last_ts is None else ts_text(state.last_ts),
        "roles": {u: sorted(r) for u, r in state.roles.items() if r},
        "policy": state.policy.source,
        "requests": [_request(r) for r in state.requests.values()],
        "keys": {u: [list(k) for k in keys] for u, keys in state.keys.items()},
        "flagged": [[uri, v, why] for (uri, v), why in state.flagged_data.items()],
        "reports": [[m, v, t, run] for (m, v), runs in state.reports.items()
                    for t, run in runs.items()],
        "baselines": [[m, v, b] for (m, v), b in state.baselines.items()],
        "seals": {t: [seq, seal] for t, (seq, seal) in state.seals.items()},
        "deployments": [_event(e) for e in state.deployments],
        "alerts": [_event(e) for e in state.alerts],
        "checks": {m: _event(e) for m, e in state.checks.items()},
        "snapshots": [_event(e) for e in state.snapshots],
        "notices": [[p.kind, p.message, p.seq] for p in state.notices],
        "skipped": [[p.kind, p.message, p.seq] for p in state.skipped],
        "models": {name: _model(m) for name, m in state.models.items()},
    })


def pack(text: str) -> tuple[bytes, str]:
    """(blob bytes, sha256 of the canonical text)."""
    return zlib.compress(text.encode(), 6), hashlib.sha256(text.encode()).hexdigest()


def unpack(blob: bytes) -> str:
    return zlib.decompress(blob).decode()


def load(text: str, loader: Loader) -> RegistryState:
    doc = json.loads(text)
    state = RegistryState(seq=doc["seq"], head_hash=doc["head_hash"], base_seq=doc["seq"],
                          registry_id=doc["registry_id"], creator=doc["creator"],
                          format=doc["event_format"], loader=loader,
                          last_ts=None if doc["last_ts"] is None else parse_time(doc["last_ts"]))
    state.roles = {u: set(r) for u, r in doc["roles"].items()}
    state.policy = parse_policy(doc["policy"], strict=False)
    state.requests = {r["request_id"]: _unrequest(r) for r in doc["requests"]}
    state.keys = {u: [(seq, pem) for seq, pem in keys] for u, keys in doc["keys"].items()}
    state.flagged_data = {(uri, v): why for uri, v, why in doc["flagged"]}
    for m, v, t, run in doc["reports"]:
        state.reports.setdefault((m, v), {})[t] = run
    state.baselines = {(m, v): b for m, v, b in doc["baselines"]}
    state.seals = {t: (seq, seal) for t, (seq, seal) in doc["seals"].items()}
    state.deployments = [_unevent(e) for e in doc["deployments"]]
    state.alerts = [_unevent(e) for e in doc["alerts"]]
    state.checks = {m: _unevent(e) for m, e in doc["checks"].items()}
    state.snapshots = [_unevent(e) for e in doc["snapshots"]]
    state.notices = [Problem(k, msg, seq) for k, msg, seq in doc["notices"]]
    state.skipped = [Problem(k, msg, seq) for k, msg, seq in doc["skipped"]]
    state.models = {name: _unmodel(name, m, loader) for name, m in doc["models"].items()}
    return state


def _model(m: ModelState) -> dict[str, Any]:
    by_stage: dict[str, list[int]] = {}
    for version, stage in m.stage_of.items():
        by_stage.setdefault(stage, []).append(version)
    return {"created_at": ts_text(m.created_at), "created_by": m.created_by,
            "latest": m.latest, "seqs": [[v, s] for v, s in m.versions.seqs.items()],
            "cards": {str(v): c for v, c in m.versions.cards.items()},
            "aliases": m.aliases, "stages": by_stage,
            "status": {str(v): s for v, s in m.status_of.items() if s},
            "stacks": m.stage_stack}


def _unmodel(name: str, doc: dict[str, Any], loader: Loader) -> ModelState:
    versions = Versions(name, loader)
    versions.seqs = {v: s for v, s in doc["seqs"]}
    versions.cards = {int(v): c for v, c in doc["cards"].items()}
    model = ModelState(name, parse_time(doc["created_at"]), doc["created_by"], versions,
                       doc["latest"])
    for stage, numbers in doc["stages"].items():
        for number in numbers:
            model.stage_of[number] = stage
    model.stage_of = dict(sorted(model.stage_of.items()))
    model.status_of = {int(v): s for v, s in doc["status"].items()}
    model.stage_stack = {stage: list(stack) for stage, stack in doc["stacks"].items()}
    for alias, number in doc["aliases"].items():
        model.set_alias(alias, number)
    return model


def _request(r: PromotionRequest) -> dict[str, Any]:
    def who(a: Approval) -> list[Any]:
        return [a.user, ts_text(a.at), a.comment, a.signed]

    return {"request_id": r.request_id, "model": r.model, "version": r.version, "to": r.to,
            "from": r.from_stage, "by": r.requested_by, "at": ts_text(r.requested_at),
            "comment": r.comment, "emergency": r.emergency, "status": r.status,
            "approvals": [who(a) for a in r.approvals],
            "rejections": [who(a) for a in r.rejections], "replaces": r.replaces,
            "required": r.required,
            "gates": [[g.gate, g.passed, g.detail, g.evidence] for g in r.gates],
            "closed_at": None if r.closed_at is None else ts_text(r.closed_at),
            "ratified": r.ratified}


def _unrequest(d: dict[str, Any]) -> PromotionRequest:
    def who(a: list[Any]) -> Approval:
        return Approval(a[0], parse_time(a[1]), a[2], a[3])

    return PromotionRequest(
        d["request_id"], d["model"], d["version"], d["to"], d["from"], d["by"],
        parse_time(d["at"]), d["comment"], d["emergency"], d["status"],
        tuple(who(a) for a in d["approvals"]), tuple(who(a) for a in d["rejections"]),
        d["replaces"], d["required"], tuple(GateResult(*g) for g in d["gates"]),
        None if d["closed_at"] is None else parse_time(d["closed_at"]), d["ratified"])


def _event(e: Event) -> list[Any]:
    return [e.seq, e.event_id, ts_text(e.ts), e.actor, e.action, e.model, e.version,
            e.payload_json, e.prev_hash, e.hash]


def _unevent(d: list[Any]) -> Event:
    seq, event_id, ts, actor, action, model, version, payload, prev_hash, digest = d
    return Event(seq, event_id, parse_time(ts), actor, action, model, version,
                 json.loads(payload), payload, prev_hash, digest)


def open_state(log: EventLog, blobs: BlobStore, location: Location) -> RegistryState:
    """The current state: the newest snapshot the log vouches for plus the events after it,
    else the fold of the whole log. Version records are loaded from the log on first use.
    Only the newest ``snapshot`` event is trusted (so verify recomputes only that one): a
    pointer left at an older snapshot is followed to the newest."""
    def versions(seqs: list[int]) -> dict[int, Event]:
        return {e.seq: e for e in events_from_table(log.read_seqs(seqs))}

    def history() -> list[Event]:
        return events_from_table(log.read())

    state = lend(log, location, versions) if log.lent else None
    if state is None:
        if log.lent:  # nothing this process holds can be trusted: all from storage
            log.open(warm=False)
        state = _from_storage(log, blobs, location, versions)
    state.history = history
    remember(location, state)
    return state


def _from_storage(log: EventLog, blobs: BlobStore, location: Location, versions: Loader
                  ) -> RegistryState:
    found = _pointed(location, blobs)
    for _ in range(2):  # the pointer's snapshot, then the newest one if the pointer lags
        if found is None:
            break
        text, sha = found
        state, newer, why = _continued(text, sha, log, versions)
        if state is not None:
            return state
        if newer is None:
            log_.warning("ignoring the state snapshot %s… at %s: %s; folding the whole log "
                         "instead (run `nbregistry verify`)", sha[:12], location.uri, why)
            break
        found = _blob(location, blobs, newer)
    return fold(RegistryState(loader=versions), events_from_table(log.read()))


def _continued(text: str, sha: str, log: EventLog, versions: Loader
               ) -> tuple[RegistryState | None, str | None, str]:
    """(the state, None, "") when the newest snapshot event vouches for this snapshot;
    (None, the newer snapshot's sha, "") when a newer one exists; else (None, None, why)."""
    try:
        state = load(text, versions)
        fold(state, events_from_table(log.read_after(state.seq)))
    except (NbRegistryError, KeyError, ValueError, TypeError) as exc:
        return None, None, f"it does not continue the log ({exc})"
    newest = state.snapshots[-1] if state.snapshots else None
    if newest is None or newest.seq <= state.base_seq:
        return None, None, "no snapshot event in the log vouches for it"
    payload = newest.payload
    if (payload.get("sha256") == sha and payload.get("seq") == state.base_seq
            and payload.get("state_sha256") == hashlib.sha256(text.encode()).hexdigest()):
        return state, None, ""
    if isinstance(payload.get("seq"), int) and payload["seq"] > state.base_seq:
        return None, str(payload.get("sha256")), ""
    return None, None, "the newest snapshot event in the log vouches for another"


def _pointed(location: Location, blobs: BlobStore) -> tuple[str, str] | None:
    try:
        pointer = json.loads(location.read_bytes(POINTER))
        sha = str(pointer["sha256"])
    except FileNotFoundError:
        return None
    except (NbRegistryError, ValueError, KeyError, TypeError) as exc:
        log_.warning("the state snapshot pointer at %s is unusable (%s); folding the whole log",
                     location.uri, exc)
        return None
    return _blob(location, blobs, sha)


def pointed_seq(location: Location) -> int | None:
    """The seq the pointer says the newest snapshot covers: a hint, never trusted."""
    try:
        seq = json.loads(location.read_bytes(POINTER)).get("seq")
    except (FileNotFoundError, ValueError, AttributeError, NbRegistryError):
        return None
    return seq if isinstance(seq, int) else None


def _blob(location: Location, blobs: BlobStore, sha: str) -> tuple[str, str] | None:
    try:
        return unpack(blobs.get(sha)), sha
    except (NbRegistryError, ValueError, FileNotFoundError, zlib.error) as exc:
        log_.warning("the state snapshot %s… at %s is unusable (%s); folding the whole log",
                     sha[:12], location.uri, exc)
        return None


def due(state: RegistryState) -> bool:
    """Checked after every write: O(1) (snapshot events are folded in seq order)."""
    newest = state.snapshots[-1].payload.get("seq", 0) if state.snapshots else 0
    return state.seq - max(newest, state.base_seq) >= SNAPSHOT_EVERY


def take(state: RegistryState, blobs: BlobStore) -> dict[str, Any]:
    """Store the snapshot blob; returns the ``snapshot`` event payload that vouches for it."""
    text = dump(state)
    blob, state_sha = pack(text)
    return {"sha256": blobs.put(blob), "state_sha256": state_sha, "seq": state.seq,
            "hash": state.head_hash}


KEEP = 2  # the newest, and the one before it for a pointer that has not moved yet


def prune(state: RegistryState, blobs: BlobStore, *, all_older: bool = False) -> None:
    """Delete the blobs of snapshots opening no longer uses (it trusts only the newest):
    each is as large as the state, so keeping them all grows with the square of the log.
    Their ``snapshot`` events stay, with the hashes. ``all_older`` sweeps every older one
    (once per process: registries from before pruning); otherwise the one that just left."""
    older = state.snapshots[:-KEEP]
    for event in older if all_older else older[-1:]:
        sha = event.payload.get("sha256")
        if isinstance(sha, str) and _holds_a_snapshot(blobs, sha):
            blobs.delete(sha)


def _holds_a_snapshot(blobs: BlobStore, sha: str) -> bool:
    """A ``snapshot`` event names its blob, but anyone who can write the log can name a model
    artifact there: delete only what really is a state snapshot."""
    try:
        doc = json.loads(unpack(blobs.get(sha)))
    except (NbRegistryError, ValueError, zlib.error):
        return False  # gone already, or not ours to delete
    return isinstance(doc, dict) and {"models", "head_hash", "snapshots"} <= doc.keys()


def point(location: Location, payload: dict[str, Any]) -> None:
    """Move the (untrusted) pointer to the newest snapshot, once its event has landed."""
    location.put(POINTER, canonical_json({"sha256": payload["sha256"],
                                          "seq": payload["seq"]}).encode())


# -- in-process copies ------------------------------------------------------------------
# A second handle on a registry starts from the state of one already open in the process.
# Opening reads the log (or a state snapshot and the events after it) and folds it: 20 ms
# for a few hundred events. A process that holds the registry open already has that fold in
# memory, made from the same events, each link-checked as it was read (or written there). A
# new handle copies it, through ``dump`` and ``load`` (complete by construction, as a
# snapshot is), with the same trust as the handle it came from once storage still vouches
# for it: the log commit holding the copied state's last event must still name that event's
# hash, which by the hash chain pins every event before it. A log cut or rewritten there
# makes the new handle open from storage. Events after it are read from storage as a
# refresh reads them. ``verify()`` never copies: it reads the whole log.

@dataclass(frozen=True)
class _Copy:
    text: str  # dump()
    records: dict[str, dict[int, ModelVersion]]  # loaded version records (immutable)
    events: list[Event]  # what the source folded itself (after its base_seq)
    base_seq: int
    seq: int
    head_hash: str
    delta_version: int


_STATES: dict[tuple[str, str], list[weakref.ref[RegistryState]]] = {}
_lock = threading.Lock()


def _key(location: Location) -> tuple[str, str]:
    return location.uri, json.dumps(sorted(location.storage_options.items()))


def remember(location: Location, state: RegistryState) -> None:
    """Offer ``state`` (kept current by its registry) to later handles of the same log."""
    with _lock:
        alive = [ref for ref in _STATES.get(_key(location), []) if ref() is not None]
        _STATES[_key(location)] = [*alive, weakref.ref(state)]


def lend(log: EventLog, location: Location, loader: Loader) -> RegistryState | None:
    """A copy of the freshest state of this log held in the process that storage still
    vouches for, brought up to ``log``; None when there is none."""
    with _lock:
        held = [s for ref in _STATES.get(_key(location), []) if (s := ref()) is not None]
    for source in sorted(held, key=lambda s: -s.seq):
        copied = _copy(source)
        if copied is None or copied.delta_version > log.version or not log.holds(
                copied.delta_version, copied.seq, copied.head_hash):
            continue
        state = load(copied.text, loader)  # the source's own history, as if it were folded
        state.base_seq, state.events = copied.base_seq, copied.events
        for name, model in state.models.items():
            model.versions.preload(copied.records.get(name, {}))
        return fold(state, events_from_table(log.read_after(copied.seq)))
    return None


def _copy(source: RegistryState) -> _Copy | None:
    """What a copy of ``source`` needs, taken between two events; None when an event was
    being applied meanwhile (another thread writing through that handle)."""
    before = source.mutations
    if before % 2:
        return None
    try:
        copied = _Copy(dump(source), {n: m.versions.loaded() for n, m in source.models.items()},
                       list(source.events), source.base_seq, source.seq, source.head_hash,
                       source.delta_version)
    except RuntimeError:  # a dict changed size while it was read
        return None
    return copied if source.mutations == before else None
