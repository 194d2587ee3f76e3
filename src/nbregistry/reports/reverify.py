"""``nbr.reverify``: check a report from its files, wherever they are, against its
``report`` event: each file against the sha256 the event recorded, what each page shows
against the recorded notebook (value by value, named by where it is shown), the recorded
page against the rendering of the recorded notebook, and the key figures against a re-run
of the template pinned to the registry head and the Delta versions the report read.

Only a known template is re-run: one whose sha256 the event recorded and that is shipped
with nbregistry or registered by an admin in the policy (``[reports.templates]``)."""

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
from ..domain.errors import InvalidInputError, NbRegistryError, NotFoundError, PolicyViolationError
from ..registry import reporting
from ..store.blobs import file_sha256
from . import evidence, export, params
from .evidence import Source
from .execute import kernel_env
from .helpers import FIGURES_MIME
from .run import Report, collect, produce
from .templates import template_dir

REL_TOL = 1e-9  # DuckDB may sum in another order: the last bits of a float can move


@dataclass(frozen=True)
class ReverifyResult:
    """Figure by figure and file by file: what the report said then and what it says now,
    and, value by value, where the files given show something the recorded report does
    not."""

    seq: int
    template: str
    figures: list[dict[str, Any]]     # figure, recorded, now, unchanged
    files: list[dict[str, Any]]       # file, recorded_sha256, sha256, status, stored_copy
    tables: dict[str, int] = field(default_factory=dict)
    rerun: Report | None = None
    error: str | None = None
    source: str = ""                  # where the files checked came from
    differences: list[dict[str, Any]] = field(default_factory=list)  # file, where, recorded, given
    rendering: list[dict[str, Any]] = field(default_factory=list)    # recorded page vs notebook
    template_check: str = ""          # which template was re-run, and why it may be

    @property
    def figures_unchanged(self) -> bool:
        return self.error is None and all(f["unchanged"] for f in self.figures)

    @property
    def files_unchanged(self) -> bool:
        """Every file as recorded, and the registry's copy of each intact (the copies are
        what the pages are checked against)."""
        return all(f["status"] == "unchanged" and f["stored_copy"] for f in self.files)

    @property
    def ok(self) -> bool:
        return (self.figures_unchanged and self.files_unchanged and not self.differences
                and not self.rendering)

    def __bool__(self) -> bool:
        return self.ok

    def changed(self) -> list[str]:
        """Names of the figures, files and shown values that differ."""
        return ([f["figure"] for f in self.figures if not f["unchanged"]]
                + [f["file"] for f in self.files if f["status"] != "unchanged"]
                + [f"{d['file']}: {d['where']}" for d in [*self.differences, *self.rendering]])

    def __repr__(self) -> str:
        state = "OK" if self.ok else "CHANGED"
        lines = [f"<ReverifyResult {state}: {self.template} report of event {self.seq}, "
                 f"files from {self.source}>"]
        if self.error:
            lines.append(f"  re-run failed: {self.error}")
        lines += [f"  {'same' if f['unchanged'] else 'DIFF'} {f['figure']}: {f['recorded']!r}"
                  f" -> {f['now']!r}" for f in self.figures]
        lines += [f"  {f['status']:9} {f['file']}" for f in self.files]
        lines += [f"  SHOWN    {d['file']}: {d['where']}: {d['recorded']!r} -> {d['given']!r}"
                  for d in [*self.differences, *self.rendering]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        color = "#1a7f37" if self.ok else "#cf222e"
        cell = "style='padding:2px 8px;border-bottom:1px solid #eaeef2;text-align:left'"
        figures = "".join(
            f"<tr><td {cell}>{esc(f['figure'])}</td><td {cell}>{esc(repr(f['recorded']))}</td>"
            f"<td {cell}>{esc(repr(f['now']))}</td><td {cell}>"
            f"{'✔' if f['unchanged'] else '✘ changed'}</td></tr>" for f in self.figures)
        shown = "".join(
            f"<tr><td {cell}>{esc(d['file'])}</td><td {cell}>{esc(d['where'])}</td>"
            f"<td {cell}>{esc(str(d['recorded']))}</td><td {cell}>{esc(str(d['given']))}</td>"
            "</tr>" for d in [*self.differences, *self.rendering])
        files = "".join(f"<li>{'✔' if f['status'] == 'unchanged' else '✘'} "
                        f"<code>{esc(f['file'])}</code> {esc(f['status'])}</li>"
                        for f in self.files)
        error = f"<div style='color:#cf222e'>{esc(self.error)}</div>" if self.error else ""
        return (f"<div style='font-family:sans-serif;font-size:12px'><b style='color:{color}'>"
                f"{'Unchanged' if self.ok else 'CHANGED'}</b>: {esc(self.template)} report of "
                f"event {self.seq}, files from <code>{esc(self.source)}</code>{error}<table>"
                f"<tr><th {cell}>figure</th><th {cell}>recorded</th><th {cell}>now</th>"
                f"<th {cell}></th></tr>{figures}</table><ul>{files}</ul>"
                + (f"<table><tr><th {cell}>file</th><th {cell}>where</th><th {cell}>recorded"
                   f"</th><th {cell}>shown</th></tr>{shown}</table>" if shown else "")
                + "</div>")


def reverify(report: Report | Event | int | str | os.PathLike[str], *,
             files: Source | None = None, uri: str | os.PathLike[str] | None = None,
             storage_options: Mapping[str, str] | None = None, user: str | None = None,
             output_dir: str | os.PathLike[str] | None = None,
             progress: bool = True) -> ReverifyResult:
    """Check a recorded report from its files and re-run it against what it read.

    Parameters
    ----------
    report : Report, Event, int, or a path
        What ``run_report`` returned, its ``report`` event, that event's seq, or the
        report's files themselves: a folder or a ``.zip`` (the event is found by the files'
        hashes and the head the notebook shows; the registry is ``uri``, else
        ``$NBREGISTRY_URI``, never one the files name).
    files : path, or a list of paths, optional
        The files to check (a folder, a ``.zip``, files). Default: the files given as
        ``report``, a ``Report``'s own files, else the folder recorded in the event.
    uri, storage_options, user
        The registry (a ``Report`` knows its own).
    output_dir : str or path, optional
        Where the re-run writes (default: a temporary folder); nothing is recorded.
    """
    from ..registry import open_registry

    source, given = _given(report, files)
    if isinstance(report, Report):
        if report.event is None:
            raise InvalidInputError("this report was not recorded (a re-run): pass the "
                                    "original report or its event", field="report")
        uri = uri or report.registry_uri
    if isinstance(report, str | os.PathLike) and uri is None:
        _require_named_registry(given or {})
    reg = open_registry(uri, user, storage_options=storage_options, create=False)
    if isinstance(report, str | os.PathLike):
        assert given is not None
        event = evidence.locate(reg.events(), given)
    else:
        event = _event(reg, report)
    p = event.payload
    if given is None:  # an event or a seq alone: the folder the event names
        source = f"{p['output_dir']} (the folder recorded in the event)"
        given = _recorded_folder(p)
    stored = {name: _blob(reg, digest) for name, digest in p["outputs"].items()}
    rows = check_files(reg, p, given)
    rendering, shown = compare_pages(p, stored, given)
    recorded = _recorded_figures(p, stored, given)
    rerun, error, check = _rerun(reg, p, output_dir, storage_options, progress)
    now = rerun.figures if rerun is not None else {}
    figures = [{"figure": name, "recorded": recorded.get(name), "now": now.get(name),
                "unchanged": name in recorded and name in now
                and same(recorded[name], now[name])}
               for name in dict.fromkeys([*recorded, *now])]
    return ReverifyResult(event.seq, p["template"], figures, rows, dict(p["tables"]),
                          rerun, error, source, shown, rendering, check)


def _given(report: Any, files: Source | None) -> tuple[str, dict[str, bytes] | None]:
    if files is not None:
        return evidence.gather(files)
    if isinstance(report, str | os.PathLike):
        return evidence.gather(report)
    if isinstance(report, Report):  # its own files, where they are now (missing or not)
        return "the report's files", {p.name: p.read_bytes() for p in report.files.values()
                                      if p.is_file()}
    return "", None


def _require_named_registry(given: Mapping[str, bytes]) -> None:
    """Never the registry the files name: a registry's policy decides which templates run
    and which models load, so one picked by the files checked could run their code."""
    if os.environ.get("NBREGISTRY_URI"):
        return
    named = next((f["registry_uri"] for n, d in given.items() if n.endswith(".ipynb")
                  for f in [evidence.notebook_facts(d)] if f.get("registry_uri")), None)
    raise InvalidInputError(
        "name the registry the report was recorded in: nbr.reverify(path, uri=...) or "
        "$NBREGISTRY_URI" + (f" (the files say {named}; nbregistry does not take the "
                             "registry from the files it checks)" if named else ""),
        field="uri")


def _recorded_folder(payload: Mapping[str, Any]) -> dict[str, bytes]:
    folder = Path(payload["output_dir"])
    return {n: (folder / n).read_bytes() for n in payload["outputs"] if (folder / n).is_file()}


def _event(reg: Any, report: Report | Event | int) -> Event:
    if isinstance(report, Report):
        assert report.event is not None
        seq = report.event.seq
    elif isinstance(report, Event):
        seq = report.seq
    elif isinstance(report, int) and not isinstance(report, bool):
        seq = report
    else:
        raise InvalidInputError("report must be a Report, its event, the event's seq or the "
                                "report's files (a folder or a .zip)", field="report",
                                value=report)
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


def _blob(reg: Any, digest: str) -> bytes | None:
    try:
        data: bytes = reg.artifact(digest)  # checked against its hash as it is read
    except NbRegistryError:
        return None
    return data


def check_files(reg: Any, payload: Mapping[str, Any], given: Mapping[str, bytes]
                ) -> list[dict[str, Any]]:
    """Each recorded output among the files given: unchanged, modified or missing (and
    whether the registry's copy of it is intact)."""
    rows = []
    for name, recorded in payload["outputs"].items():
        now = evidence.sha256(given[name]) if name in given else None
        status = "missing" if now is None else "unchanged" if now == recorded else "modified"
        rows.append({"file": name, "recorded_sha256": recorded, "sha256": now,
                     "status": status, "stored_copy": reg.ledger.blobs.exists(recorded)})
    return rows


def compare_pages(payload: Mapping[str, Any], stored: Mapping[str, bytes | None],
                  given: Mapping[str, bytes]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the recorded page against the rendering of the recorded notebook, every value a
    given page or notebook shows differently from the recorded report)."""
    notebook = next((n for n, s in payload["outputs"].items() if s == payload["sha256"]), None)
    page_name = next((n for n in payload["outputs"] if n.endswith(".html")), None)
    show_code = bool(payload.get("show_code", False))
    rendered = _render(stored.get(notebook or ""), show_code)
    recorded_page = (stored.get(page_name or "") or b"").decode() if page_name else None
    rendering: list[dict[str, Any]] = []
    if page_name and recorded_page is not None and rendered is not None:
        rendering = [{"file": f"{page_name} (recorded)", **d}
                     for d in evidence.differences(rendered, recorded_page)]
    reference = recorded_page or rendered
    shown: list[dict[str, Any]] = []
    for name, data in given.items():
        if name not in payload["outputs"] or evidence.sha256(data) == payload["outputs"][name]:
            continue
        if name.endswith(".html") and reference is not None:
            shown += [{"file": name, **d}
                      for d in evidence.differences(reference, data.decode(errors="replace"))]
        elif name == notebook:
            shown += _notebook_differences(name, data, stored.get(notebook), reference,
                                           show_code)
    return rendering, shown


def _notebook_differences(name: str, data: bytes, recorded: bytes | None,
                          reference: str | None, show_code: bool) -> list[dict[str, Any]]:
    """A given notebook's key figures against the recorded one's, and what its rendering
    shows against the recorded page."""
    mine, theirs = _figures(data), _figures(recorded) if recorded else {}
    rows = [{"file": name, "where": f"key figure {k}", "recorded": theirs.get(k),
             "given": mine.get(k)} for k in dict.fromkeys([*theirs, *mine])
            if k not in theirs or k not in mine or not same(theirs[k], mine[k])]
    page = _render(data, show_code)
    if page is None:
        return [*rows, {"file": name, "where": "the notebook", "recorded": "a readable report",
                        "given": "not a notebook that renders to a safe page"}]
    if reference is not None:
        rows += [{"file": name, **d} for d in evidence.differences(reference, page)]
    return rows


def _render(data: bytes | None, show_code: bool) -> str | None:
    if data is None:
        return None
    import nbformat

    try:
        notebook = nbformat.reads(data.decode(), as_version=4)  # type: ignore[no-untyped-call]
        return export.to_html(notebook, title="", show_code=show_code)
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInputError):
        return None


def _figures(data: bytes) -> dict[str, Any]:
    import json

    try:
        nb = json.loads(data)
        return {k: v for c in nb.get("cells", []) for o in c.get("outputs", [])
                for k, v in o.get("data", {}).get(FIGURES_MIME, {}).items()}
    except (ValueError, AttributeError, TypeError):
        return {}


def _recorded_figures(payload: Mapping[str, Any], stored: Mapping[str, bytes | None],
                      given: Mapping[str, bytes]) -> dict[str, Any]:
    """The key figures of the notebook as recorded: the registry's copy (checked by hash
    as it is read), else a given file with the recorded hash."""
    import nbformat

    digest = payload["sha256"]
    name = next((n for n, s in payload["outputs"].items() if s == digest), "")
    data = stored.get(name)
    if data is None and name in given and evidence.sha256(given[name]) == digest:
        data = given[name]
    if data is None:
        return {}
    notebook_node = nbformat.reads(data.decode(), as_version=4)  # type: ignore[no-untyped-call]
    figures: dict[str, Any] = collect(notebook_node, payload["template"])["figures"]
    return figures


def template_to_run(reg: Any, payload: Mapping[str, Any]) -> tuple[Path, str]:
    """The template a re-run may execute, and why: its sha256 is recorded and it is a
    shipped template or one registered in the policy (an older event without the sha256:
    only a shipped template, by name). Anything else is refused, never run."""
    digest, named = payload.get("template_sha256"), str(payload["template"])
    if digest:
        known = reporting.known_template(reg.policy, digest)
        shipped = reporting.shipped_templates().get(digest)
        if shipped is not None:
            return template_dir() / f"{shipped}.ipynb", (
                f"the shipped {shipped} template, sha256 {digest}")
        past = reporting.past_templates().get(digest)
        if past is not None:
            raise PolicyViolationError(
                f"the report was made with the {past} template of an earlier nbregistry "
                f"(sha256 {digest}): it counts as evidence, but this nbregistry ships a newer "
                "one; re-run it with the nbregistry version its provenance names",
                rule="report_template")
        path = Path(named)
        if known is not None and path.is_file() and file_sha256(path) == digest:
            return path, f"template {known} registered in the policy, sha256 {digest}"
        raise PolicyViolationError(
            f"the event's template {named} (sha256 {digest}) is "
            + ("not at that path with that sha256" if known else
               "neither shipped with this nbregistry nor registered in the policy")
            + ": nbregistry will not run it (an admin registers a reviewed template with "
            "[reports.templates])", rule="report_template")
    if "/" not in named and "\\" not in named and not named.endswith(".ipynb"):
        path = template_dir() / f"{named}.ipynb"
        if path.is_file():
            return path, (f"the event records no template sha256 (an older nbregistry): "
                          f"re-ran the shipped {named} template, sha256 {file_sha256(path)}")
    raise PolicyViolationError(f"the event names the notebook {named} without its sha256: "
                               "nbregistry will not run it", rule="report_template")


def _rerun(reg: Any, payload: Mapping[str, Any], output_dir: Any,
           storage_options: Mapping[str, str] | None, progress: bool
           ) -> tuple[Report | None, str | None, str]:
    folder = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(
        prefix="nbregistry-reverify-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path, check = template_to_run(reg, payload)
    except NbRegistryError as exc:
        return None, str(exc), "refused"
    try:
        values = params.validate(path, payload["parameters"])
        # from the rows: a sketch rewritten since the report cannot vouch for its figures
        with kernel_env(user=reg.user, storage_options=storage_options, sketches=False):
            rerun = produce(path, values, folder, reg=reg, progress=progress, pdf=False,
                            show_code=False,
                            pin={"head": payload["head"], "tables": payload["tables"]})
    except NbRegistryError as exc:
        return None, str(exc), check
    return rerun, None, check


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
