"""The HTML look every display layer shares (notebook reprs, panels, monitoring results,
reports): inline styles only, so it reads the same with no JavaScript (nbconvert, GitHub,
VS Code, an examiner's offline copy), and every value escaped."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

FONT = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:12px"
TABLE = f"border-collapse:collapse;{FONT}"
TH = ("text-align:left;padding:3px 8px;border-bottom:2px solid #d0d7de;background:#f6f8fa;"
      "white-space:nowrap")
TD = "text-align:left;padding:2px 8px;border-bottom:1px solid #eaeef2;vertical-align:top"
OK, WARN, BAD, MUTED, INFO = "#1a7f37", "#9a6700", "#cf222e", "#57606a", "#0969da"
STAGE_COLORS = {"production": OK, "staging": WARN, "archived": MUTED, "development": INFO}
STATUS_COLORS = {"ok": OK, "warn": WARN, "alert": BAD, "insufficient": MUTED,
                 "unknown": MUTED, "info": MUTED}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """One cell's text: short, stable, never ``nan``/``None`` noise."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "—" if value != value else f"{value:.4g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) if value else "—"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               raw: frozenset[int] = frozenset()) -> str:
    """A table with inline styles; cells are escaped except the column indexes in ``raw``
    (HTML this package built from escaped text, e.g. a badge)."""
    head = "".join(f"<th style='{TH}'>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='{TD}'>{c if i in raw else esc(fmt(c))}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table style='{TABLE}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_html(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th style='{TH};background:none;border-bottom:1px solid #eaeef2'>"
                   f"{esc(k)}</th><td style='{TD}'>{esc(fmt(v))}</td></tr>" for k, v in items)
    return f"<table style='{TABLE}'>{rows}</table>" if rows else muted("none")


def badge(text: str, color: str | None = None) -> str:
    color = color or STAGE_COLORS.get(text) or STATUS_COLORS.get(text, MUTED)
    return (f"<span style='border:1px solid {color};color:{color};border-radius:10px;"
            f"padding:0 6px;font-size:11px;white-space:nowrap'>{esc(text)}</span>")


def section(title: str, body: str) -> str:
    return (f"<div style='margin:8px 0 2px 0;{FONT};font-weight:600;color:#24292f'>"
            f"{esc(title)}</div>{body}")


def message_html(text: str, *, ok: bool) -> str:
    """A one-line outcome (success or refusal) for panels and magics."""
    color = OK if ok else BAD
    return (f"<div style='border-left:4px solid {color};padding:4px 8px;{FONT};"
            f"color:{color}'>{esc(text)}</div>")


def muted(text: str) -> str:
    return f"<span style='color:{MUTED};{FONT}'>{esc(text)}</span>"


def box(title: str, body: str) -> str:
    """A titled block: a result's heading line over its content."""
    return f"<div style='{FONT}'>{title}{body}</div>"
