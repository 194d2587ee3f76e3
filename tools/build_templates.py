"""Build ``templates/*.ipynb`` from the percent-format sources in ``tools/templates/``.

The notebooks are what ships (and what papermill runs); these sources are what a reviewer
diffs. ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell (its lines start
with ``# ``), ``# %% tags=["parameters"]`` a tagged cell. Run: python tools/build_templates.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"^# %%(?: \[(?P<kind>markdown)\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def cells(source: str) -> list[nbformat.NotebookNode]:
    out: list[nbformat.NotebookNode] = []
    kind, tags, lines = None, [], []  # type: ignore[var-annotated]

    def flush() -> None:
        if kind is None:
            return
        text = "\n".join(lines).strip("\n")
        if kind == "markdown":
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in text.splitlines())
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
        if tags:
            cell.metadata["tags"] = tags
        out.append(cell)

    for line in source.splitlines():
        match = HEADER.match(line)
        if match:
            flush()
            kind = match.group("kind") or "code"
            tags = json.loads(match.group("tags")) if match.group("tags") else []
            lines = []
        else:
            lines.append(line)
    flush()
    return out


def build(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells(path.read_text())
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{path.stem}-{i}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    target = ROOT / "templates" / f"{path.stem}.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, str(target))
    remember(target)
    return target


def remember(template: Path) -> None:
    """Add the built template's sha256 to ``templates/HISTORY.json``, so reports recorded
    with every version the project ships keep counting after an upgrade."""
    import hashlib

    history = ROOT / "templates" / "HISTORY.json"
    known = json.loads(history.read_text()) if history.is_file() else {}
    known[hashlib.sha256(template.read_bytes()).hexdigest()] = template.stem
    ordered = dict(sorted(known.items(), key=lambda kv: (kv[1], kv[0])))
    history.write_text(json.dumps(ordered, indent=1) + "\n")


if __name__ == "__main__":
    names = sys.argv[1:] or [p.stem for p in (ROOT / "tools" / "templates").glob("*.py")]
    for name in names:
        print(build(ROOT / "tools" / "templates" / f"{name}.py"))
