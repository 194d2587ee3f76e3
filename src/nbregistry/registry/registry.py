"""The registry use-cases that write: open, register, aliases; plus freshness and time travel."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from ..domain import validate
from ..domain.canonical import canonical_json, event_hash
from ..domain.entities import Event, ModelVersion, VerifyReport
from ..domain.errors import ConflictError, InvalidInputError, NotFoundError
from ..store import CommitConflict, EventLog, Location
from ..store.eventlog import rows
from . import flavors, lineage, reference
from . import governance_state as _fold_handlers  # noqa: F401  (registers fold handlers)
from .governance import Build, Governance
from .identity import resolve_user
from .state import RegistryState, event_from_row, ts_text
from .verify import verify_log
from .view import RegistryView

DEFAULT_URI = ".nbregistry"
MAX_ATTEMPTS = 400


def open_registry(uri: str | os.PathLike[str] | None = None, user: str | None = None, *,
                  storage_options: Mapping[str, str] | None = None,
                  max_staleness: float = 0.0) -> Registry:
    """Open (creating on first use) the registry at ``uri``: a folder, or ``s3://…`` etc.

    ``uri`` defaults to ``$NBREGISTRY_URI``, else ``./.nbregistry``. Reads check for newer
    events first unless the last check is younger than ``max_staleness`` seconds.
    """
    location = Location.parse(uri or os.environ.get("NBREGISTRY_URI") or DEFAULT_URI,
                              storage_options)
    return Registry(location, resolve_user(user), max_staleness=max_staleness)


class Registry(Governance, RegistryView):
    def __init__(self, location: Location, user: str, *, max_staleness: float = 0.0) -> None:
        self._log = EventLog(location)
        if not self._log.exists():
            genesis = _make_event(RegistryState(), user, "create_registry", None, None,
                                  {"format": 1, "creator": user})
            self._log.create(genesis)
        self._log.open()
        state = RegistryState()
        state.fold(event_from_row(r) for r in rows(self._log.read()))
        state.delta_version = self._log.version
        super().__init__(location, state, user)
        # One Registry may be shared by threads (a panel's watcher and the notebook): folding
        # new events and committing must not interleave.
        self._lock = threading.RLock()
        self._max_staleness = max_staleness
        self._synced_at = time.monotonic()

    def __reduce__(self) -> tuple[Any, ...]:
        # Storage handles don't pickle; a worker process reopens the same registry instead.
        return (_reopen, (self._location.uri, self.user, self._location.storage_options,
                          self._max_staleness))

    # -- freshness ---------------------------------------------------------------------
    def refresh(self) -> Registry:
        """Fold in events other writers committed since we last looked."""
        with self._lock:
            log, state = self._log, self._state
            if log.has_newer():
                state.fold(event_from_row(r) for r in rows(log.read_new(after_seq=state.seq)))
                state.delta_version = log.version
            self._synced_at = time.monotonic()
        return self

    def _current(self) -> RegistryState:
        if time.monotonic() - self._synced_at >= self._max_staleness:
            self.refresh()
        return self._state

    # -- the one write path ----------------------------------------------------------
    def _commit(self, action: str, model: str | None, build: Build) -> Event | None:
        """Append one event built against the freshest state; retry when another writer
        took the next log version first. ``build`` validates and may raise (then nothing
        is written) or return None when there is nothing to record."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with self._lock, self._location.writer_lock():
                self.refresh()
                built = build(self._state)
                if built is None:
                    return None
                version, payload = built
                event = _make_event(self._state, self.user, action, model, version, payload)
                try:
                    landed = self._log.append(event)
                except CommitConflict:
                    landed = None
                if landed is not None:
                    self._state.apply(event)
                    self._state.delta_version = landed
                    return event
            time.sleep(random.uniform(0, min(0.25, 0.002 * 2 ** min(attempt, 7))))
        raise ConflictError(f"gave up {action!r} after {MAX_ATTEMPTS} lost commit races; "
                            "the registry is under heavy write load, try again")

    # -- use-cases ---------------------------------------------------------------------
    def register(self, model: Any, name: str, *, params: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None,
                 tags: Mapping[str, Any] | None = None, description: str | None = None,
                 training_data: str | os.PathLike[str] | None = None,
                 reference_data: Any = None, reference_target: Any = None,
                 card: Mapping[str, Any] | None = None, flavor: str | None = None,
                 notebook: str | None = None,
                 data_storage_options: Mapping[str, str] | None = None) -> ModelVersion:
        """Store ``model`` as the next version of ``name``, with its lineage."""
        name = validate.model_name(name)
        if model is None:
            raise InvalidInputError("model is None: pass the fitted model object", field="model")
        payload: dict[str, Any] = {
            "params": validate.json_mapping(params, what="params"),
            "metrics": validate.metrics_mapping(metrics),
            "tags": validate.tags_mapping(tags),
            "description": validate.text(description, what="description"),
            "card": validate.json_mapping(card, what="card"),
        }
        features, ref_bytes, ref_rows = reference.freeze(reference_data, reference_target)
        payload["lineage"] = lineage.capture(model, training_data=training_data,
                                             storage_options=data_storage_options,
                                             notebook=notebook)
        payload["flavor"], data = flavors.dump(model, flavor)
        # Blobs first: an event must never name a blob that is not there yet.
        payload["sha256"], payload["size"] = self._blobs.put(data), len(data)
        payload["features"] = features
        if ref_bytes is not None:
            payload["reference"] = {"sha256": self._blobs.put(ref_bytes), "rows": ref_rows,
                                    "has_target": reference_target is not None}
        event = self._record("register", name,
                             lambda state: (state.next_version(name), payload))
        assert event.version is not None
        return self._state.models[name].view(event.version)

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        """Point ``name@alias`` at ``version``, moving it if it pointed elsewhere (pointing it
        where it already points records nothing)."""
        name, alias = validate.model_name(name), validate.alias_name(alias)
        number = validate.version_number(version)

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]] | None:
            model = state.model(name)
            if number not in model.versions:
                raise NotFoundError(f"model {name!r} has no version {number} (versions 1.."
                                    f"{model.latest})", model=name, ref=str(number))
            if model.aliases.get(alias) == number:
                return None
            return number, {"alias": alias, "previous": model.aliases.get(alias)}

        self._commit("set_alias", name, build)
        return self._state.models[name].view(number)

    def delete_alias(self, name: str, alias: str) -> None:
        name, alias = validate.model_name(name), validate.alias_name(alias)

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            held = state.model(name).aliases.get(alias)
            if held is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}", model=name,
                                    ref=alias)
            return held, {"alias": alias}

        self._commit("delete_alias", name, build)

    def verify(self, *, artifacts: bool = True,
               expected_head: tuple[int, str] | None = None) -> VerifyReport:
        """Re-read the whole log from storage and check the chain, gaps and artifacts.

        The log's tail is only provable against a head recorded elsewhere: pass
        ``expected_head`` (an earlier ``reg.head``) to detect truncation."""
        head = expected_head or (self._state.seq, self._state.head_hash)
        return verify_log(self._location, artifacts=artifacts, expected_head=head)

    def as_of(self, when: str | datetime | date) -> RegistryView:
        """A read-only view of the registry as it was at ``when`` (UTC if no zone given)."""
        moment = parse_time(when)
        past = RegistryState()
        past.fold(e for e in self._current().events if e.ts <= moment)
        return RegistryView(self._location, past, self.user)


