"""Used inside report templates: open the pinned registry, show tables and charts, and
record the key figures (which ``nbr.reverify`` compares) in the notebook's output.

Everything here returns or shows plain HTML with inline styles, SVG charts and JSON
payloads under nbregistry's own MIME types, so the executed notebook reads the same in
JupyterLab, in static HTML and years later without a network.
"""

from __future__ import annotations

import builtins
import html
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..domain.html import BAD, INFO, MUTED, OK, WARN
from .context import ReportContext
from .context import open_report as _open

# Templates import this first, in the report's kernel. altair imports jsonschema, which
# imports rfc3987_syntax when it is installed, and that compiles a grammar for about a second;
# a report never validates IRIs, so its kernel does without it (ImportError: jsonschema's own
# fallback).
if "rfc3987_syntax" not in sys.modules:
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]

FIGURES_MIME = "application/vnd.nbregistry.figures+json"
HEAD_MIME = "application/vnd.nbregistry.head+json"
TABLES_MIME = "application/vnd.nbregistry.tables+json"
PROVENANCE_MIME = "application/vnd.nbregistry.provenance+json"
CELL = "style='padding:3px 8px;border-bottom:1px solid #d0d7de;text-align:left'"
RAG = {"ok": (OK, "GREEN"), "warn": (WARN, "AMBER"), "alert": (BAD, "RED"),
       "insufficient": (MUTED, "N/A"), "unknown": (MUTED, "N/A")}


class Output:
    """A displayable bundle (``display(Output(...))`` or the last expression of a cell)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return self.data

    def __repr__(self) -> str:
        return str(self.data.get("text/plain", ""))


def show(*items: Any) -> None:
    """Display in a kernel (IPython puts ``display`` in builtins), print elsewhere."""
    display = getattr(builtins, "display", None)
    for item in items:
        if display is not None:
            display(item)
        else:
            print(repr(item))


def open_report(registry_uri: str | None, pin: Mapping[str, Any] | None = None,
                *, title: str = "") -> ReportContext:
    """Open the registry this report reads and print the head it sees (write it down:
    ``nbregistry verify --expected-head SEQ:HASH`` detects a log cut after this report)."""
    context = _open(registry_uri, pin)
    show(head_banner(context, title), provenance(context))
    return context


def provenance(context: ReportContext) -> Output:
    """Who ran the report, when, with which nbregistry and template (its sha256), and the
    monitoring baseline the version is watched against (recorded in the report event)."""
    found = context.provenance()
    baseline = found["baseline"]
    rows = [("run by", found["by"]), ("started (UTC)", found["started"]),
            ("nbregistry", found["nbregistry"]),
            ("template", f"{found['template']} sha256 {found['template_sha256'] or '—'}"),
            ("monitoring baseline", "none frozen for this version" if baseline is None else
             f"reference data sha256 {baseline['reference'] or '—'} (baseline "
             f"{baseline['sha256']}, frozen at event {baseline['seq']})")]
    body = "".join(f"<tr><td {CELL}>{html.escape(k)}</td><td {CELL}><code>{html.escape(str(v))}"
                   f"</code></td></tr>" for k, v in rows)
    return Output({"text/plain": "\n".join(f"{k}: {v}" for k, v in rows),
                   "text/html": f"<table style='border-collapse:collapse;font-size:12px'>"
                                f"{body}</table>", PROVENANCE_MIME: found})


def head_banner(context: ReportContext, title: str = "") -> Output:
    seq, digest = context.head
    text = (f"Registry {context.live.uri}, head seq {seq} hash {digest}. To check later that "
            f"the audit log was not cut or rewritten: nbregistry verify --expected-head "
            f"{seq}:{digest}")
    body = (f"<div style='border:1px solid #d0d7de;padding:6px 10px;font-size:12px'>"
            f"{f'<b>{html.escape(title)}</b><br>' if title else ''}"
            f"Registry <code>{html.escape(context.live.uri)}</code> read at head "
            f"<b>seq {seq}</b>, hash <code>{html.escape(digest)}</code>.<br>To prove later "
            f"that the audit log was not cut or rewritten: <code>nbregistry verify "
            f"--expected-head {seq}:{html.escape(digest)}</code></div>")
    return Output({"text/plain": text, "text/html": body,
                   HEAD_MIME: {"seq": seq, "hash": digest}})


def plain(value: Any) -> Any:
    """A JSON value for a figure: numpy scalars become Python numbers, NaN becomes None."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def figures(values: Mapping[str, Any], *, caption: str = "Key figures") -> Output:
    """Key figures, shown as a table and recorded for ``reverify``."""
    recorded = {str(k): plain(v) for k, v in values.items()}
    json.dumps(recorded)  # fail here, in the cell that made it, if a value is not JSON
    rows = [{"figure": k, "value": _fmt(v)} for k, v in recorded.items()]
    out = table(rows, caption=caption)
    return Output({**out.data, FIGURES_MIME: recorded})


def record_figure(name: str, value: Any) -> None:
    """Record one key figure (and show it)."""
    show(figures({name: value}, caption=""))


def record_figures(values: Mapping[str, Any], *, caption: str = "Key figures") -> None:
    show(figures(values, caption=caption))


