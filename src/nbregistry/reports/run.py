"""``nbr.run_report``: validate the parameters, execute the template with papermill, export
HTML (and PDF), hash every output, keep a copy in the registry's artifact store and record
the ``report`` event."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..domain.entities import Event
from ..domain.errors import InvalidInputError, NbRegistryError, NotFoundError
from ..domain.html import fmt
from ..domain.timefmt import ts_text
from ..registry import reporting
from ..store.blobs import file_sha256
from . import export, params
from .context import nbregistry_version
from .execute import SharedKernel, execute, kernel_env, read_notebook
from .helpers import FIGURES_MIME, HEAD_MIME, PROVENANCE_MIME, TABLES_MIME
from .templates import template_dir, template_name, template_path


@dataclass(frozen=True)
class Report:
    """One executed report: where its files are, what it read and found, and its event."""

    template: str
    model: str
    version: int
    parameters: dict[str, Any]
    files: dict[str, Path]                 # "notebook", "html", "pdf" -> path
    outputs: dict[str, str]                # file name -> sha256
    figures: dict[str, Any]
    tables: dict[str, int]
    head: tuple[int, str]
    registry_uri: str
    event: Event | None = None             # None for a re-run (reverify records nothing)
    seconds: float = 0.0
    messages: tuple[str, ...] = field(default=())
    template_sha256: str = ""              # of the .ipynb that ran
    provenance: dict[str, Any] = field(default_factory=dict)   # who, when, with what
    show_code: bool = False

    @property
    def output_dir(self) -> Path:
        return self.files["notebook"].parent

    def __repr__(self) -> str:
        where = f" event {self.event.seq}" if self.event else ""
        return (f"<Report {self.template} {self.model} v{self.version}{where}: "
                f"{len(self.figures)} figures, {len(self.tables)} tables, head "
                f"{self.head[0]}:{self.head[1][:12]}, files {', '.join(self.outputs)} in "
                f"{self.output_dir}>")

    def _repr_html_(self) -> str:
        esc = html.escape
        links = " · ".join(f"<a href='{esc(p.name)}'>{esc(k)}</a>"
                           for k, p in self.files.items())
        figures = "".join(f"<tr><td>{esc(k)}</td><td>{esc(fmt(v))}</td></tr>"
                          for k, v in self.figures.items())
        event = f"recorded as event {self.event.seq}" if self.event else "not recorded"
        return (f"<div style='font-family:sans-serif;font-size:12px'><b>{esc(self.template)}"
                f"</b> report for {esc(self.model)} v{self.version}, {event}; head "
                f"<code>{self.head[0]}:{esc(self.head[1])}</code><br>{links} in "
                f"<code>{esc(str(self.output_dir))}</code><table>{figures}</table></div>")


def run_report(template: str, *, output_dir: str | os.PathLike[str],
               uri: str | os.PathLike[str] | None = None,
               storage_options: Mapping[str, str] | None = None, user: str | None = None,
               progress: bool = True, pdf: bool | None = None, show_code: bool = False,
               **parameters: Any) -> Report:
    """Run a report template for a model version and record it.

    Parameters
    ----------
    template : str
        ``"validation"``, ``"monitoring"``, ``"fair_lending"``, ``"sox_change"`` or the path
        of an ``.ipynb`` with a cell tagged ``parameters``.
    output_dir : str or path
        Where the executed notebook, its HTML and PDF are written.
    uri, storage_options, user
        The registry (as for ``open_registry``) and who runs the report.
    progress : bool
        papermill's progress bar.
    pdf : bool, optional
        ``None``: a PDF when Chromium is on the machine (else a message); ``True``: required;
        ``False``: none.
    show_code : bool
        Keep the code cells in the HTML (hidden by default).
    **parameters
        The template's parameters (``model=``, ``version=``, ...), validated before
        anything runs: unknown, missing and mistyped ones are listed in one error.
    """
    from ..registry import open_registry

    path = template_path(template)
    values = params.validate(path, parameters)
    reg = open_registry(uri, user, storage_options=storage_options, create=False)
    _check_target(reg, values)
    admit(reg, path)
    folder = _folder(output_dir)
    with kernel_env(user=reg.user, storage_options=storage_options):
        report = produce(path, values, folder, reg=reg, progress=progress, pdf=pdf,
                         show_code=show_code)
    return record(reg, report)


def _check_target(reg: Any, values: Mapping[str, Any]) -> None:
    if "model" in values and values.get("version") is not None:
        reg.get(values["model"], values["version"])  # a NotFoundError before any kernel
    elif "model" in values:
        reg.get(values["model"])


def admit(reg: Any, path: Path) -> str:
    """Before any kernel starts: may this user record a report, and is the template a known
    one (shipped, or registered by an admin in the policy)? Returns its sha256."""
    state = reg.ledger.current()
    reporting.check_recorder(state.policy, reg.user, state.roles.get(reg.user, set()))
    digest = file_sha256(path)
    reporting.check_template(state.policy, template_id(path), digest)
    return digest


def _folder(output_dir: str | os.PathLike[str]) -> Path:
    folder = Path(output_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"output_dir {folder} is a file, not a folder",
                                field="output_dir")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def produce(path: Path, values: Mapping[str, Any], folder: Path, *, reg: Any,
            progress: bool, pdf: bool | None, show_code: bool,
            pin: Mapping[str, Any] | None = None, kernel: SharedKernel | None = None,
            stem: str | None = None) -> Report:
    """Execute and export one report (nothing recorded yet)."""
    began = time.monotonic()
    name = template_name(path)
    stem = stem or name
    digest = file_sha256(path)
    notebook = read_notebook(path)
    run = {"by": reg.user, "started": ts_text(datetime.now(UTC)), "template": template_id(path),
           "template_sha256": digest, "model": values.get("model"),
           "version": values.get("version")}
    injected = {**values, "registry_uri": reg.uri, "pin": {**(pin or {}), "run": run}}
    executed = execute(notebook, folder / f"{stem}.ipynb", injected, template=name,
                       progress=progress, kernel=kernel)
    found = collect(executed, name)
    shown = found["provenance"] or {**{k: v for k, v in run.items() if k not in (
        "model", "version")}, "nbregistry": nbregistry_version(), "baseline": None}
    if shown["template_sha256"] != digest:
        raise InvalidInputError(f"the {name!r} report shows template sha256 "
                                f"{shown['template_sha256']!r}, not the {digest} that ran",
                                field="template")
    files = {"notebook": folder / f"{stem}.ipynb", "html": folder / f"{stem}.html"}
    title = f"{name} report: {values.get('model', '')} v{values.get('version', '')}"
    files["html"].write_text(export.to_html(executed, title=title, show_code=show_code),
                             encoding="utf-8")
    messages = []
    browser = export.chromium() if pdf is not False else None
    if browser is not None:
        files["pdf"] = folder / f"{stem}.pdf"
        export.to_pdf(files["html"], files["pdf"], browser=browser)
    elif pdf:
        raise NotFoundError("pdf=True but no Chromium was found (install Debian's chromium "
                            "package or set $NBREGISTRY_CHROMIUM)", ref="chromium")
    elif pdf is None:
        messages.append("no PDF: Chromium is not installed (apt-get install chromium)")
        print(f"nbregistry: {messages[-1]}")
    outputs = {p.name: file_sha256(p) for p in files.values()}
    return Report(template=template_id(path), model=str(values.get("model", "")),
                  version=int(values.get("version") or 0), parameters=dict(values),
                  files=files, outputs=outputs, figures=found["figures"],
                  tables=found["tables"], head=found["head"], registry_uri=reg.uri,
                  seconds=time.monotonic() - began, messages=tuple(messages),
                  template_sha256=digest, provenance=shown, show_code=show_code)


def record(reg: Any, report: Report) -> Report:
    """Keep the outputs in the artifact store, then record the ``report`` event."""
    from dataclasses import replace

    for p in report.files.values():
        reg.ledger.blobs.put(p.read_bytes())
    event = reg.record_report(report.template, model=report.model, version=report.version,
                              parameters=report.parameters, tables=report.tables,
                              head=list(report.head), outputs=report.outputs,
                              sha256=report.outputs[report.files["notebook"].name],
                              output_dir=str(report.output_dir.resolve()),
                              template_sha256=report.template_sha256,
                              provenance=report.provenance, show_code=report.show_code)
    return replace(report, event=event)


def template_id(path: Path) -> str:
    """What the event records: a shipped template's name, else the notebook's absolute path
    (so ``reverify`` finds it again)."""
    try:
        shipped = template_dir().resolve()
    except NbRegistryError:
        shipped = None
    resolved = path.resolve()
    return template_name(path) if resolved.parent == shipped else str(resolved)


def collect(notebook: Any, template: str) -> dict[str, Any]:
    """The key figures, the tables read and the head a notebook recorded in its outputs."""
    figures: dict[str, Any] = {}
    tables: dict[str, int] = {}
    heads: list[tuple[int, str]] = []
    provenance: dict[str, Any] | None = None
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            figures.update(data.get(FIGURES_MIME, {}))
            tables.update({k: int(v) for k, v in data.get(TABLES_MIME, {}).items()})
            if HEAD_MIME in data:
                heads.append((int(data[HEAD_MIME]["seq"]), str(data[HEAD_MIME]["hash"])))
            if provenance is None and PROVENANCE_MIME in data:
                provenance = dict(data[PROVENANCE_MIME])
    if not heads:
        raise InvalidInputError(f"the {template!r} template never showed the registry head: "
                                "open the registry with helpers.open_report(...)",
                                field="template")
    return {"figures": figures, "tables": tables, "head": heads[0], "provenance": provenance}


