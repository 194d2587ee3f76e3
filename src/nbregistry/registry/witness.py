"""Witnessed heads: the chain's (seq, hash) published where the registry's writers can't
rewrite it.

The hash chain has no secret: whoever can write the registry can recompute every hash after
an edit, or cut the tail. A witness is a second location (a folder or bucket meant to sit
under S3 Object Lock / WORM retention, writable by nbregistry but not deletable or
overwritable by anyone) to which heads are published with put-if-absent: on every approval,
promotion, rollback and deployment, and at least every ``WITNESS_EVERY`` events. ``verify``
then proves the log still has every published head, so a rewrite or a cut made before the
last published head is detected.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

from ..domain.canonical import canonical_json
from ..domain.entities import Event, Problem
from ..domain.errors import NbRegistryError
from ..domain.timefmt import ts_text
from ..store import Location

WITNESS_EVERY = 100
WITNESSED_ACTIONS = frozenset({"approve", "request_promotion", "rollback", "deploy",
                               "grant_role", "revoke_role", "register_key", "set_policy"})
log = logging.getLogger("nbregistry")


def location(uri: str | os.PathLike[str], storage_options: Mapping[str, str] | None
             ) -> Location:
    """The witness; on S3 its PUTs carry a SHA-256 checksum, which Object Lock requires."""
    options = dict(storage_options or {})
    if str(uri).startswith(("s3://", "s3a://")):
        options.setdefault("AWS_CHECKSUM_ALGORITHM", "SHA256")
    return Location.parse(uri, options)


def prefix(registry_id: str) -> str:
    return f"nbregistry-heads/{registry_id}"


def due(event: Event, last_published: int) -> bool:
    """Publish after governance events, and at least every WITNESS_EVERY events."""
    return (event.action in WITNESSED_ACTIONS or "promotion" in event.payload
            or event.seq - last_published >= WITNESS_EVERY)


def publish(witness: Location, registry_id: str, event: Event, uri: str) -> bool:
    """Write the head after ``event``; a failure is logged (the event is already committed,
    and the next publication covers it, since every head vouches for the chain before it)."""
    record = {"seq": event.seq, "hash": event.hash, "ts": ts_text(event.ts),
              "action": event.action, "actor": event.actor, "registry": uri}
    key = f"{prefix(registry_id)}/{event.seq:020d}.json"
    try:
        witness.put_if_absent(key, canonical_json(record).encode())
    except NbRegistryError as exc:
        log.warning("could not publish the head %s:%s to the witness %s: %s", event.seq,
                    event.hash[:12], witness.uri, exc)
        return False
    return True


def check(witness: Location, registry_id: str, hashes: Mapping[int, str]) -> list[Problem]:
    """Every head published for this registry must still be in the log, unchanged."""
    problems = []
    records = witness.list(prefix(registry_id))
    if not records:
        return [Problem("witness", f"the witness {witness.uri} has no heads for this registry "
                        f"(id {registry_id[:12]}…): nothing was published, or the log was "
                        "replaced by another one")]
    top = max(hashes, default=0)
    for key, _, _ in sorted(records):
        try:
            record = json.loads(witness.read_bytes(key))
            seq, digest = int(record["seq"]), str(record["hash"])
        except (ValueError, KeyError, TypeError, FileNotFoundError) as exc:
            problems.append(Problem("witness", f"witness record {key} is unreadable: {exc}"))
            continue
        if seq > top:
            problems.append(Problem("witness", f"the witness saw event {seq} "
                                    f"({digest[:12]}…) but the log ends at {top}: its tail "
                                    "was cut", seq))
        elif hashes.get(seq) != digest:
            problems.append(Problem("witness", f"event {seq} no longer has the hash "
                                    f"{digest[:12]}… the witness recorded: the log was "
                                    "rewritten", seq))
    return problems
