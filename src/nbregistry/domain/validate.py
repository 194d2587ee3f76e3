"""Input validation shared by every entry point; each failure says what to do instead."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .canonical import canonical_json, shown
from .errors import InvalidInputError

MAX_NAME = 200
# The log is read by every open: big things belong in artifacts, not in events.
MAX_TEXT = 10_000           # a description, comment or reason
MAX_MAPPING_BYTES = 64_000  # params or a card, as canonical JSON
MAX_TAGS, MAX_TAG_VALUE, MAX_METRICS = 200, 1_000, 1_000
MAX_PAYLOAD_BYTES = 256_000  # any one event
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() accepts "١٢" and "²"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def model_name(name: object, *, what: str = "model name") -> str:
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} must be a string, got {type(name).__name__}",
                                field=what, value=name)
    hint = ("use letters, digits, '_', '-' and '.', starting with a letter or digit, "
            f"at most {MAX_NAME} characters (e.g. 'credit_risk')")
    if not name:
        raise InvalidInputError(f"{what} is empty: {hint}", field=what, value=name)
    if len(name) > MAX_NAME:
        raise InvalidInputError(f"{what} is {len(name)} characters long: {hint}",
                                field=what, value=name)
    if ".." in name or not _NAME.fullmatch(name):
        raise InvalidInputError(f"{what} {name!r} is not allowed: {hint}", field=what, value=name)
    return name


def alias_name(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidInputError(
            f"alias {alias!r} is not allowed: start with a letter, then letters, digits, '_' "
            "or '-', at most 64 characters (e.g. 'champion')", field="alias", value=alias)
    return alias


def version_number(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        if isinstance(version, str) and _DIGITS.fullmatch(version) and int(version) >= 1:
            return int(version)
        raise InvalidInputError(f"version must be a positive integer, got {version!r}",
                                field="version", value=version)
    return version


def json_mapping(value: Mapping[str, Any] | None, *, what: str) -> dict[str, Any]:
    """A JSON-serializable dict with string keys; returned as a plain JSON round-trip copy."""
    checked = json_mapping_keys(value, what=what)
    try:
        text = canonical_json(checked)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{what} must be JSON-serializable (str, int, float, bool, None, lists and dicts; "
            f"no NaN or infinity): {exc}. Convert the value, e.g. str(x) or float(x).",
            field=what, value=value) from exc
    size = len(text.encode())
    if size > MAX_MAPPING_BYTES:
        raise InvalidInputError(f"{what} is {size:,} bytes as JSON, over the "
                                f"{MAX_MAPPING_BYTES:,}-byte limit: keep large things (data, "
                                "reports, plots) in files or artifacts and record their path "
                                "or hash here", field=what)
    return dict(json.loads(text))


def metrics_mapping(value: Mapping[str, Any] | None) -> dict[str, float]:
    """Metrics are finite numbers. NaN and infinity are refused rather than silently stored,
    because a NaN metric passes no threshold and breaks ordering in search."""
    out: dict[str, float] = {}
    checked = json_mapping_keys(value, what="metrics")
    if len(checked) > MAX_METRICS:
        raise InvalidInputError(f"{len(checked)} metrics is over the limit of {MAX_METRICS}",
                                field="metrics")
    for key, raw in checked.items():
        number = _to_float(raw)
        if number is None or not math.isfinite(number):
            raise InvalidInputError(
                f"metric {key!r} = {shown(raw)} is not a finite number: metrics must be finite "
                "floats. Drop it, or record the reason in tags instead.", field="metrics",
                value=raw)
        out[key] = number
    return out


def tags_mapping(value: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    checked = json_mapping_keys(value, what="tags")
    if len(checked) > MAX_TAGS:
        raise InvalidInputError(f"{len(checked)} tags is over the limit of {MAX_TAGS}",
                                field="tags")
    for key, raw in checked.items():
        if not isinstance(raw, str | int | float | bool):
            raise InvalidInputError(f"tag {key!r} must be a string (or a number), got "
                                    f"{type(raw).__name__}", field="tags", value=raw)
        if len(key) > MAX_NAME or len(str(raw)) > MAX_TAG_VALUE:
            raise InvalidInputError(f"tag {key[:40]!r} is too long (keys up to {MAX_NAME}, "
                                    f"values up to {MAX_TAG_VALUE} characters); keep long text "
                                    "in the description or the card", field="tags")
        out[key] = str(raw)
    return out


def json_mapping_keys(value: Mapping[str, Any] | None, *, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a dict, got {type(value).__name__}",
                                field=what, value=value)
    for key in value:
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{what} keys must be non-empty strings, got {key!r}",
                                    field=what, value=key)
    return dict(value)


def _to_float(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond a float
        return None


def text(value: object, *, what: str, max_len: int = MAX_TEXT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}",
                                field=what, value=value)
    if len(value) > max_len:
        raise InvalidInputError(f"{what} is {len(value):,} characters, over the limit of "
                                f"{max_len:,}; put long text in a file or an artifact",
                                field=what)
    return value


def user_name(value: object, *, what: str = "user") -> str:
    """A person's account name: printable text without control characters."""
    name = text(value, what=what, max_len=200).strip()
    if not name:
        raise InvalidInputError(f"{what} is empty: name the person, e.g. 'bob'", field=what)
    if any(not ch.isprintable() for ch in name):
        raise InvalidInputError(f"{what} {name!r} contains control characters", field=what,
                                value=name)
    return name


def sha256(value: object) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise InvalidInputError(f"sha256 must be 64 hexadecimal characters, got {value!r}",
                                field="sha256", value=value)
    return value.lower()
