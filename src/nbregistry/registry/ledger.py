"""``Ledger``: the one write path to the audit log.

Every event (governance, registrations, monitoring seals, alerts, baselines and actions,
reports, deployments) is built against the freshest state, validated, signed when its actor
has an enrolled key, committed with compare-and-swap (retried when another writer took the
next log version first), published to the witness and, every ``SNAPSHOT_EVERY`` events,
snapshotted. ``Registry`` and the monitoring orchestration both write through it; nothing
else appends to the log.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..domain.entities import Event
from ..domain.errors import (
    ConflictError,
    IntegrityError,
    NbRegistryError,
    NotFoundError,
    RegistryCreatedWarning,
)
from ..domain.events import FORMAT_VERSION
from ..store import BlobStore, CommitConflict, EventLog, Location
from . import signing, snapshot
from . import witness as witnesses
from .chain import events_from_table, make_event
from .fold import apply, fold
from .state import RegistryState

MAX_ATTEMPTS = 400
LOST = object()  # an attempt that lost the commit race
log = logging.getLogger("nbregistry")
Decision = tuple[int | None, dict[str, Any]]
Build = Callable[[RegistryState], Decision | None]


class Ledger:
    """The audit log of one registry as its writers see it: the folded state (kept fresh)
    and the one way to append to it.

    ``build`` functions receive the freshest state inside the commit and return
    ``(version, payload)``, or None when there is nothing to record; raising refuses the
    write (nothing is written). A lost commit race re-runs ``build`` against the new state.
    """

    def __init__(self, location: Location, user: str, *, max_staleness: float = 0.0,
                 create: bool | None = None, signing_key: Any = None,
                 witness: Location | None = None) -> None:
        self.location, self.user = location, user
        self.blobs = BlobStore(location)
        self.witness = witness
        self.log = EventLog(location)
        self._signing_key = signing_key
        if not self.log.exists():
            self._create(create)
        self.log.open()
        self._state = snapshot.open_state(self.log, self.blobs, location)
        self._state.delta_version = self.log.version
        # One ledger may be shared by threads (a panel's watcher and the notebook): folding
        # new events and committing must not interleave.
        self._lock = threading.RLock()
        self.max_staleness = max_staleness
        self._synced_at = time.monotonic()
        self._published = self._state.seq
        self._unpublished = False  # a publication failed: the next write publishes
        self._alarming = False
        # a state copied from another handle in this process (snapshot.open_state) is as of
        # that handle's last look: fold what was written since, so an open sees it (and a
        # damaged new event refuses the open, as a fresh process's open does)
        self.refresh()
        self._pruned = False  # superseded snapshot blobs swept in this process yet?

    def _create(self, create: bool | None) -> None:
        if create is False:
            raise NotFoundError(f"there is no registry at {self.location.uri}; check the "
                                "path, or pass create=True to make a new one",
                                ref=self.location.uri)
        genesis = make_event(RegistryState(), self.user, "create_registry", None, None,
                             {"format": FORMAT_VERSION, "creator": self.user})
        if self.log.create(genesis) and create is None:
            warnings.warn(f"created a new, empty registry at {self.location.uri} with "
                          f"{self.user!r} as its admin (pass create=True to do this quietly, "
                          "create=False to refuse)", RegistryCreatedWarning, stacklevel=5)

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> RegistryState:
        """Fold in the events other writers committed since we last looked."""
        with self._lock:
            log, state = self.log, self._state
            if log.has_newer():
                fold(state, events_from_table(log.read_new(after_seq=state.seq)))
                state.delta_version = log.version
            self._synced_at = time.monotonic()
            return state

    def current(self) -> RegistryState:
        """The folded state, refreshed unless it was refreshed within ``max_staleness``."""
        if time.monotonic() - self._synced_at >= self.max_staleness:
            return self.refresh()
        return self._state

    @property
    def state(self) -> RegistryState:
        """The folded state as last refreshed (no storage access)."""
        return self._state

    @property
    def head(self) -> tuple[int, str]:
        state = self._state
        return state.seq, state.head_hash

    # -- writing ---------------------------------------------------------------------------
    def commit(self, action: str, model: str | None, build: Build, *,
               signing_key: Any = None) -> Event | None:
        """Append one event built against the freshest state (None: nothing to record)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with self._lock, self.location.writer_lock():
                outcome = self._attempt(action, model, build, signing_key)
            if outcome is not LOST:
                event: Event | None = outcome
                if event is not None:  # after the lock: these may write events themselves
                    self._witness_head(event)
                    self._snapshot()
                return event
            time.sleep(random.uniform(0, min(0.25, 0.002 * 2 ** min(attempt, 7))))
        raise ConflictError(f"gave up {action!r} after {MAX_ATTEMPTS} lost commit races; "
                            "the registry is under heavy write load, try again")

    def record(self, action: str, model: str | None, build: Build, *,
               signing_key: Any = None) -> Event:
        """``commit`` for a build that always records an event."""
        event = self.commit(action, model, build, signing_key=signing_key)
        if event is None:
            raise AssertionError(f"the {action!r} build recorded nothing")
        return event

    def append(self, action: str, model: str | None, version: int | None,
               payload: dict[str, Any]) -> Event:
        """Record a fixed event (one whose content does not depend on the state)."""
        return self.record(action, model, lambda state: (version, payload))

    def _attempt(self, action: str, model: str | None, build: Build, signing_key: Any) -> Any:
        """One try under the locks: the event, None (nothing to record) or LOST (another
        writer took the log version first)."""
        state = self.refresh()
        built = build(state)
        if built is None:
            return None
        version, payload = built
        key = signing_key or self._signing_key
        if action == "register_key" and not state.keys.get(self.user):
            key = None  # enrolling a first key: nothing to sign with yet
        event = make_event(state, self.user, action, model, version, payload,
                           signer=signing.signer(state, self.user, key))
        try:
            landed = self.log.append(event)
        except CommitConflict:
            return LOST
        apply(state, event)
        state.delta_version = landed
        return event

    def _snapshot(self) -> None:
        """Every SNAPSHOT_EVERY events, store the folded state so opening stays flat. Best
        effort: the event the caller wrote has landed whatever happens here."""
        if not snapshot.due(self._state):
            return
        try:
            payload = snapshot.take(self._state, self.blobs)
            self.append("snapshot", None, None, payload)
            snapshot.point(self.location, payload)
            snapshot.prune(self._state, self.blobs, all_older=not self._pruned)
            self._pruned = True
        except NbRegistryError as exc:
            log.warning("could not store a state snapshot of %s: %s", self.location.uri, exc)

    def _witness_head(self, event: Event) -> None:
        """Publish the head when the event is due, or when an earlier publication failed
        (this head vouches for the chain before it). A forged head found in the way is a
        tamper alarm: recorded in the log, then raised."""
        if self.witness is None or not (self._unpublished
                                        or witnesses.due(event, self._published)):
            return
        try:
            published = witnesses.publish(self.witness, self._state.registry_id, event,
                                          self.location.uri)
        except witnesses.WitnessConflict as conflict:
            self._alarm(conflict)
            return
        self._unpublished = not published
        if published:
            self._published = event.seq

    def _alarm(self, conflict: witnesses.WitnessConflict) -> None:
        event = conflict.event
        log.error("TAMPER ALARM: %s", conflict)
        if not self._alarming:  # the alarm's own publication may meet another forgery
            self._alarming = True
            try:
                self.append("tamper_alarm", None, None, {
                    "key": conflict.key, "seq": event.seq,
                    "hash": str(conflict.found.get("hash")),
                    "actor": None if conflict.found.get("actor") is None
                    else str(conflict.found.get("actor")), "ours": event.hash})
            finally:
                self._alarming = False
        raise IntegrityError(f"event {event.seq} ({event.action}) was recorded, but {conflict}:"
                             " someone published a forged head. A tamper_alarm event was "
                             "recorded; run verify and check who can write the witness",
                             problems=[str(conflict)])
