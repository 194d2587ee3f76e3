"""The compliance pack: every template for one model version, in one folder with an index
page, run on one shared kernel (kernel start and imports dominate a single report)."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.errors import InvalidInputError
from . import params
from .execute import SharedKernel, kernel_env
from .run import Report, _check_target, _folder, admit, produce, record
from .templates import TEMPLATES, template_path


@dataclass(frozen=True)
class Pack:
    """The reports of a pack and its index page."""

    model: str
    version: int
    reports: dict[str, Report]
    index: Path
    seconds: float

    def __repr__(self) -> str:
        runs = ", ".join(f"{t} (event {r.event.seq if r.event else '-'})"
                         for t, r in self.reports.items())
        return (f"<Pack {self.model} v{self.version}: {runs}; index {self.index} "
                f"({self.seconds:.1f} s)>")

    def _repr_html_(self) -> str:
        return (f"<div style='font-family:sans-serif;font-size:12px'>Compliance pack for "
                f"<b>{html.escape(self.model)}</b> v{self.version}: "
                f"<code>{html.escape(str(self.index))}</code>"
                + "".join(r._repr_html_() for r in self.reports.values()) + "</div>")


def run_pack(model: str, version: int, *, output_dir: str | os.PathLike[str],
             uri: str | os.PathLike[str] | None = None,
             storage_options: Mapping[str, str] | None = None, user: str | None = None,
             templates: Sequence[str] = TEMPLATES, progress: bool = True,
             pdf: bool | None = None,
             parameters: Mapping[str, Mapping[str, Any]] | None = None) -> Pack:
    """Run every template (default: all four) for ``model`` v``version`` into one folder
    with an ``index.html``; each report is recorded as its own ``report`` event.

    ``parameters`` adds template-specific values, e.g. ``{"monitoring": {"start":
    "2026-01-01"}}``. All of them are validated before the first report runs."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    from ..registry import open_registry

    extra = dict(parameters or {})
    unknown = sorted(set(extra) - set(templates))
    if unknown:
        raise InvalidInputError(f"parameters for templates not in the pack: {unknown}",
                                field="parameters")
    plan = {t: (template_path(t), params.validate(template_path(t), {
        "model": model, "version": version, **extra.get(t, {})})) for t in templates}
    reg = open_registry(uri, user, storage_options=storage_options, create=False)
    _check_target(reg, {"model": model, "version": version})
    for path, _ in plan.values():
        admit(reg, path)
    folder = _folder(output_dir)
    began = time.monotonic()
    reports: dict[str, Report] = {}
    with kernel_env(user=reg.user, storage_options=storage_options), \
            SharedKernel(folder) as kernel:
        for name in tqdm(list(plan), desc="compliance pack", unit="report",
                         disable=not progress):
            path, values = plan[name]
            made = produce(path, values, folder, reg=reg, progress=False, pdf=pdf,
                           show_code=False, kernel=kernel)
            reports[name] = record(reg, made)
    index = folder / "index.html"
    index.write_text(index_page(model, version, reports), encoding="utf-8")
    return Pack(model, int(version), reports, index, time.monotonic() - began)


def index_page(model: str, version: int, reports: Mapping[str, Report]) -> str:
    """The pack's front page: one row per report, its files and hashes, its event."""
    from .export import STYLE, page
    from .helpers import fmt

    esc = html.escape
    rows = []
    for name, report in reports.items():
        links = " · ".join(f"<a href='{esc(p.name)}'>{esc(kind)}</a>"
                           for kind, p in report.files.items())
        hashes = "<br>".join(f"<code>{esc(f)}</code> {esc(s)}" for f, s in report.outputs.items())
        figures = "<br>".join(f"{esc(k)} = {esc(fmt(v))}"
                              for k, v in list(report.figures.items())[:12])
        event = report.event.seq if report.event else "-"
        rows.append(f"<tr><td><b>{esc(name)}</b><br>{links}</td><td>{event}</td>"
                    f"<td><code>{report.head[0]}:{esc(report.head[1][:16])}…</code></td>"
                    f"<td>{figures}</td><td style='font-size:11px'>{hashes}</td></tr>")
    return page(f"Compliance pack: {model} v{version}", style=STYLE, body=(
            f"<h1>Compliance pack: {esc(model)} v{version}</h1><p>Each report below was "
            f"executed from its template and recorded as a <code>report</code> event in the "
            f"registry's audit log with the sha256 of each file; <code>nbr.reverify(seq)"
            f"</code> re-runs it against the same data and compares.</p><table><tr>"
            f"<th>report</th><th>event</th><th>registry head</th><th>key figures</th>"
            f"<th>files (sha256)</th></tr>{''.join(rows)}</table>"))
