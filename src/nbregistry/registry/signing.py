"""Signed approvals (Ed25519). An unsigned log proves *which account* acted, as far as the
storage's access control can be trusted; a signature proves the holder of a private key
approved this exact request at this exact place in the chain."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from ..domain.canonical import canonical_json
from ..domain.entities import Event, Problem
from ..domain.errors import InvalidInputError, PolicyViolationError
from .state import RegistryState


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


def _private_key(key: Any) -> Any:
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


def message(*, actor: str, model: str | None, version: int | None, request_id: str,
            comment: str, seq: int, prev_hash: str) -> bytes:
    return canonical_json({"action": "approve", "actor": actor, "model": model,
                           "version": version, "request_id": request_id, "comment": comment,
                           "seq": seq, "prev_hash": prev_hash}).encode()


def sign_into(payload: dict[str, Any], state: RegistryState, user: str, model: str,
              version: int, signing_key: Any) -> None:
    keys = state.keys.get(user)
    if not keys:
        if signing_key is not None:
            raise InvalidInputError("register your public key first with "
                                    "reg.register_key(public_pem)", field="signing_key")
        return
    if signing_key is None:
        raise PolicyViolationError(f"{user!r} registered a signing key, so their approvals must "
                                   "be signed: pass signing_key=...", rule="signature")
    key = _private_key(signing_key)
    pem, fingerprint = public_key_pem(key.public_key())
    if pem != keys[-1][1]:
        raise PolicyViolationError("signing_key does not match your registered public key",
                                   rule="signature")
    data = message(actor=user, model=model, version=version, request_id=payload["request_id"],
                   comment=payload["comment"], seq=state.seq + 1, prev_hash=state.head_hash)
    payload["signature"] = key.sign(data).hex()
    payload["key_fingerprint"] = fingerprint


def signature_problems(events: Iterable[Event]) -> list[Problem]:
    from cryptography.exceptions import InvalidSignature

    keys: dict[str, str] = {}
    problems = []
    for event in events:
        if event.action == "register_key":
            keys[event.actor] = event.payload["public_key"]
        elif event.action == "approve":
            pem, signature = keys.get(event.actor), event.payload.get("signature")
            if pem is None:
                if signature is not None:
                    problems.append(Problem("signature", f"event {event.seq} carries a "
                                            "signature but its actor has no key", event.seq))
                continue
            if signature is None:
                problems.append(Problem("signature", f"approval {event.seq} by {event.actor} "
                                        "is unsigned although they registered a key", event.seq))
                continue
            data = message(actor=event.actor, model=event.model, version=event.version,
                           request_id=event.payload["request_id"],
                           comment=event.payload.get("comment", ""), seq=event.seq,
                           prev_hash=event.prev_hash)
            try:
                _serialization().load_pem_public_key(pem.encode()).verify(
                    bytes.fromhex(signature), data)
            except (InvalidSignature, ValueError):
                problems.append(Problem("signature", f"approval {event.seq} by {event.actor} "
                                        "has an invalid signature", event.seq))
    return problems
