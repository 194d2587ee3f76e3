"""``Registry``: every write, each a thin shell over a decision in ``governance`` recorded
through the ``Ledger``, plus freshness and time travel. Reads are inherited from
``RegistryView``."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ..domain import validate
from ..domain.entities import Event, GateResult, ModelVersion, PromotionRequest, VerifyReport
from ..domain.errors import IntegrityError, InvalidInputError, NotFoundError
from ..domain.policy import Policy, parse_policy
from ..domain.timefmt import parse_time
from ..store import Location, monitoring_tables, normalize_uri
from ..watch import LiveSource, Monitor
from ..watch import gates as monitoring_gates
from . import governance, registration, signing
from . import witness as witnesses
from .fold import fold
from .ledger import Ledger
from .monitoring_events import MonitoringEvents
from .state import RegistryState
from .verify import verify_log
from .view import RegistryView


class Registry(RegistryView):
    """A registry you can write to; every change is one event in the hash-chained log,
    appended through ``ledger`` (the one write path)."""

    def __init__(self, location: Location, user: str, *, max_staleness: float = 0.0,
                 create: bool | None = None, signing_key: Any = None,
                 witness: Location | None = None) -> None:
        self.ledger = Ledger(location, user, max_staleness=max_staleness, create=create,
                             signing_key=signing_key, witness=witness)
        super().__init__(location, self.ledger.current, user, blobs=self.ledger.blobs)

    def __reduce__(self) -> tuple[Any, ...]:
        # Storage handles don't pickle; a worker process reopens the same registry instead
        # (a signing key is never pickled).
        witness = self.ledger.witness
        return (reopen, (self.uri, self.user, self.ledger.location.storage_options,
                         self.ledger.max_staleness,
                         None if witness is None else witness.uri,
                         None if witness is None else witness.storage_options))

    # -- freshness ---------------------------------------------------------------------
    def refresh(self) -> Registry:
        """Fold in events other writers committed since we last looked."""
        self.ledger.refresh()
        return self

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
            model, self.ledger.blobs, params=params, metrics=metrics, tags=tags,
            description=description, training_data=training_data,
            reference_data=reference_data, reference_target=reference_target, card=card,
            flavor=flavor, notebook=notebook, data_storage_options=data_storage_options)
        event = self.ledger.record("register", name,
                             lambda state: (state.next_version(name), payload))
        assert event.version is not None
        return self.ledger.state.models[name].view(event.version)

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

        self.ledger.commit("set_alias", name, build)
        return self.ledger.state.models[name].view(number)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``name@alias``."""
        name, alias = validate.model_name(name), validate.alias_name(alias)

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            held = state.model(name).aliases.get(alias)
            if held is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}", model=name,
                                    ref=alias)
            return held, {"alias": alias}

        self.ledger.commit("delete_alias", name, build)

    def set_card(self, name: str, version: int | str, card: Mapping[str, Any]) -> ModelVersion:
        """Add or replace model-card fields of a version (kept as an event)."""
        name, number = validate.model_name(name), validate.version_number(version)
        fields = validate.json_mapping(card, what="card")
        if not fields:
            raise InvalidInputError("card is empty: pass fields such as {'limitations': ...}",
                                    field="card")
        self.ledger.record("set_card", name,
                           lambda s: (_existing(s, name, number), {"card": fields}))
        return self.ledger.current().models[name].view(number)

    def comment(self, name: str, version: int | str, text: str) -> None:
        """Attach a comment to a version's history."""
        name, number = validate.model_name(name), validate.version_number(version)
        text = validate.text(text, what="comment")
        if not text.strip():
            raise InvalidInputError("the comment is empty", field="comment")
        self.ledger.record("comment", name,
                           lambda s: (_existing(s, name, number), {"text": text}))

    # -- policy, roles, keys -----------------------------------------------------------
    def set_policy(self, policy: str | os.PathLike[str] | Mapping[str, Any]) -> Policy:
        """Replace the policy (admins only). Accepts TOML/YAML/JSON text, a file path, or a
        dict; the whole document is validated and every mistake is listed."""
        document = governance.load_policy_document(policy)
        parsed = parse_policy(document)

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]]:
            governance.require_admin(state, self.user, "change the policy")
            return None, {"policy": document}

        self.ledger.record("set_policy", None, build)
        return parsed

    def grant_role(self, user: str, role: str) -> None:
        """Give ``user`` a role of the policy (admins only; granting a held role is a no-op)."""
        self._role_change("grant_role", user, role)

    def revoke_role(self, user: str, role: str) -> None:
        """Take a role from ``user`` (admins only; the last admin stays)."""
        self._role_change("revoke_role", user, role)

    def _role_change(self, action: str, user: str, role: str) -> None:
        who = validate.user_name(user)
        self.ledger.commit(action, None,
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

        self.ledger.record("register_key", None, build)
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
        seen = self.ledger.current().model(name).holder(to)
        request_id = uuid.uuid4().hex
        measured = self._measured(name, number, to)
        self.ledger.record("request_promotion", name, lambda s: governance.request(
            s, self.user, name=name, number=number, to=to, comment=comment,
            emergency=bool(emergency), request_id=request_id, seen_holder=seen,
            measured=measured))
        return self.ledger.current().requests[request_id]

    def approve(self, name: str, version: int | str, *, comment: str = "",
                to: str | None = None, signing_key: Any = None) -> PromotionRequest:
        """Approve the open request for this version.

        The approval that completes the quorum promotes it, after re-checking the
        transition, every earlier approver's standing and every gate against the policy in
        force now. ``signing_key`` (an Ed25519 private key) is required once you registered
        a public key; ``to`` picks the request when there are several."""
        name, number = validate.model_name(name), validate.version_number(version)
        comment = validate.text(comment, what="comment")
        measured = self._measured_for_approval(name, number, to)
        event = self.ledger.record("approve", name, lambda s: governance.approve(
            s, self.user, name=name, number=number, to=to, comment=comment, measured=measured),
            signing_key=None if signing_key is None else signing.private_key(signing_key))
        return self.ledger.current().requests[event.payload["request_id"]]

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
        event = self.ledger.record(action, name, lambda s: governance.close(
            s, self.user, action, name=name, number=number, to=to, comment=comment))
        return self.ledger.current().requests[event.payload["request_id"]]

    def rollback(self, name: str, *, stage: str, reason: str = "") -> ModelVersion:
        """Return ``stage`` to the version that held it before the current one (which must
        still pass the stage's gates)."""
        name = validate.model_name(name)
        reason = validate.text(reason, what="reason")
        event = self.ledger.record("rollback", name, lambda s: governance.rollback(
            s, self.user, name=name, stage=stage, reason=reason))
        assert event.version is not None
        return self.ledger.current().models[name].view(event.version)

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
        event = self.ledger.record("flag_data", None, lambda s: governance.flag_data(
            s, uri=uri, version=version, reason=reason))
        state = self.ledger.current()
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
        return self.ledger.record("deploy", name, lambda s: governance.deploy(
            s, name=name, number=number, target=target, stage=stage, sha256=sha256,
            comment=comment))

    def check_gates(self, name: str, version: int | str, to: str) -> list[GateResult]:
        """Every gate of stage ``to`` for this version, pass or fail, with evidence, including
        the gates measured on monitoring data."""
        found = super().check_gates(name, version, to)
        return [*found, *self._measured(validate.model_name(name),
                                        validate.version_number(version), to)]

    def _measured(self, name: str, number: int, to: str) -> list[GateResult]:
        """The stage's gates measured on monitoring data (they read; they never write)."""
        if not self.ledger.current().policy.rules(to).monitoring:
            return []
        return monitoring_gates.evaluate(self.monitor(name), number, to)

    def _measured_for_approval(self, name: str, number: int, to: str | None
                               ) -> list[GateResult]:
        """The measured gates of the request being approved (none to measure: no lookup)."""
        state = self.ledger.current()
        if not any(rules.monitoring for rules in state.policy.stage_rules.values()):
            return []
        pending = governance.find_request(state, name, number, to, for_approval=True)
        return self._measured(name, number, pending.to)

    def record_report(self, template: str, *, model: str, version: int | str,
                      parameters: Mapping[str, Any], tables: Mapping[str, int],
                      head: Sequence[Any], outputs: Mapping[str, str], sha256: str,
                      output_dir: str, template_sha256: str,
                      provenance: Mapping[str, Any] | None = None,
                      show_code: bool = False) -> Event:
        """Record a compliance report run (``nbr.run_report`` does): its parameters, the
        Delta version of every table it read, the head it saw, its outputs' sha256 (each
        already in the artifact store), the template's sha256 (a shipped template or one
        registered in the policy) and who ran it with what. Needs a reporting role."""
        name, number = validate.model_name(model), validate.version_number(version)
        payload = governance.report(template, parameters=parameters, tables=tables, head=head,
                                    outputs=outputs, sha256=sha256, output_dir=output_dir,
                                    template_sha256=template_sha256, provenance=provenance,
                                    show_code=show_code)
        missing = [f for f, digest in payload["outputs"].items()
                   if not self.ledger.blobs.exists(digest)]
        if missing:
            raise InvalidInputError(f"store the outputs first (reg.ledger.blobs.put): "
                                    f"{', '.join(missing)} not in the artifact store",
                                    field="outputs")
        return self.ledger.record("report", name, lambda s: (
            _existing(s, name, number), governance.record_report(s, self.user, payload)))

    def ratify(self, name: str, seq: int, *, comment: str) -> Event:
        """Accept an automatic action a monitoring check recorded (an automatic rollback or
        a retraining request, event ``seq``): the SOX report lists it as a change needing
        ratification until an approver of the stage (not who ran the check) does this."""
        name = validate.model_name(name)
        target = self.event(seq)
        return self.ledger.record("comment", name, lambda s: governance.ratify(
            s, self.user, name=name, event=target, comment=comment))

    def monitor(self, name: str, *, engine: Any = None) -> Monitor:
        """Monitoring for model ``name``: log predictions and outcomes, then ask for drift,
        performance, fairness, a challenger replay, or run the policy's ``check()``.

        ``engine`` runs the questions' heavy pass: ``None``/``"duckdb"`` in this process
        (default; ``$NBREGISTRY_ENGINE`` overrides), a Spark Connect URL
        (``"sc://host:15002"``) or a ``SparkSession`` (Spark, Databricks Connect)."""
        name = validate.model_name(name)
        self.get(name)  # an unknown model is a NotFoundError now, not later
        tables = monitoring_tables(self.ledger.location, name)
        return Monitor(self, name, tables=tables, source=LiveSource(tables),
                       writes=MonitoringEvents(self.ledger), engine=engine)

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
        head = expected_head or (self.ledger.state.seq, self.ledger.state.head_hash)
        where = (self.ledger.witness if witness is None
                 else witnesses.location(witness, witness_storage_options))
        return verify_log(self.ledger.location, artifacts=artifacts, expected_head=head,
                          trusted_keys=trusted_keys, witness=where, progress=progress)

    def as_of(self, when: str | datetime | date) -> RegistryView:
        """A read-only view of the registry as it was at ``when`` (ISO text, a datetime or a
        date; UTC if no zone is given): what existed, who held which stage and role."""
        moment = parse_time(when)
        # The log's time is non-decreasing, so the past is a prefix; a backdated event (a
        # bad clock, or forged) ends the prefix rather than breaking the fold.
        past = fold(RegistryState(), itertools.takewhile(lambda e: e.ts <= moment,
                                                         self.ledger.current().all_events()))
        return RegistryView(self.ledger.location, past, self.user, blobs=self.ledger.blobs)


    def at(self, head: tuple[int, str] | Sequence[Any]) -> RegistryView:
        """A read-only view of the registry as it was just after event ``seq`` of ``head =
        (seq, hash)`` (a head a report printed, or a ticket recorded), refused with an
        ``IntegrityError`` when the log no longer has that event with that hash."""
        seq, digest = int(head[0]), str(head[1])
        events = self.ledger.current().all_events()
        if not 1 <= seq <= len(events):
            raise IntegrityError(f"the log has {len(events)} events, fewer than the head seq "
                                 f"{seq}: it was cut. Run nbregistry verify.",
                                 problems=[f"missing event {seq}"])
        if events[seq - 1].hash != digest:
            raise IntegrityError(f"event {seq} no longer has the hash {digest[:12]}… that "
                                 "was recorded: the log was rewritten. Run nbregistry verify.",
                                 problems=[f"event {seq} hash changed"])
        state = fold(RegistryState(), events[:seq])
        return RegistryView(self.ledger.location, state, self.user, blobs=self.ledger.blobs)


def reopen(uri: str, user: str, storage_options: dict[str, str], max_staleness: float,
           witness: str | None = None, witness_options: dict[str, str] | None = None
           ) -> Registry:
    """What an unpickled ``Registry`` is: the same registry opened again in this process."""
    return Registry(Location.parse(uri, storage_options or None), user,
                    max_staleness=max_staleness, create=False,
                    witness=None if witness is None else witnesses.location(
                        witness, witness_options))


def _existing(state: RegistryState, name: str, number: int) -> int:
    state.model(name).require(number)
    return number
