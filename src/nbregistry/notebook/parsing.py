"""Turn the short text people type in magics into the arguments the registry expects.

Pure functions (no IPython here) so they are shared by magics and panels and tested directly.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..domain.errors import InvalidInputError

_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|=|>|<)\s*(\S.*?)\s*$")
_HEADING = re.compile(r"^##\s+(.+?)\s*#*\s*$")


def literal(text: str) -> Any:
    """``3`` → 3, ``0.5`` → 0.5, ``[1, 2]`` → [1, 2], ``true`` → True, anything else → str."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null"}:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def pairs(items: Iterable[str], *, what: str, convert: Callable[[str], Any] = literal,
          lookup: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """``["C=0.5", "solver=lbfgs"]`` → dict. A bare word is a variable holding a mapping
    (looked up with ``lookup``), so ``--metrics scores C=1`` merges both."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if lookup is None:
                raise InvalidInputError(f"{what} entry {item!r} is not key=value", field=what)
            found = lookup(item)
            if not isinstance(found, Mapping):
                raise InvalidInputError(f"{what} variable {item!r} is a {type(found).__name__}, "
                                        "not a dict", field=what, value=item)
            out.update(found)
            continue
        if not key.strip():
            raise InvalidInputError(f"{what} entry {item!r} has no key before '='", field=what)
        try:
            out[key.strip()] = convert(value.strip())
        except InvalidInputError as exc:
            raise InvalidInputError(f"{what} {key.strip()!r}: {exc}", field=what,
                                    value=value) from None
    return out


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInputError(f"{text!r} is not a number", value=text) from None


def where(clauses: Iterable[str]) -> tuple[dict[str, float], dict[str, float]]:
    """``["auc>=0.8, ks<=0.3"]`` → (min_metrics, max_metrics). The registry's bounds are
    inclusive, so strict ``>``/``<`` are refused rather than silently widened."""
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for clause in (c for text in clauses for c in re.split(r",|\band\b", text) if c.strip()):
        match = _CLAUSE.match(clause)
        if match is None:
            raise InvalidInputError(f"cannot read the filter {clause.strip()!r}: write "
                                    "metric>=value or metric<=value, e.g. \"auc>=0.8\"",
                                    field="where", value=clause)
        metric, op, value = match.groups()
        if op in {">", "<"}:
            raise InvalidInputError(f"{clause.strip()!r}: metric bounds are inclusive, use "
                                    f"{op}= instead of {op}", field="where", value=clause)
        bound = number(value)
        if op in {">=", "=", "=="}:
            low[metric] = max(bound, low.get(metric, bound))
        if op in {"<=", "=", "=="}:
            high[metric] = min(bound, high.get(metric, bound))
    return low, high


def card_key(heading: str) -> str:
    """"Intended use" → ``intended_use``; "Ethical considerations & risks" →
    ``ethical_considerations_risks``."""
    key = re.sub(r"[^0-9a-z]+", "_", heading.strip().lower()).strip("_")
    if not key:
        raise InvalidInputError(f"the heading {heading!r} has no letters to name a card field",
                                field="card", value=heading)
    return key


def model_card(markdown: str) -> dict[str, str]:
    """Split a markdown body at ``## Heading`` lines into card fields. Text before the first
    heading (minus a ``# Title`` line) becomes ``summary``; deeper headings stay in the body."""
    card: dict[str, str] = {}
    key, lines = "summary", list[str]()
    for line in markdown.splitlines():
        match = _HEADING.match(line)
        if match:
            _store(card, key, lines)
            key, lines = card_key(match.group(1)), []
        elif not (key == "summary" and not lines and line.startswith("# ")):
            lines.append(line)
    _store(card, key, lines)
    if not card:
        raise InvalidInputError("the model card is empty: write sections such as "
                                "'## Intended use' followed by text", field="card")
    return card


def _store(card: dict[str, str], key: str, lines: list[str]) -> None:
    text = "\n".join(lines).strip()
    if text:
        card[key] = f"{card[key]}\n\n{text}" if key in card else text
