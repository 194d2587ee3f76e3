"""Readable tables on a terminal: short hashes and times, no empty columns, as wide as the
window. Everything left out here is in ``--json``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GAP = "  "
MIN_FLEX = 12
HIDDEN = ("signature", "key_fingerprint")


@dataclass(frozen=True)
class Column:
    """``keep``: the column that gives way last; ``flex``: shortened before any is dropped."""

    key: str
    title: str
    right: bool = False
    flex: bool = False
    keep: int = 0


def width() -> int:
    """The terminal's width ($COLUMNS wins; 120 when the output is not a terminal)."""
    return shutil.get_terminal_size((120, 24)).columns


def render(columns: Sequence[Column], rows: Sequence[dict[str, str]], total: int) -> str:
    """Rows as aligned text at most ``total`` characters wide: empty columns go, flexible
    ones are shortened, then the least important ones are dropped (and named)."""
    shown = [c for c in columns if any(row.get(c.key) for row in rows)]
    natural = {c.key: max(len(c.title), *(len(row.get(c.key, "")) for row in rows))
               for c in shown}
    sizes = {c.key: min(natural[c.key], max(MIN_FLEX, len(c.title))) if c.flex
             else natural[c.key] for c in shown}
    dropped: list[str] = []

    def span() -> int:
        return sum(sizes[c.key] for c in shown) + len(GAP) * (len(shown) - 1)

    while span() > total and len(shown) > 1:
        victim = min(reversed(shown), key=lambda c: c.keep)
        shown.remove(victim)
        dropped.append(victim.title)
    for c in (c for c in shown if c.flex):  # what is left of the width goes to them
        sizes[c.key] = min(natural[c.key], sizes[c.key] + max(0, total - span()))
    lines = [_line([(c, c.title) for c in shown], sizes),
             _line([(c, "-" * sizes[c.key]) for c in shown], sizes)]
    lines += [_line([(c, row.get(c.key, "")) for c in shown], sizes) for row in rows]
    if dropped:
        import textwrap

        lines += textwrap.wrap(f"(too narrow for {', '.join(dropped)}: widen the terminal or "
                               "use --json)", max(total, 20))
    return "\n".join(lines)


def _line(cells: list[tuple[Column, str]], sizes: dict[str, int]) -> str:
    parts = []
    for column, text in cells:
        size, text = sizes[column.key], clean(text)
        text = text if len(text) <= size else text[:size - 1] + "…"
        parts.append(text.rjust(size) if column.right else text.ljust(size))
    return GAP.join(parts).rstrip()


def clean(text: str) -> str:
    """Control characters shown as "?": a payload written straight into storage must not
    move the cursor or recolour an auditor's terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else " " if ch in "\t\n\r" else "?" for ch in text)


def when(value: datetime | None, *, seconds: bool = True) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def number(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def short_hash(value: str | None) -> str:
    return "" if not value else value[:12]


def summary(payload_json: str) -> str:
    """An event's payload in one line: small values as they are, large ones elided."""
    payload = json.loads(payload_json)
    parts = ["signed"] if "signature" in payload else []
    for key, value in payload.items():
        if key not in HIDDEN:
            parts.append(f"{key}={_value(value)}")
    return " ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, str):
        if len(value) == 64 and all(ch in "0123456789abcdef" for ch in value):
            return value[:12] + "…"  # a sha256: the prefix identifies it
        return value if len(value) <= 40 else value[:39] + "…"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= 40:
        return text
    return "{…}" if isinstance(value, dict) else "[…]" if isinstance(value, list) else text
