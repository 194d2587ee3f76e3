"""Rich display for what magics return: HTML that reads well with no JavaScript (inline
styles, no CDN: nbconvert, GitHub, VS Code) plus a cheap plain-text repr.

Helpers take duck-typed objects (``getattr``) for governance records so this module does not
depend on which entity fields exist yet.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..domain.errors import PolicyViolationError
from ..domain.html import (
    BAD,
    FONT,
    OK,
    badge,
    esc,
    fmt,
    kv_html,
    muted,
    section,
    table_html,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ..domain.entities import ModelVersion, VerifyReport
    from ..registry import RegistryView

def _text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [min(40, max([len(c)] + [len(r[i]) for r in cells])) for i, c in enumerate(columns)]
    line = "  ".join(f"{c:<{w}}" for c, w in zip(columns, widths, strict=True))
    body = ["  ".join(f"{c[:w]:<{w}}" for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line.rstrip(), *(b.rstrip() for b in body)])


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"git": {"commit": "ab"}}`` → ``{"git.commit": "ab"}`` (for lineage and diffs)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class ArrowDisplay:
    """An Arrow table shown at most ``max_rows`` rows; ``.table`` and ``.to_pandas()`` give
    all of it."""

    def __init__(self, table: pa.Table, *, max_rows: int = 200) -> None:
        self.table = table
        self.max_rows = max_rows

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def to_pandas(self) -> pd.DataFrame:
        frame: pd.DataFrame = self.table.to_pandas()
        return frame


class VersionsTable(ArrowDisplay):
    """Model versions as returned by ``reg.search`` (``.table``), displayed compactly."""

    BASE = ("name", "version", "stage", "aliases", "created_at", "created_by")

    def _columns(self) -> list[str]:
        names = self.table.column_names
        return [c for c in self.BASE if c in names] + [c for c in names
                                                        if c.startswith("metrics.")]

    def _rows(self) -> tuple[list[str], list[list[Any]]]:
        columns = self._columns()
        data = self.table.select(columns).slice(0, self.max_rows).to_pylist()
        return columns, [[row[c] for c in columns] for row in data]

    def _more(self) -> str:
        hidden = len(self) - self.max_rows
        return f"… {hidden} more versions (use .table or .to_pandas())" if hidden > 0 else ""

    def __repr__(self) -> str:
        if not len(self):
            return "<no model versions match>"
        columns, rows = self._rows()
        text = _text_table([c.removeprefix("metrics.") for c in columns], rows)
        return text + (f"\n{self._more()}" if self._more() else "")

    def _repr_html_(self) -> str:
        if not len(self):
            return muted("No model versions match.")
        columns, rows = self._rows()
        stage = columns.index("stage")
        for row in rows:
            row[stage] = badge(str(row[stage]))
        headers = [c.removeprefix("metrics.") for c in columns]
        note = f"<div>{muted(self._more())}</div>" if self._more() else ""
        return table_html(headers, rows, raw=frozenset({stage})) + note


def payload_summary(payload: Mapping[str, Any], limit: int = 120) -> str:
    """The few payload fields a reader of the history cares about (not hashes or lineage)."""
    skip = {"lineage", "sha256", "size", "features", "reference", "flavor", "signature",
            "gates", "promotion", "policy", "public_key", "card", "required", "request_id"}
    parts = [f"{k}={fmt(v)}" for k, v in payload.items()
             if k not in skip and v not in (None, "", {}, [])]
    if payload.get("card"):
        parts.append("card fields: " + ", ".join(sorted(payload["card"])))
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class HistoryTable(ArrowDisplay):
    """The audit trail (``reg.history``), newest rows last; with ``report`` from ``--verify``."""

    COLUMNS = ("seq", "ts", "actor", "action", "model", "version")

    def __init__(self, table: pa.Table, report: VerifyReport | None = None, *,
                 max_rows: int = 200) -> None:
        super().__init__(table, max_rows=max_rows)
        self.report = report

    def _rows(self) -> list[list[Any]]:
        start = max(0, len(self) - self.max_rows)
        rows = self.table.slice(start).to_pylist()
        return [[r[c] for c in self.COLUMNS] + [payload_summary(json.loads(r["payload"]))]
                for r in rows]

    def _note(self) -> str:
        hidden = len(self) - self.max_rows
        return f"showing the last {self.max_rows} of {len(self)} events" if hidden > 0 else ""

    def __repr__(self) -> str:
        text = _text_table([*self.COLUMNS, "details"], self._rows())
        head = f"{self.report!r}\n" if self.report is not None else ""
        return head + text + (f"\n{self._note()}" if self._note() else "")

    def _repr_html_(self) -> str:
        head = self.report._repr_html_() if self.report is not None else ""
        note = f"<div>{muted(self._note())}</div>" if self._note() else ""
        return head + note + table_html([*self.COLUMNS, "details"], self._rows())


def version_card_html(mv: ModelVersion, history: pa.Table | None = None) -> str:
    """Everything known about one version: the browser's detail pane."""
    aliases = " ".join(badge(f"@{a}", "#8250df") for a in mv.aliases)
    head = (f"<div style='{FONT}'><b style='font-size:14px'>{esc(mv.name)}</b> v{mv.version} "
            f"{badge(mv.stage)} {aliases}<div style='color:#57606a'>{esc(mv.description)}"
            f"</div></div>")
    card = "".join(section(k.replace("_", " ").capitalize(),
                           f"<div style='{FONT};white-space:pre-wrap'>{esc(fmt(v))}</div>")
                   for k, v in mv.card.items()) or muted("no model card yet (%%modelcard)")
    parts = [head,
             section("Metrics", kv_html(sorted(mv.metrics.items()))),
             section("Parameters", kv_html(sorted(mv.params.items()))),
             section("Tags", kv_html(sorted(mv.tags.items()))),
             section("Model card", card),
             section("Features", kv_html((f["name"], f.get("dtype")) for f in mv.features)),
             section("Lineage", kv_html(sorted(flatten(mv.lineage).items()))),
             section("Artifact", kv_html([("sha256", mv.sha256), ("size", mv.size),
                                          ("flavor", mv.flavor), ("created", mv.created_at),
                                          ("by", mv.created_by)])),
             section("Status", kv_html(sorted(mv.status.items())))]
    if history is not None:
        parts.append(section("History", HistoryTable(history)._repr_html_()))
    return "".join(parts)


