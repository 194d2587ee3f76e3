"""Template parameters, validated before anything runs (papermill itself only warns).

A template declares them in its cell tagged ``parameters``. ``name: int = None`` is
required; ``name: Optional[int] = None`` is optional; ``name: int = 3`` has a default. Every
mistake is reported at once, in one ``InvalidInputError``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..domain.errors import InvalidInputError

# Set by the runner, never by the caller: where the registry is, and (for reverify) the
# head and table versions to re-run against.
RESERVED = ("registry_uri", "pin")
_OPTIONAL = re.compile(r"Optional\[(\w+)\]")
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict": (dict,),
    "list": (list, tuple)}


def declared(path: Path) -> dict[str, dict[str, Any]]:
    """``{name: {"type", "required", "default", "help"}}`` from the ``parameters`` cell."""
    from ..domain.extras import require

    found = require("reports", "papermill").inspect_notebook(str(path))
    if not found:
        raise InvalidInputError(f"{path.name} has no cell tagged 'parameters': tag the cell "
                                "that holds the defaults", field="template")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in found.items():
        kind, default = str(spec["inferred_type_name"]), _literal(spec["default"])
        optional = _OPTIONAL.fullmatch(kind)
        if optional:
            kind = optional.group(1)
        elif kind == "None":  # no annotation: the default's type
            kind = type(default).__name__ if default is not None else "any"
        out[name] = {"type": kind, "required": default is None and not optional,
                     "default": default, "help": spec.get("help", "")}
    return out


def validate(path: Path, given: Mapping[str, Any], *, coerce: bool = False) -> dict[str, Any]:
    """Every parameter's value (given, else its default), or one error listing every unknown,
    missing and mistyped one. ``coerce`` converts text (from a command line) to the
    declared type first."""
    spec = declared(path)
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name in RESERVED or name not in spec:
            known = ", ".join(n for n in spec if n not in RESERVED)
            problems.append(f"unknown parameter {name!r} (the template takes: {known})")
            continue
        kind = spec[name]["type"]
        if coerce and isinstance(value, str):
            value = _coerce(value, kind)
        if value is not None and not _matches(value, kind):
            problems.append(f"{name} must be {kind}, got {type(value).__name__} {value!r}")
        values[name] = value
    for name, item in spec.items():
        if name in RESERVED or name in values:
            continue
        if item["required"]:
            problems.append(f"missing required parameter {name!r} ({item['type']})")
        else:
            values[name] = item["default"]
    if problems:
        raise InvalidInputError(f"{len(problems)} problem(s) with the parameters of "
                                f"{path.stem}: " + "; ".join(problems), field="parameters")
    json.dumps(values)  # parameters land in the event: JSON values only
    return values


def _matches(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    types = _TYPES.get(kind)
    if types is None:
        return True
    if isinstance(value, bool) and kind != "bool":
        return False
    return isinstance(value, types)


def _coerce(text: str, kind: str) -> Any:
    if kind == "str":
        return text
    if kind == "bool" and text.lower() in ("true", "false", "yes", "no", "1", "0"):
        return text.lower() in ("true", "yes", "1")
    try:
        return json.loads(text) if kind in ("dict", "list") else ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _literal(text: Any) -> Any:
    try:
        return ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        return str(text)
