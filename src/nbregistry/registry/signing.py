"""Signed events (Ed25519) and how keys are enrolled.

An unsigned log proves *which account* acted only as far as the storage's access control can
be trusted. Once a user's key is enrolled, every event they write carries a signature over
the event itself (its place in the chain, time, action and payload), so it proves the holder
of the private key made it. Trust in the keys:

- a user's first key is enrolled by an admin (``register_key(pem, user=...)``); nobody can
  register a key for someone else, or squat a name, without being an admin;
- a rotation is made by the user themself, and signed with their current key, or by an admin;
- keys come from the log, so a rewritten log could swap them: ``verify(trusted_keys=...)``
  checks every signature against keys pinned outside the registry instead;
- ``load`` trusts a registrant (the policy's ``[loading] trusted_registrants``) only for a
  register event signed with their key (``registration_problem``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..domain.canonical import canonical_json
from ..domain.entities import Event, ModelVersion, Problem
from ..domain.errors import InvalidInputError, PolicyViolationError
from ..domain.timefmt import ts_text
from .state import RegistryState

SIGNATURE_FIELDS = ("signature", "key_fingerprint")


def _serialization() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


def public_key_pem(key: bytes | str | Any) -> tuple[str, str]:
    """(PEM text, fingerprint) of an Ed25519 public key given as PEM or a key object."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    ser = _serialization()
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, bytes):
        try:
            key = ser.load_pem_public_key(key)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"not a PEM public key: {exc}", field="public_key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInputError("only Ed25519 public keys are accepted; create one with "
                                "cryptography's Ed25519PrivateKey.generate()", field="public_key")
    pem = key.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo).decode()
    raw = key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return pem, hashlib.sha256(raw).hexdigest()[:16]