def _reopen(uri: str, user: str, storage_options: dict[str, str], max_staleness: float
            ) -> Registry:
    return open_registry(uri, user, storage_options=storage_options or None,
                         max_staleness=max_staleness)


def _make_event(state: RegistryState, actor: str, action: str, model: str | None,
                version: int | None, payload: dict[str, Any]) -> Event:
    payload_json = canonical_json(payload)
    ts = datetime.now(UTC)
    if state.events and ts < state.events[-1].ts:
        ts = state.events[-1].ts  # keep the log's time non-decreasing across clock skew
    seq, event_id = state.seq + 1, uuid.uuid4().hex
    digest = event_hash(state.head_hash, seq, event_id, ts_text(ts), actor, action, model,
                        version, payload_json)
    return Event(seq=seq, event_id=event_id, ts=ts, actor=actor, action=action, model=model,
                 version=version, payload=payload, payload_json=payload_json,
                 prev_hash=state.head_hash, hash=digest)


def parse_time(when: str | datetime | date) -> datetime:
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInputError(f"cannot read {when!r} as a time: use ISO 8601, e.g. "
                                    "'2026-03-01T00:00:00Z'", field="when") from exc
    if not isinstance(when, datetime):
        if isinstance(when, date):
            when = datetime(when.year, when.month, when.day)
        else:
            raise InvalidInputError(f"expected a time, got {type(when).__name__}", field="when")
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
