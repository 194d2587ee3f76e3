"""``Registry``: every write, each a thin shell over a decision in ``governance``, plus
freshness and time travel. Reads are inherited from ``RegistryView``."""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ..domain import validate
from ..domain.entities import Event, GateResult, ModelVersion, PromotionRequest, VerifyReport
from ..domain.errors import (
    ConflictError,
    InvalidInputError,
    NbRegistryError,
    NotFoundError,
    RegistryCreatedWarning,
)
from ..domain.events import FORMAT_VERSION
from ..domain.policy import Policy, parse_policy
from ..domain.timefmt import parse_time
from ..store import BlobStore, CommitConflict, EventLog, Location, normalize_uri
from . import governance, monitoring_gates, registration, signing, snapshot
from . import witness as witnesses
from .chain import events_from_table, make_event
from .fold import apply, fold
from .state import RegistryState
from .verify import verify_log
from .view import RegistryView

if TYPE_CHECKING:
    from .monitor import Monitor

MAX_ATTEMPTS = 400
LOST = object()  # an attempt that lost the commit race
log = logging.getLogger("nbregistry")
Build = Callable[[RegistryState], tuple[int | None, dict[str, Any]] | None]


class Registry(RegistryView):
    """A registry you can write to; every change is one event in the hash-chained log."""

    def __init__(self, location: Location, user: str, *, max_staleness: float = 0.0,
                 create: bool | None = None, signing_key: Any = None,
                 witness: Location | None = None) -> None:
        self._log = EventLog(location)
        self._signing_key = signing_key
        self._witness = witness
        if not self._log.exists():
            self._create(location, user, create)
        self._log.open()
        state = snapshot.open_state(self._log, BlobStore(location), location)
        state.delta_version = self._log.version
        super().__init__(location, state, user)
        # One Registry may be shared by threads (a panel's watcher and the notebook): folding
        # new events and committing must not interleave.
        self._lock = threading.RLock()
        self._max_staleness = max_staleness
        self._synced_at = time.monotonic()
        self._published = state.seq
        self._pruned = False  # superseded snapshot blobs swept in this process yet?

    def _create(self, location: Location, user: str, create: bool | None) -> None:
        if create is False:
            raise NotFoundError(f"there is no registry at {location.uri}; check the path, or "
                                "pass create=True to make a new one", ref=location.uri)
        genesis = make_event(RegistryState(), user, "create_registry", None, None,
                             {"format": FORMAT_VERSION, "creator": user})
        if self._log.create(genesis) and create is None:
            warnings.warn(f"created a new, empty registry at {location.uri} with {user!r} as "
                          "its admin (pass create=True to do this quietly, create=False to "
                          "refuse)", RegistryCreatedWarning, stacklevel=4)

    def __reduce__(self) -> tuple[Any, ...]:
        # Storage handles don't pickle; a worker process reopens the same registry instead.
        from .opening import reopen

        return (reopen, (self._location.uri, self.user, self._location.storage_options,
                         self._max_staleness))

    # -- freshness ---------------------------------------------------------------------
    def refresh(self) -> Registry:
        """Fold in events other writers committed since we last looked."""
        with self._lock:
            log, state = self._log, self._state
            if log.has_newer():
                fold(state, events_from_table(log.read_new(after_seq=state.seq)))
                state.delta_version = log.version
            self._synced_at = time.monotonic()
        return self

    def _current(self) -> RegistryState:
        if time.monotonic() - self._synced_at >= self._max_staleness:
            self.refresh()
        return self._state

    # -- the one write path ----------------------------------------------------------
    def _commit(self, action: str, model: str | None, build: Build, *,
                signing_key: Any = None) -> Event | None:
        """Append one event built against the freshest state; retry when another writer
        took the next log version first. ``build`` validates and may raise (then nothing
        is written) or return None when there is nothing to record. The event is signed
        when the user has an enrolled key."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with self._lock, self._location.writer_lock():
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

    def _attempt(self, action: str, model: str | None, build: Build,
                 signing_key: Any) -> Any:
        """One try under the locks: the event, None (nothing to record) or LOST (another
        writer took the log version first)."""
        self.refresh()
        built = build(self._state)
        if built is None:
            return None
        version, payload = built
        key = signing_key or self._signing_key
        if action == "register_key" and not self._state.keys.get(self.user):
            key = None  # enrolling a first key: nothing to sign with yet
        event = make_event(self._state, self.user, action, model, version, payload,
                           signer=signing.signer(self._state, self.user, key))
        try:
            landed = self._log.append(event)
        except CommitConflict:
            return LOST
        apply(self._state, event)
        self._state.delta_version = landed
        return event

    def _snapshot(self) -> None:
        """Every SNAPSHOT_EVERY events, store the folded state so opening stays flat. Best
        effort: the event the caller wrote has landed whatever happens here."""
        if not snapshot.due(self._state):
            return
        try:
            payload = snapshot.take(self._state, self._blobs)
            self._record("snapshot", None, lambda s: (None, payload))
            snapshot.point(self._location, payload)
            snapshot.prune(self._state, self._blobs, all_older=not self._pruned)
            self._pruned = True
        except NbRegistryError as exc:
            log.warning("could not store a state snapshot of %s: %s", self.uri, exc)

    def _witness_head(self, event: Event) -> None:
        if (self._witness is not None and witnesses.due(event, self._published)
                and witnesses.publish(self._witness, self._state.registry_id, event,
                                    self.uri)):
            self._published = event.seq

    def _record(self, action: str, model: str | None, build: Build, *,
                signing_key: Any = None) -> Event:
        event = self._commit(action, model, build, signing_key=signing_key)
        assert event is not None, "this build always records an event"
        return event

    # -- models and aliases ------------------------------------------------------------
    def register(self, model: Any, name: str, *, params: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None,
                 tags: Mapping[str, Any] | None = None, description: str | None = None,
                 training_data: str | os.PathLike[str] | None = None,
                 reference_data: Any = None, reference_target: Any = None,
                 card: Mapping[str, Any] | None = None, flavor: str | None = None,
                 notebook: str | None = None,
                 data_storage_options: Mapping[str, str] | None = None) -> ModelVersion:
        """Store ``model`` as the next version of ``name``, with its lineage.

        Parameters
        ----------
        model : object
            The fitted model; serialized by a flavor (``flavor=`` or the first that matches).
        name : str
            Letters, digits, ``_``, ``-``, ``.``; e.g. ``"credit_risk"``.
        params, metrics, tags : dict, optional
            Hyper-parameters (JSON values), finite float metrics, string tags.
        description : str, optional
        training_data : str or path, optional
            The training Delta table (its current version is pinned in the lineage) or a
            data file (its sha256 is recorded). ``data_storage_options`` reach object stores.
        reference_data : DataFrame or pyarrow.Table, optional
            The model's input features on reference (training) rows; frozen as a parquet
            blob, it defines the feature schema that prediction logs are checked against and
            the baseline that drift is measured from.
        reference_target : array-like, optional
            The actual outcome for each reference row (the performance baseline).
        card : dict, optional
            Model-card fields, e.g. ``{"intended_use": ..., "limitations": ...}``.
        notebook : str, optional
            The notebook's path for the lineage (found automatically under Jupyter).

        Returns
        -------
        ModelVersion
        """
        name = validate.model_name(name)
        payload = registration.payload(
            model, self._blobs, params=params, metrics=metrics, tags=tags,
            description=description, training_data=training_data,
            reference_data=reference_data, reference_target=reference_target, card=card,
            flavor=flavor, notebook=notebook, data_storage_options=data_storage_options)
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
            model.require(number)
            if model.aliases.get(alias) == number:
                return None
            return number, {"alias": alias, "previous": model.aliases.get(alias)}

        self._commit("set_alias", name, build)
        return self._state.models[name].view(number)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``name@alias``."""
        name, alias = validate.model_name(name), validate.alias_name(alias)

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            held = state.model(name).aliases.get(alias)
            if held is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}", model=name,
                                    ref=alias)
            return held, {"alias": alias}

        self._commit("delete_alias", name, build)

    def set_card(self, name: str, version: int | str, card: Mapping[str, Any]) -> ModelVersion:
        """Add or replace model-card fields of a version (kept as an event)."""
        name, number = validate.model_name(name), validate.version_number(version)
        fields = validate.json_mapping(card, what="card")
        if not fields:
            raise InvalidInputError("card is empty: pass fields such as {'limitations': ...}",
                                    field="card")
        self._record("set_card", name, lambda s: (_existing(s, name, number), {"card": fields}))
        return self._current().models[name].view(number)

    def comment(self, name: str, version: int | str, text: str) -> None:
        """Attach a comment to a version's history."""
        name, number = validate.model_name(name), validate.version_number(version)
        text = validate.text(text, what="comment")
        if not text.strip():
            raise InvalidInputError("the comment is empty", field="comment")
        self._record("comment", name, lambda s: (_existing(s, name, number), {"text": text}))

    # -- policy, roles, keys -----------------------------------------------------------
    def set_policy(self, policy: str | os.PathLike[str] | Mapping[str, Any]) -> Policy:
        """Replace the policy (admins only). Accepts TOML/YAML/JSON text, a file path, or a
        dict; the whole document is validated and every mistake is listed."""
        document = governance.load_policy_document(policy)
        parsed = parse_policy(document)

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            governance.require_admin(state, self.user, "change the policy")
            return None, {"policy": document}

        self._record("set_policy", None, build)
        return parsed

    def grant_role(self, user: str, role: str) -> None:
        """Give ``user`` a role of the policy (admins only; granting a held role is a no-op)."""
        self._role_change("grant_role", user, role)

    def revoke_role(self, user: str, role: str) -> None:
        """Take a role from ``user`` (admins only; the last admin stays)."""
        self._role_change("revoke_role", user, role)

    def _role_change(self, action: str, user: str, role: str) -> None:
        who = validate.user_name(user)
        self._commit(action, None,
                     lambda s: governance.role_change(s, self.user, action, who, role))

    def register_key(self, public_key: bytes | str, *, user: str | None = None) -> str:
        """Enrol an Ed25519 public key (PEM) for ``user`` (default: you); from then on every
        event that user writes must be signed with the matching private key.

        A user's first key is enrolled by an admin; a rotation is made by the user
        (signed with their current key, so open the registry with ``signing_key=``) or by
        an admin. Returns the key's fingerprint."""
        pem, fingerprint = signing.public_key_pem(public_key)
        target = validate.user_name(user) if user is not None else self.user

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            signing.enrolment(state, self.user, target)
            return None, {"public_key": pem, "fingerprint": fingerprint, "user": target}

        self._record("register_key", None, build)
        return fingerprint

    # -- promotion lifecycle -----------------------------------------------------------
    def request_promotion(self, name: str, version: int | str, to: str, *, comment: str = "",
                          emergency: bool = False) -> PromotionRequest:
        """Ask for ``version`` to enter stage ``to``.

        Gates are checked now. With no approvals required (or ``emergency=True`` by a role
        the policy allows, to be ratified by approvals afterwards) it is promoted at once;
        otherwise approvers complete it with :meth:`approve`.

        Returns
        -------
        PromotionRequest
        """
        name, number = validate.model_name(name), validate.version_number(version)
        comment = validate.text(comment, what="comment")
        seen = self._current().model(name).holder(to)
        request_id = uuid.uuid4().hex
        measured = monitoring_gates.evaluate(self, name, number, to)
        self._record("request_promotion", name, lambda s: governance.request(
            s, self.user, name=name, number=number, to=to, comment=comment,
            emergency=bool(emergency), request_id=request_id, seen_holder=seen,
            measured=measured))
        return self._current().requests[request_id]

    def approve(self, name: str, version: int | str, *, comment: str = "",
                to: str | None = None, signing_key: Any = None) -> PromotionRequest:
        """Approve the open request for this version.

        The approval that completes the quorum promotes it, after re-checking the
        transition, every earlier approver's standing and every gate against the policy in
        force now. ``signing_key`` (an Ed25519 private key) is required once you registered
        a public key; ``to`` picks the request when there are several."""
        name, number = validate.model_name(name), validate.version_number(version)
        comment = validate.text(comment, what="comment")
        measured = monitoring_gates.for_approval(self, name, number, to)
        event = self._record("approve", name, lambda s: governance.approve(
            s, self.user, name=name, number=number, to=to, comment=comment, measured=measured),
            signing_key=None if signing_key is None else signing.private_key(signing_key))
        return self._current().requests[event.payload["request_id"]]

    def reject(self, name: str, version: int | str, *, comment: str,
               to: str | None = None) -> PromotionRequest:
        """Reject the open request (approver roles only); a comment saying why is required."""
        return self._close("reject", name, version, comment, to)

    def withdraw(self, name: str, version: int | str, *, comment: str = "",
                 to: str | None = None) -> PromotionRequest:
        """Withdraw your own open request (or any, as admin)."""
        return self._close("withdraw", name, version, comment, to)

    def _close(self, action: str, name: str, version: int | str, comment: str,
               to: str | None) -> PromotionRequest:
        name, number = validate.model_name(name), validate.version_number(version)
        comment = validate.text(comment, what="comment")
        if action == "reject" and not comment.strip():
            raise InvalidInputError("a rejection needs a comment saying why", field="comment")
        event = self._record(action, name, lambda s: governance.close(
            s, self.user, action, name=name, number=number, to=to, comment=comment))
        return self._current().requests[event.payload["request_id"]]

    def rollback(self, name: str, *, stage: str, reason: str = "") -> ModelVersion:
        """Return ``stage`` to the version that held it before the current one (which must
        still pass the stage's gates)."""
        name = validate.model_name(name)
        reason = validate.text(reason, what="reason")
        event = self._record("rollback", name, lambda s: governance.rollback(
            s, self.user, name=name, stage=stage, reason=reason))
        assert event.version is not None
        return self._current().models[name].view(event.version)

    def flag_data(self, table_uri: str, version: int, *, reason: str) -> list[ModelVersion]:
        """Recall a training-data version: every model version trained on it (now or later)
        is marked ``revalidation_required`` and can't be promoted or restored."""
        uri = normalize_uri(table_uri)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInputError(f"version must be the Delta table version (an integer "
                                    f">= 0), got {version!r}", field="version", value=version)
        reason = validate.text(reason, what="reason")
        if not reason.strip():
            raise InvalidInputError("say why the data is recalled (reason=...)", field="reason")
        event = self._record("flag_data", None, lambda s: governance.flag_data(
            s, uri=uri, version=version, reason=reason))
        state = self._current()
        return [state.models[n].view(v) for n, v in event.payload["affected"]]

    def record_deployment(self, name: str, version: int | str, target: str, *,
                          sha256: str | None = None, stage: str = "production",
                          comment: str = "") -> Event:
        """Record that ``version`` was deployed to ``target`` (a deployment pipeline calls
        this, or ``nbregistry deploy``). Refused unless the version holds ``stage``;
        ``sha256`` is the hash of what was actually deployed (default: the registered one);
        a mismatch is recorded, and the SOX report lists it as an exception."""
        name, number = validate.model_name(name), validate.version_number(version)
        target = validate.text(target, what="target", max_len=500).strip()
        if not target:
            raise InvalidInputError("target is empty: name where it was deployed, e.g. "
                                    "'scoring-prod-eu'", field="target")
        if sha256 is not None:
            sha256 = validate.sha256(sha256)
        comment = validate.text(comment, what="comment")
        return self._record("deploy", name, lambda s: governance.deploy(
            s, name=name, number=number, target=target, stage=stage, sha256=sha256,
            comment=comment))

    def check_gates(self, name: str, version: int | str, to: str) -> list[GateResult]:
        """Every gate of stage ``to`` for this version, pass or fail, with evidence, including
        the gates measured on monitoring data."""
        found = super().check_gates(name, version, to)
        return [*found, *monitoring_gates.evaluate(self, validate.model_name(name),
                                                   validate.version_number(version), to)]

    def record_report(self, template: str, *, model: str, version: int | str,
                      parameters: Mapping[str, Any], tables: Mapping[str, int],
                      head: Sequence[Any], outputs: Mapping[str, str], sha256: str,
                      output_dir: str) -> Event:
        """Record a compliance report run (``nbr.run_report`` does): its parameters, the
        Delta version of every table it read, the head it saw, its outputs' sha256."""
        name, number = validate.model_name(model), validate.version_number(version)
        payload = governance.report(template, parameters=parameters, tables=tables, head=head,
                                    outputs=outputs, sha256=sha256, output_dir=output_dir)
        return self._record("report", name, lambda s: (_existing(s, name, number), payload))

    def monitor(self, name: str) -> Monitor:
        """Monitoring for model ``name``: log predictions and outcomes, then ask for drift,
        performance, fairness, a challenger replay, or run the policy's ``check()``."""
        from .monitor import Monitor

        return Monitor(self, name)

    # -- audit and time travel ---------------------------------------------------------
    def verify(self, *, artifacts: bool = True,
               expected_head: tuple[int, str] | None = None,
               trusted_keys: Mapping[str, str | Sequence[str]] | None = None,
               witness: str | os.PathLike[str] | None = None,
               witness_storage_options: Mapping[str, str] | None = None,
               progress: bool = False) -> VerifyReport:
        """Re-read the whole log from storage and check the chain, gaps, signatures and
        artifacts; the report says what each check proves.

        Parameters
        ----------
        expected_head : (seq, hash), optional
            A head recorded elsewhere (default: the one this object saw last): a log cut
            or rewritten since then is reported.
        trusted_keys : dict, optional
            ``{user: public PEM or [PEMs]}`` pinned outside the registry: signatures are
            checked against these instead of the keys the log itself names.
        witness : str or path, optional
            The witness location (default: the one this registry publishes to): every head
            published there must still be in the log.
        progress : bool
            Show a progress bar while the chain is folded (large registries).
        """
        head = expected_head or (self._state.seq, self._state.head_hash)
        where = (self._witness if witness is None
                 else witnesses.location(witness, witness_storage_options))
        return verify_log(self._location, artifacts=artifacts, expected_head=head,
                          trusted_keys=trusted_keys, witness=where, progress=progress)

    def as_of(self, when: str | datetime | date) -> RegistryView:
        """A read-only view of the registry as it was at ``when`` (ISO text, a datetime or a
        date; UTC if no zone is given): what existed, who held which stage and role."""
        moment = parse_time(when)
        # The log's time is non-decreasing, so the past is a prefix; a backdated event (a
        # bad clock, or forged) ends the prefix rather than breaking the fold.
        past = fold(RegistryState(), itertools.takewhile(lambda e: e.ts <= moment,
                                                         self._current().all_events()))
        return RegistryView(self._location, past, self.user)


def _existing(state: RegistryState, name: str, number: int) -> int:
    state.model(name).require(number)
    return number
