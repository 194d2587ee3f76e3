"""Canonical JSON and the event hash: the byte-exact rules the audit chain depends on."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

GENESIS_HASH = "0" * 64
# One encoder for all calls: json.dumps builds a new one per call when given options, which
# was half the cost of checking the chain when a registry opens.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def canonical_json(value: Any) -> str:
    """Serialize deterministically: sorted keys, no spaces, UTF-8, no NaN/inf."""
    return _ENCODER.encode(value)


def event_hash(prev_hash: str, seq: int, event_id: str, ts: str, actor: str, action: str,
               model: str | None, version: int | None, payload: str) -> str:
    """sha256 over a JSON array of the previous hash and the row's fields, a newline, then the
    payload (already canonical JSON). The array cannot contain a raw newline, so the split is
    unambiguous, and the payload is hashed as stored instead of being escaped again."""
    header = _ENCODER.encode([prev_hash, seq, event_id, ts, actor, action, model, version])
    return hashlib.sha256(f"{header}\n{payload}".encode()).hexdigest()


def shown(value: Any) -> str:
    """``repr`` for an error message; an integer too long to print (Python refuses beyond
    4,300 digits) or to read is described instead."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def is_finite_number(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False
