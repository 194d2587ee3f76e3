"""The files a report is checked from, wherever they are (a folder, a zip sent to an
examiner, a list of paths), which ``report`` event they belong to, and what a reader of
them sees: every value placed where it is shown (section, table, row, column), so two
pages can be compared by what they say rather than by their bytes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any

from ..domain.entities import Event
from ..domain.errors import InvalidInputError, NotFoundError

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
_SPACE = re.compile(r"\s+")


def gather(source: Source) -> tuple[str, dict[str, bytes]]:
    """``(description, {file name: bytes})`` from a folder, a ``.zip``, one file or a list
    of files."""
    if isinstance(source, str | os.PathLike):
        paths, where = [Path(source)], str(source)
    else:
        paths = [Path(p) for p in source]
        where = ", ".join(str(p) for p in paths)
    found: dict[str, bytes] = {}
    for path in paths:
        if path.is_dir():
            found.update({p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()})
        elif path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not info.is_dir():
                        found.setdefault(PurePosixPath(info.filename).name,
                                         archive.read(info))
        elif path.is_file():
            found[path.name] = path.read_bytes()
        else:
            raise NotFoundError(f"no report files at {path}: pass the folder, the .zip or the "
                                "files of the report", ref=str(path))
    if not found:
        raise InvalidInputError(f"{where} holds no files", field="files")
    return where, found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_facts(data: bytes) -> dict[str, Any]:
    """What a (possibly edited) executed notebook says about itself: the registry it read,
    the head it showed, its parameters. Empty when it is not a readable notebook."""
    from .helpers import HEAD_MIME

    try:
        nb = json.loads(data)
        parameters = nb.get("metadata", {}).get("papermill", {}).get("parameters", {})
        heads = [o["data"][HEAD_MIME] for c in nb.get("cells", [])
                 for o in c.get("outputs", []) if HEAD_MIME in o.get("data", {})]
    except (ValueError, AttributeError, TypeError, KeyError):
        return {}
    head = [heads[0].get("seq"), heads[0].get("hash")] if heads else None
    return {"registry_uri": parameters.get("registry_uri"), "head": head,
            "model": parameters.get("model"), "version": parameters.get("version")}


def locate(events: Iterable[Event], given: Mapping[str, bytes]) -> Event:
    """The ``report`` event these files belong to: the one with the most files whose
    sha256 it recorded, then whose head the notebook shows. Refuses to guess between
    reports that the files match equally (a pack's folder holds several)."""
    hashes = {name: sha256(data) for name, data in given.items()}
    facts = [notebook_facts(d) for n, d in given.items() if n.endswith(".ipynb")]
    heads = [f["head"] for f in facts if f.get("head")]
    ranked = []
    for event in events:
        outputs = event.payload.get("outputs") if event.action == "report" else None
        if not isinstance(outputs, dict) or not set(outputs) & set(given):
            continue
        same = sum(hashes.get(n) == s for n, s in outputs.items())
        ranked.append(((same, event.payload.get("head") in heads), event))
    if not ranked:
        raise NotFoundError(f"none of {', '.join(sorted(given))} is the output of a report "
                            "recorded in this registry: pass the registry (uri=...) the "
                            "report was recorded in, or the report's event: "
                            "nbr.reverify(seq, files=...)", ref="files")
    ranked.sort(key=lambda r: (r[0], r[1].seq), reverse=True)
    best = [e for score, e in ranked if score == ranked[0][0]]
    if len(best) > 1 and len({e.payload["template"] for e in best}) > 1:
        names = ", ".join(f"{e.seq} ({e.payload['template']})" for e in best)
        raise InvalidInputError(f"these files belong to several reports (events {names}): "
                                "name one, e.g. nbr.reverify(seq, files=...)", field="files")
    return best[0]


def seen(page: str) -> dict[str, str]:
    """What a reader sees on a report page, keyed by where it is shown: ``section ›
    table caption › row › column`` for a table cell, ``section › text n`` for running
    text, ``section › chart n`` / ``image n`` (a digest of the drawing) for figures."""
    reader = _Seen()
    reader.feed(page)
    reader.close()
    return reader.items


def differences(recorded: str, given: str) -> list[dict[str, Any]]:
    """Where the two pages show something different: ``where, recorded, given``."""
    before, after = seen(recorded), seen(given)
    return [{"where": key, "recorded": before.get(key), "given": after.get(key)}
            for key in dict.fromkeys([*before, *after]) if before.get(key) != after.get(key)]


class _Seen(HTMLParser):
    """Body text placed by section, table caption, row label and column header; a chart
    (inline SVG) or an image is one item, the digest of its markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: dict[str, str] = {}
        self.section, self.caption, self.tag = "top", "", ""
        self.header: list[str] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.text: list[str] = []
        self.drawing: Any = None
        self.count = {"text": 0, "chart": 0, "image": 0, "table": 0}
        self.skip = 0

    def _put(self, key: str, value: str) -> None:
        n, base = 1, key
        while key in self.items:
            n += 1
            key = f"{base} #{n}"
        self.items[key] = value

    def _flush(self) -> None:
        text = _SPACE.sub(" ", "".join(self.text)).strip()
        self.text = []
        if text and self.row is None:
            if self.tag == "caption":
                self.caption = text
            elif self.tag.startswith("h") and self.tag[1:].isdigit():
                self.section = text.rstrip("¶").strip()
                self.caption = ""
            else:
                self.count["text"] += 1
                self._put(f"{self.section} › text {self.count['text']}", text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("head", "style", "script", "title"):
            self.skip += 1
            return
        if self.drawing is not None:
            self.drawing.update(repr((tag, attrs)).encode())
            return
        if tag == "svg":
            self._flush()
            self.drawing = hashlib.sha256(repr(attrs).encode())
        elif tag == "img":
            self._flush()
            self.count["image"] += 1
            self._put(f"{self.section} › image {self.count['image']}",
                      sha256(repr(attrs).encode())[:16])
        elif tag == "table":
            self._flush()
            self.count["table"] += 1
            self.header, self.caption = [], self.caption or f"table {self.count['table']}"
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag in ("p", "div", "li", "br", "pre") or (tag.startswith("h") and tag[1:].isdigit()):
            self._flush()
            bold = any(k == "style" and v and "font-weight:600" in v for k, v in attrs)
            self.tag = "caption" if tag == "div" and bold else tag

    def handle_endtag(self, tag: str) -> None:
        if tag in ("head", "style", "script", "title"):
            self.skip = max(0, self.skip - 1)
            return
        if self.drawing is not None:
            if tag == "svg":
                self.count["chart"] += 1
                self._put(f"{self.section} › chart {self.count['chart']}",
                          self.drawing.hexdigest()[:16])
                self.drawing = None
            return
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(_SPACE.sub(" ", "".join(self.cell)).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self._row(self.row)
            self.row = None
        elif tag == "table":
            self.caption = ""
        elif tag in ("p", "div", "li", "pre") or (tag.startswith("h") and tag[1:].isdigit()):
            self._flush()
            self.tag = ""

    def _row(self, cells: list[str]) -> None:
        if not self.header:
            self.header = cells
            return
        label = cells[0] if cells else ""
        for i, value in enumerate(cells[1:], start=1):
            column = self.header[i] if i < len(self.header) else f"column {i + 1}"
            self._put(f"{self.section} › {self.caption} › {label} › {column}", value)
        if len(cells) == 1:
            self._put(f"{self.section} › {self.caption} › {label}", label)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.drawing is not None:
            self.drawing.update(data.encode())
        elif self.cell is not None:
            self.cell.append(data)
        else:
            self.text.append(data)
