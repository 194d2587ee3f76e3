"""``nbr.reverify``: re-run a recorded report pinned to the registry head and the Delta
versions it read, and say figure by figure whether its key figures are unchanged and file
by file whether its outputs still hash to what the event recorded."""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..domain.entities import Event
from ..domain.errors import InvalidInputError, NbRegistryError, NotFoundError
from ..store.blobs import file_sha256
from . import params
from .execute import kernel_env
from .run import Report, collect, produce
from .templates import template_path

REL_TOL = 1e-9  # DuckDB may sum in another order: the last bits of a float can move


@dataclass(frozen=True)
class ReverifyResult:
    """Figure by figure and file by file: what the report said then and what it says now."""

    seq: int
    template: str
    figures: list[dict[str, Any]]     # figure, recorded, now, unchanged
    files: list[dict[str, Any]]       # file, recorded_sha256, sha256, status
    tables: dict[str, int] = field(default_factory=dict)
    rerun: Report | None = None
    error: str | None = None

    @property
    def figures_unchanged(self) -> bool:
        return self.error is None and all(f["unchanged"] for f in self.figures)

    @property
    def files_unchanged(self) -> bool:
        return all(f["status"] == "unchanged" for f in self.files)

    @property
    def ok(self) -> bool:
        return self.figures_unchanged and self.files_unchanged

    def __bool__(self) -> bool:
        return self.ok

    def changed(self) -> list[str]:
        """Names of the figures and files that differ."""
        return ([f["figure"] for f in self.figures if not f["unchanged"]]
                + [f["file"] for f in self.files if f["status"] != "unchanged"])

    def __repr__(self) -> str:
        state = "OK" if self.ok else "CHANGED"
        lines = [f"<ReverifyResult {state}: {self.template} report of event {self.seq}>"]
        if self.error:
            lines.append(f"  re-run failed: {self.error}")
        lines += [f"  {'same' if f['unchanged'] else 'DIFF'} {f['figure']}: {f['recorded']!r}"
                  f" -> {f['now']!r}" for f in self.figures]
        lines += [f"  {f['status']:9} {f['file']}" for f in self.files]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        color = "#1a7f37" if self.ok else "#cf222e"
        cell = "style='padding:2px 8px;border-bottom:1px solid #eaeef2;text-align:left'"
        figures = "".join(
            f"<tr><td {cell}>{esc(f['figure'])}</td><td {cell}>{esc(repr(f['recorded']))}</td>"
            f"<td {cell}>{esc(repr(f['now']))}</td><td {cell}>"
            f"{'✔' if f['unchanged'] else '✘ changed'}</td></tr>" for f in self.figures)
        files = "".join(f"<li>{'✔' if f['status'] == 'unchanged' else '✘'} "
                        f"<code>{esc(f['file'])}</code> {esc(f['status'])}</li>"
                        for f in self.files)
        error = f"<div style='color:#cf222e'>{esc(self.error)}</div>" if self.error else ""
        return (f"<div style='font-family:sans-serif;font-size:12px'><b style='color:{color}'>"
                f"{'Unchanged' if self.ok else 'CHANGED'}</b>: {esc(self.template)} report of "
                f"event {self.seq}{error}<table><tr><th {cell}>figure</th><th {cell}>recorded"
                f"</th><th {cell}>now</th><th {cell}></th></tr>{figures}</table><ul>{files}"
                "</ul></div>")


def reverify(report: Report | Event | int, *, uri: str | os.PathLike[str] | None = None,
             storage_options: Mapping[str, str] | None = None, user: str | None = None,
             output_dir: str | os.PathLike[str] | None = None,
             progress: bool = True) -> ReverifyResult:
    """Re-run a recorded report against what it read and compare.

    Parameters
    ----------
    report : Report, Event or int
        What ``run_report`` returned, its ``report`` event, or that event's seq.
    uri, storage_options, user
        The registry (a ``Report`` knows its own).
    output_dir : str or path, optional
        Where the re-run writes (default: a temporary folder); nothing is recorded.
    """
    from ..registry import open_registry

    if isinstance(report, Report):
        if report.event is None:
            raise InvalidInputError("this report was not recorded (a re-run): pass the "
                                    "original report or its event", field="report")
        uri = uri or report.registry_uri
    reg = open_registry(uri, user, storage_options=storage_options, create=False)
    event = _event(reg, report)
    p = event.payload
    files = check_files(reg, p)
    recorded = _recorded_figures(reg, p)
    folder = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(
        prefix=f"nbregistry-reverify-{event.seq}-"))
    folder.mkdir(parents=True, exist_ok=True)
    rerun, error = None, None
    try:
        path = template_path(p["template"])
        values = params.validate(path, p["parameters"])
        with kernel_env(user=reg.user, storage_options=storage_options):
            rerun = produce(path, values, folder, reg=reg, progress=progress, pdf=False,
                            show_code=False, pin={"head": p["head"], "tables": p["tables"]})
    except NbRegistryError as exc:
        error = str(exc)
    now = rerun.figures if rerun is not None else {}
    figures = [{"figure": name, "recorded": recorded.get(name), "now": now.get(name),
                "unchanged": name in recorded and name in now
                and same(recorded[name], now[name])}
               for name in dict.fromkeys([*recorded, *now])]
    return ReverifyResult(event.seq, p["template"], figures, files, dict(p["tables"]),
                          rerun, error)


def _event(reg: Any, report: Report | Event | int) -> Event:
    if isinstance(report, Report):
        assert report.event is not None
        seq = report.event.seq
    elif isinstance(report, Event):
        seq = report.seq
    elif isinstance(report, int) and not isinstance(report, bool):
        seq = report
    else:
        raise InvalidInputError("report must be a Report, its event or the event's seq",
                                field="report", value=report)
    try:
        found: Event = reg.event(seq)
    except NotFoundError:
        found = None  # type: ignore[assignment]
    if found is None or found.action != "report":
        raise NotFoundError(f"event {seq} is not a report event of {reg.uri}", ref=str(seq))
    if isinstance(report, Event | Report):
        original = report if isinstance(report, Event) else report.event
        assert original is not None
        if original.hash != found.hash:
            raise InvalidInputError(f"event {seq} of {reg.uri} is not this report's event "
                                    "(another registry, or the log was rewritten)",
                                    field="report")
    return found


def check_files(reg: Any, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each output file as written then: unchanged, modified or missing (and whether the
    registry's copy of it is intact)."""
    rows = []
    for name, recorded in payload["outputs"].items():
        path = Path(payload["output_dir"]) / name
        now = file_sha256(path) if path.is_file() else None
        status = "missing" if now is None else "unchanged" if now == recorded else "modified"
        rows.append({"file": str(path), "recorded_sha256": recorded, "sha256": now,
                     "status": status, "stored_copy": reg.ledger.blobs.exists(recorded)})
    return rows


def _recorded_figures(reg: Any, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of the notebook as recorded: the registry's copy (checked by hash)."""
    import nbformat

    digest = payload["sha256"]
    try:
        data = reg.artifact(digest)
    except NbRegistryError:
        notebook = next((n for n, s in payload["outputs"].items() if s == digest), None)
        path = Path(payload["output_dir"]) / (notebook or "")
        if notebook is None or not path.is_file() or file_sha256(path) != digest:
            return {}
        data = path.read_bytes()
    notebook_node = nbformat.reads(data.decode(), as_version=4)  # type: ignore[no-untyped-call]
    figures: dict[str, Any] = collect(notebook_node, payload["template"])["figures"]
    return figures


def same(a: Any, b: Any) -> bool:
    """Equal, with floats compared to a relative 1e-9."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)
