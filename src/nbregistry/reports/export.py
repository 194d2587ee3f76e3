"""The executed notebook as a self-contained HTML page (no code by default; charts are
inline SVG; no script and no stylesheet from anywhere) and as PDF through Chromium.

nbconvert's ``lab`` and ``classic`` templates link require.js and MathJax from a CDN, so the
page is built from the ``basic`` template's body inside our own page and stylesheet, and
checked for anything that could run or load before it is written. Three lines of defence,
since an examiner opens these pages years later and the registry's writers are not all
trusted: every value a report shows is escaped (``helpers``), the body is checked here, and
the page's Content-Security-Policy forbids script and every load but ``data:`` images.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ..domain.errors import InvalidInputError, StorageError

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
PDF_TIMEOUT = 120
# What a report may show: never scripts nor widget state (nothing to run them offline).
PRIORITY = ["text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown",
            "text/latex", "text/plain"]
# No script (inline, in attributes or javascript: URLs), nothing loaded but data: images and
# the page's own styles; forms, frames and <base> have no use in a report. A <meta> CSP
# cannot forbid navigation: that is the escaping's and the guard's job.
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")
# Elements that run, embed or redirect; attributes that hold a URL (srcset: a list of them).
ACTIVE = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "base",
          "link", "meta", "portal", "form"}
URLS = {"src", "href", "xlink:href", "action", "formaction", "data", "poster", "background",
        "cite", "longdesc", "manifest", "ping", "codebase", "archive", "lowsrc", "dynsrc",
        "icon", "usemap", "srcset", "imagesrcset"}
# Browsers ignore whitespace and control characters inside a URL ("java\tscript:").
BLANKS = re.compile(r"[\x00-\x20]+")
CSS_URL = re.compile(r"url\(\s*[\"']?\s*([^)\"'\s]*)", re.I)
CSS_ACTIVE = re.compile(r"@import|image-set\(|expression\(|\\", re.I)
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
    found = external_references(body)
    if found:
        raise InvalidInputError(f"the report would run or load {found[0]!r}; show values "
                                "with helpers.table or helpers.note (escaped) and charts with "
                                "helpers.chart (SVG)", field="template")
    return page(title, body, style=STYLE + (SHOW_CODE if show_code else ""))


def page(title: str, body: str, *, style: str) -> str:
    """A whole page under the Content-Security-Policy (first in <head>, so it covers all)."""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<meta name='generator' content='nbregistry'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def external_references(body: str) -> list[str]:
    """Everything in ``body`` that could run script or load from outside the page: active
    elements, event handlers, ``javascript:`` and external URLs (a link's ``href`` may be
    relative), ``srcset``, and CSS that imports or loads anything but a ``data:`` image."""
    guard = _Guard()
    guard.feed(body)
    guard.close()
    return guard.found


class _Guard(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        if tag in ACTIVE:
            self.found.append(f"<{tag}>")
        self.found += [f"<{tag} {name}={value!r}>" for name, value in attrs
                       if _unsafe(tag, name, value or "")]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and _css(data.lower()):
            self.found.append(f"<style>{data[:80]!r}")


def _unsafe(tag: str, name: str, value: str) -> bool:
    text = BLANKS.sub("", value).lower()
    if name.startswith("on") or text.startswith(("javascript:", "vbscript:")):
        return True
    if name in URLS and not _local(tag, name, text):
        return True
    return (name == "style" or "url(" in text) and _css(text)  # also SVG's fill, filter…


def _local(tag: str, name: str, url: str) -> bool:
    """A URL that stays in the page: a fragment, a data: image, a link to a relative path."""
    if name in ("srcset", "imagesrcset"):
        return False
    if url.startswith("#") or (name != "href" and url.startswith("data:image/")):
        return True
    return tag in ("a", "area") and name == "href" and not re.match(r"[a-z][a-z0-9+.-]*:|//",
                                                                    url)


def _css(css: str) -> bool:
    """Whether ``css`` can load anything (or hides what it does behind an escape)."""
    return bool(CSS_ACTIVE.search(css)) or any(
        not (u.startswith("#") or u.startswith("data:image/")) for u in CSS_URL.findall(css))


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
