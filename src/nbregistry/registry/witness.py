"""Witnessed heads: the chain's (seq, hash) published where the registry's writers can't
rewrite it.

The hash chain has no secret: whoever can write the registry can recompute every hash after
an edit, or cut the tail. A witness is a second location (a folder or bucket meant to sit
under S3 Object Lock / WORM retention, writable by nbregistry but not deletable or
overwritable by anyone) to which heads are published with put-if-absent: after every
governance event (approvals, promotions, rollbacks, deployments, roles, keys, policy),
every piece of monitoring and report evidence (seals, alerts, retraining requests, reports,
data recalls),
and at least every ``WITNESS_EVERY`` events. ``verify`` then proves the log still has every
published head, so a rewrite or a cut made before the last published head is detected, and
lists the governance events after the last published head (not witnessed yet).

Every writer may add to the witness, so a writer may also try to publish a forged head for
a seq the log has not reached. The honest writer that later commits that seq finds the
record taken: that is a tamper alarm, not a silent no-op (``WitnessConflict``).
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
                               "grant_role", "revoke_role", "register_key", "set_policy",
                               "seal", "alert", "retrain_requested", "report", "flag_data",
                               "tamper_alarm"})
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


class WitnessConflict(Exception):
    """The witness already holds another head for this seq: someone published a forged one
    (or a copy of this registry shares its witness)."""

    def __init__(self, key: str, found: Mapping[str, object], event: Event) -> None:
        super().__init__(f"the witness already holds {key} with hash "
                         f"{str(found.get('hash'))[:12]}… (by {found.get('actor')!r}) for seq "
                         f"{event.seq}, whose hash in this log is {event.hash[:12]}…")
        self.key, self.found, self.event = key, dict(found), event


def key_of(registry_id: str, seq: int) -> str:
    return f"{prefix(registry_id)}/{seq:020d}.json"


def publish(witness: Location, registry_id: str, event: Event, uri: str) -> bool:
    """Write the head after ``event``. A storage failure is logged and returns False (the
    event is already committed; the next write publishes again, and every head vouches for
    the chain before it). A record already there with another hash raises
    ``WitnessConflict``."""
    record = {"seq": event.seq, "hash": event.hash, "ts": ts_text(event.ts),
              "action": event.action, "actor": event.actor, "registry": uri}
    key = key_of(registry_id, event.seq)
    try:
        if witness.put_if_absent(key, canonical_json(record).encode()):
            return True
        found = json.loads(witness.read_bytes(key))
    except (NbRegistryError, OSError, ValueError) as exc:
        log.warning("could not publish the head %s:%s to the witness %s: %s", event.seq,
                    event.hash[:12], witness.uri, exc)
        return False
    if not isinstance(found, dict) or found.get("hash") != event.hash:
        raise WitnessConflict(key, found if isinstance(found, dict) else {}, event)
    return True  # published before (a retry): the same head


def unwitnessed(witness: Location, registry_id: str,
                governance: Mapping[int, tuple[str, str]]) -> list[Problem]:
    """Notices for the witnessed kinds of event after the last head published: not covered
    by the witness (yet): a cut of them would not be detected."""
    published = [int(key.rsplit("/", 1)[-1].split(".")[0]) for key, _, _ in
                 witness.list(prefix(registry_id)) if key.endswith(".json")]
    last = max(published, default=0)
    late = sorted(seq for seq in governance if seq > last)
    if not late:
        return []
    shown = ", ".join(f"{seq} ({governance[seq][0]} by {governance[seq][1]})"
                      for seq in late[:10]) + (f" and {len(late) - 10} more"
                                               if len(late) > 10 else "")
    return [Problem("unwitnessed", f"{len(late)} event(s) after the last head published to "
                    f"the witness (seq {last}) are not witnessed yet: {shown}; a cut of them "
                    "would go unnoticed until the next publication", late[0])]


def check(witness: Location, registry_id: str, hashes: Mapping[int, str],
          alarms: Mapping[int, int] | None = None) -> list[Problem]:
    """Every head published for this registry must still be in the log, unchanged; a head
    for which the log recorded a tamper alarm is reported as the forgery it is."""
    alarms = alarms or {}
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
        elif hashes.get(seq) != digest and seq in alarms:
            problems.append(Problem("witness", f"the witness holds a forged head for event "
                                    f"{seq} ({digest[:12]}…): the writer of event {seq} found "
                                    f"it there and recorded a tamper alarm (event "
                                    f"{alarms[seq]}); the log's event {seq} is the one "
                                    "witnessed by later heads", seq))
        elif hashes.get(seq) != digest:
            problems.append(Problem("witness", f"event {seq} no longer has the hash "
                                    f"{digest[:12]}… the witness recorded: the log was "
                                    "rewritten", seq))
    return problems