def gates_html(gates: Sequence[Any]) -> str:
    """The policy's gates as a checklist: pass/fail, detail and the evidence behind it."""
    if not gates:
        return muted("The policy defines no gates for this promotion.")
    rows = [[f"<span style='color:{OK if g.passed else BAD};font-weight:600'>"
             f"{'✔ pass' if g.passed else '✘ fail'}</span>", g.gate, g.detail,
             fmt(dict(g.evidence)) if g.evidence else "—"] for g in gates]
    return table_html(["", "gate", "detail", "evidence"], rows, raw=frozenset({0}))


def registry_html(reg: RegistryView) -> str:
    seq, head = reg.head
    models = reg.models()
    names = ", ".join(esc(m) for m in models[:20]) + (" …" if len(models) > 20 else "")
    kind = "read-only view" if type(reg).__name__ == "RegistryView" else "registry"
    return (f"<div style='{FONT}'><b>nbregistry</b> {kind} <code>{esc(reg.uri)}</code> "
            f"acting as <b>{esc(reg.user)}</b><div style='color:#57606a'>{len(models)} "
            f"model(s): {names or 'none yet'}; {seq} events, head <code>{esc(head[:12])}"
            "</code></div></div>")


def describe_error(exc: BaseException) -> str:
    """One line for a registry error; a policy refusal says so up front."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"Refused by policy: {text}" if isinstance(exc, PolicyViolationError) else text


class Gates:
    """The policy's gates for one promotion, as returned by ``%promote … --check``."""

    def __init__(self, gates: Sequence[Any]) -> None:
        self.gates = list(gates)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def __repr__(self) -> str:
        if not self.gates:
            return "<no gates for this promotion>"
        return "\n".join(repr(g) for g in self.gates)

    def _repr_html_(self) -> str:
        return gates_html(self.gates)
