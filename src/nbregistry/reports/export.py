"""The executed notebook as a self-contained HTML page (no code by default; charts are
inline SVG; no script and no stylesheet from anywhere) and as PDF through Chromium.

nbconvert's ``lab`` and ``classic`` templates link require.js and MathJax from a CDN, so the
page is built from the ``basic`` template's body inside our own page and stylesheet, and
checked for external references before it is written.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..domain.errors import InvalidInputError, StorageError

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
PDF_TIMEOUT = 120
# What a report may show: never scripts nor widget state (nothing to run them offline).
PRIORITY = ["text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown",
            "text/latex", "text/plain"]
EXTERNAL = re.compile(r"""(?:\b(?:src|href|action|data)\s*=\s*["']?\s*(?:https?:)?//)"""
                      r"""|(?:@import)|(?:url\(\s*["']?\s*(?:https?:)?//)|<script\b""",
                      re.I)
STYLE = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;
color:#1f2328;max-width:1100px;margin:24px auto;padding:0 24px;line-height:1.45}
h1{font-size:24px;border-bottom:1px solid #d0d7de;padding-bottom:6px}
h2{font-size:19px;margin-top:28px;border-bottom:1px solid #eaeef2}h3{font-size:16px}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #d0d7de}
.jp-InputArea,.jp-InputPrompt,.jp-OutputPrompt{display:none}
.jp-RenderedImage img,svg{max-width:100%;height:auto}
.jp-OutputArea-output pre{background:none;padding:0}
.jp-Cell{margin:4px 0}.anchor-link{display:none}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}
"""
SHOW_CODE = ".jp-InputArea{display:block;background:#f6f8fa;margin:6px 0}"


def to_html(notebook: Any, *, title: str, show_code: bool = False) -> str:
    """One HTML page, readable offline: inline styles and SVG only."""
    from nbconvert import HTMLExporter

    options = {"template_name": "basic", "exclude_input": not show_code,
               "exclude_input_prompt": True, "exclude_output_prompt": True}
    exporter = HTMLExporter(**options)  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(_clean(notebook))
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='generator' content='nbregistry'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}{SHOW_CODE if show_code else ''}</style></head>"
            f"<body>\n{body}\n</body></html>\n")
    found = external_references(page)
    if found:
        raise InvalidInputError(f"the report would load {found[0]!r} from outside the page; "
                                "show charts with helpers.chart (SVG), not as scripts",
                                field="template")
    return page


def external_references(page: str) -> list[str]:
    """Every script tag or reference to another host in ``page`` (should be none)."""
    return [m.group(0) for m in EXTERNAL.finditer(page)]


def _clean(notebook: Any) -> Any:
    """A copy without outputs that need a script (widgets, JavaScript, Vega specs)."""
    import copy

    nb = copy.deepcopy(notebook)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data:
                for mime in list(data):
                    if mime not in PRIORITY:
                        del data[mime]
    return nb


def chromium() -> str | None:
    """The Chromium on this machine, if any (``$NBREGISTRY_CHROMIUM`` first)."""
    configured = os.environ.get("NBREGISTRY_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    return None


def to_pdf(html_path: Path, pdf_path: Path, *, browser: str) -> None:
    """Print the HTML page to PDF with headless Chromium (no network)."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--no-pdf-header-footer",
               f"--print-to-pdf={pdf_path}", html_path.resolve().as_uri()]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=PDF_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(f"could not print {html_path.name} to PDF with {browser}: "
                           f"{exc}") from exc
    if result.returncode != 0 or not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        tail = (result.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise StorageError(f"{browser} did not print {html_path.name} to PDF "
                           f"(exit {result.returncode}): {tail[0]}")