def private_key(key: Any) -> Any:
    """An Ed25519 private key from PEM text/bytes or a key object."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, bytes):
        try:
            key = _serialization().load_pem_private_key(key, password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"not an unencrypted PEM private key: {exc}",
                                    field="signing_key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInputError("signing_key must be an Ed25519 private key",
                                field="signing_key")
    return key


def message(event: Event | None = None, *, prev_hash: str = "", seq: int = 0,
            event_id: str = "", ts: str = "", actor: str = "", action: str = "",
            model: str | None = None, version: int | None = None,
            payload: Mapping[str, Any] | None = None) -> bytes:
    """What a signature covers: the event's place in the chain, its time, who, what, and the
    payload without the signature fields."""
    if event is not None:
        prev_hash, seq, event_id, ts = event.prev_hash, event.seq, event.event_id, ts_text(
            event.ts)
        actor, action, model, version = event.actor, event.action, event.model, event.version
        payload = event.payload
    body = {k: v for k, v in (payload or {}).items() if k not in SIGNATURE_FIELDS}
    return canonical_json(["nbregistry-event-v1", prev_hash, seq, event_id, ts, actor, action,
                           model, version, body]).encode()


def signer(state: RegistryState, user: str, key: Any) -> Any:
    """The private key ``user``'s next event must be signed with, or None when they have no
    enrolled key. Refuses a missing or wrong key."""
    keys = state.keys.get(user)
    if not keys:
        if key is not None:
            raise InvalidInputError(f"{user!r} has no enrolled public key, so there is nothing "
                                    "to check a signature against: an admin enrols it with "
                                    f"reg.register_key(public_pem, user={user!r})",
                                    field="signing_key")
        return None
    if key is None:
        raise PolicyViolationError(f"{user!r} has an enrolled signing key, so their events "
                                   "must be signed: pass signing_key=... to open_registry "
                                   "(or to approve)", rule="signature")
    key = private_key(key)
    pem, _ = public_key_pem(key.public_key())
    if pem != keys[-1][1]:
        raise PolicyViolationError(f"signing_key does not match {user!r}'s enrolled public "
                                   "key (rotate it with reg.register_key)", rule="signature")
    return key


def sign(key: Any, data: bytes) -> tuple[str, str]:
    """(signature hex, fingerprint) of ``data``."""
    _, fingerprint = public_key_pem(key.public_key())
    return key.sign(data).hex(), fingerprint


def enrolment(state: RegistryState, actor: str, user: str) -> None:
    """May ``actor`` register a key for ``user``? A first key needs an admin; a rotation
    is the user's own (signed by their current key) or an admin's."""
    if state.has_role(actor, ["admin"]):
        return
    if actor != user:
        raise PolicyViolationError(f"only an admin may register a key for {user!r}",
                                   rule="key_enrolment")
    if not state.keys.get(user):
        raise PolicyViolationError(f"{user!r} has no enrolled key yet: a first key must be "
                                   f"enrolled by an admin (reg.register_key(pem, "
                                   f"user={user!r})), so nobody can claim a name",
                                   rule="key_enrolment")


def key_at(state: RegistryState, user: str, seq: int) -> tuple[int, str] | None:
    """(enrolment seq, PEM) of the key ``user`` had enrolled when event ``seq`` was written."""
    found = None
    for enrolled, pem in state.keys.get(user, []):
        if enrolled >= seq:
            break
        found = (enrolled, pem)
    return found


def registration_problem(state: RegistryState, mv: ModelVersion) -> str | None:
    """Why the log does not prove that ``mv``'s registrant registered it, or None.

    The register event must carry a valid signature by the key the registrant had enrolled
    at that point of the log, and each enrolment that key rests on must be signed by its
    enroller's key where the enroller had one: an unsigned rotation written straight into
    storage cannot slip in a key of the attacker's. The chain ends at an enrolment by someone
    who had no key yet (an admin's, checked by the fold)."""
    from cryptography.exceptions import InvalidSignature

    event = _event(state, state.model(mv.name).versions.seqs[mv.version])
    if (event.actor, event.payload.get("sha256")) != (mv.created_by, mv.sha256):
        return f"event {event.seq} does not register this artifact by {mv.created_by}"
    if key_at(state, event.actor, event.seq) is None:
        return (f"{event.actor} had no enrolled signing key when {mv.name} v{mv.version} was "
                "registered, so nothing proves they registered it (anyone who can write the "
                "registry's storage can write an event in their name)")
    while (key := key_at(state, event.actor, event.seq)) is not None:
        signature = event.payload.get("signature")
        if signature is None or not _valid(key[1], signature, message(event), InvalidSignature):
            return (f"event {event.seq} ({event.action} by {event.actor}) is "
                    f"{'unsigned' if signature is None else 'badly signed'} although "
                    f"{event.actor} had an enrolled key (event {key[0]}): it may have been "
                    "written straight into storage; run `nbregistry verify`")
        event = _event(state, key[0])
    return None


def _event(state: RegistryState, seq: int) -> Event:
    """Event ``seq`` from the events this process folded, else from the log."""
    events = state.events
    if events and events[0].seq <= seq <= events[-1].seq:
        found = events[seq - events[0].seq]
        if found.seq == seq:
            return found
    if state.loader is not None:
        return state.loader([seq])[seq]
    return next(e for e in state.all_events() if e.seq == seq)


def signature_problems(events: Iterable[Event], *,
                       trusted_keys: Mapping[str, str | Sequence[str]] | None = None
                       ) -> list[Problem]:
    """Every event by a user with an enrolled key must carry a valid signature by that key
    (and, for users in ``trusted_keys``, by one of the keys pinned there)."""
    check = SignatureCheck(trusted_keys)
    return [problem for event in events if (problem := check(event)) is not None]


class SignatureCheck:
    """``signature_problems`` one event at a time, in seq order (keys as enrolled so far)."""

    def __init__(self, trusted_keys: Mapping[str, str | Sequence[str]] | None = None) -> None:
        from cryptography.exceptions import InvalidSignature

        self._invalid = InvalidSignature
        self._pinned = {user: {public_key_pem(k)[0]
                               for k in ([keys] if isinstance(keys, str) else keys)}
                        for user, keys in (trusted_keys or {}).items()}
        self._keys: dict[str, str] = {}

    def __call__(self, event: Event) -> Problem | None:
        problem = self._problem(event)
        if event.action == "register_key":
            self._keys[event.payload.get("user", event.actor)] = event.payload["public_key"]
        return problem

    def _problem(self, event: Event) -> Problem | None:
        pinned = self._pinned
        pem, signature = self._keys.get(event.actor), event.payload.get("signature")
        if pem is None and event.actor in pinned:
            if signature is None:
                return Problem("signature", f"event {event.seq} by {event.actor} is "
                               "unsigned, but their key is pinned", event.seq)
            pem = next(iter(pinned[event.actor]))
        if pem is not None and signature is None:
            return Problem("signature", f"event {event.seq} ({event.action}) by "
                           f"{event.actor} is unsigned although they have an enrolled key",
                           event.seq)
        if pem is None and signature is not None:
            return Problem("signature", f"event {event.seq} carries a signature but its "
                           "actor has no enrolled key", event.seq)
        if pem is not None:
            if pem not in pinned.get(event.actor, {pem}):
                return Problem("pinned_key", f"event {event.seq} by {event.actor} is signed "
                               "with a key that is not among the keys pinned for them "
                               "(swapped in the log?)", event.seq)
            if not _valid(pem, signature, message(event), self._invalid):
                return Problem("signature", f"event {event.seq} ({event.action}) by "
                               f"{event.actor} has an invalid signature", event.seq)
        return None


def _valid(pem: str, signature: Any, data: bytes, invalid: type[Exception]) -> bool:
    try:
        _serialization().load_pem_public_key(pem.encode()).verify(bytes.fromhex(signature),
                                                                  data)
    except (invalid, ValueError, TypeError):
        return False
    return True