def tables_read(context: ReportContext) -> Output:
    """The Delta version of every table this report read (recorded in its event)."""
    rows = [{"table": k, "Delta version": v} for k, v in sorted(context.tables.items())]
    out = table(rows, caption="Tables read (Delta versions)")
    return Output({**out.data, TABLES_MIME: dict(sorted(context.tables.items()))})


def close(context: ReportContext) -> None:
    """The report's last cell: the tables read and the head, once more."""
    show(tables_read(context), head_banner(context))


def table(rows: Any, *, columns: Sequence[str] | None = None, caption: str = "",
          max_rows: int = 500) -> Output:
    """Rows (dicts, an Arrow table or a DataFrame) as a plain HTML table."""
    records = _records(rows)
    cols = list(columns) if columns else list(dict.fromkeys(k for r in records for k in r))
    head = "".join(f"<th {CELL}>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td {CELL}>{_cell(r.get(c))}</td>" for c in cols)
                   + "</tr>" for r in records[:max_rows])
    more = (f"<div style='color:{MUTED}'>… {len(records) - max_rows} more rows</div>"
            if len(records) > max_rows else "")
    cap = f"<div style='font-weight:600;margin:6px 0 2px'>{html.escape(caption)}</div>" \
        if caption else ""
    empty = f"<div style='color:{MUTED}'>(none)</div>" if not records else ""
    text = "\n".join([caption, *(" | ".join(_fmt(r.get(c)) for c in cols)
                                 for r in records[:50])])
    return Output({"text/plain": text,
                   "text/html": f"{cap}<table style='border-collapse:collapse;font-size:12px'>"
                                f"<tr>{head}</tr>{body}</table>{more}{empty}"})


def chart(spec: Any) -> Output:
    """An altair chart as inline SVG (rendered offline: no script, no CDN)."""
    from ..charts import to_svg

    return Output({"image/svg+xml": to_svg(spec), "text/plain": "<chart>"})


class Badge:
    """A red/amber/green status word for a table cell. A value, not HTML: ``table`` builds
    the coloured badge from the escaped word, so no string in a report is ever shown as
    markup (a card field or a logged value that looks like a badge stays text)."""

    def __init__(self, status: str) -> None:
        self.color, self.word = RAG.get(status, (MUTED, status.upper()))

    def __str__(self) -> str:
        return self.word

    def html(self) -> str:
        return (f"<span style='background:{self.color};color:#fff;padding:0 6px;"
                f"border-radius:3px'>{html.escape(self.word)}</span>")


def rag(status: str) -> Badge:
    """A red/amber/green badge for a monitoring status (a cell value for ``table``)."""
    return Badge(status)


def note(text: str, *, kind: str = "info") -> Output:
    color = {"info": INFO, "warn": WARN, "bad": BAD, "good": OK}[kind]
    return Output({"text/plain": text, "text/html":
                   f"<div style='border-left:4px solid {color};padding:4px 8px'>"
                   f"{html.escape(text)}</div>"})


def _records(rows: Any) -> list[dict[str, Any]]:
    if hasattr(rows, "to_pylist"):
        return list(rows.to_pylist())
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return list(rows.to_dict("records"))
    return [dict(r) for r in rows] if isinstance(rows, Iterable) else []


def _cell(value: Any) -> str:
    return value.html() if isinstance(value, Badge) else html.escape(_fmt(value))


def fmt(value: Any) -> str:
    """A value as a report shows it (4 significant digits, dates to the second)."""
    return _fmt(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat(sep=" ", timespec="seconds")) \
            if hasattr(value, "hour") else str(value.isoformat())
    if isinstance(value, list | tuple) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(_fmt(v) for v in value) or "—"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


# -- examiner-grade figures and provenance (monitoring and validation reports) ----------------

SEVERITY_COLORS = {"high": BAD, "medium": WARN, "low": INFO}


def severity(level: str) -> Badge:
    """A finding's severity (``high``/``medium``/``low``) as a coloured badge."""
    badge = Badge(level)
    badge.color, badge.word = SEVERITY_COLORS.get(level, MUTED), level.upper()
    return badge


def bootstrap_floor(n_resamples: int) -> float:
    """The smallest two-sided bootstrap p-value ``n_resamples`` can give (its resolution)."""
    return 2 / (n_resamples + 1)


def p_text(p: float | None, *, floor: float | None = None) -> str:
    """A p-value as a report prints it: at a test's resolution floor ``< floor`` (rounded
    up), below 0.0001 ``< 0.0001``, else three significant digits."""
    if p is None or p != p:
        return "—"
    if floor is not None and p <= floor * (1 + 1e-9):
        scale = 10 ** math.floor(math.log10(floor))
        return f"< {math.ceil(round(floor / scale, 9)) * scale:.1g}"
    return "< 0.0001" if p < 1e-4 else f"{p:.3g}"


def ci_text(low: float | None, high: float | None, *, digits: int = 3,
            signed: bool = False) -> str:
    """An interval as ``[low, high]`` (``—`` when there is none)."""
    if low is None or high is None:
        return "—"
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"[{format(low, spec)}, {format(high, spec)}]"


def baseline_note(baseline: Any) -> Output:
    """The monitoring baseline a report's drift figures are measured from (who ran it, when,
    with which template and nbregistry is in the provenance ``open_report`` shows)."""
    rows = [("monitoring baseline: reference data sha256", baseline.reference_sha256),
            ("monitoring baseline", baseline.describe())]
    return table([{"item": k, "value": v} for k, v in rows], caption="Baseline")
