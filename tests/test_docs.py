"""Docs tested against the code: examples run, public names are documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import nbregistry as nbr

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def examples() -> list[tuple[str, int, str]]:
    return [(path.name, i, code) for path in DOCS
            for i, code in enumerate(BLOCK.findall(path.read_text()))]


@pytest.mark.parametrize("name, index, code", examples(),
                         ids=[f"{n}-{i}" for n, i, _ in examples()])
def test_doc_example_runs(name: str, index: int, code: str, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{name}[{index}]", "exec"), {"__name__": "__doc_example__"})


CELL = re.compile(r"^\|\s*(.+?)\s*\|", re.M)
SPAN = re.compile(r"`([^`]+)`")
NAME = re.compile(r"(?:nbr\.|reg\.|mon\.)?([A-Za-z_]\w*)\s*(?:\(|$|,|\s)")


def documented_names() -> set[str]:
    """Names in the first column of the docs' API tables: `name(...)`, `nbr.Name`, `attr`."""
    names: set[str] = set()
    for path in DOCS:
        for cell in CELL.findall(path.read_text()):
            for span in SPAN.findall(cell):
                match = NAME.match(span.strip() + " ")
                if match:
                    names.add(match.group(1))
    return names


def test_every_public_name_is_documented_in_an_api_table() -> None:
    from nbregistry import watch

    public = set(nbr.__all__) | set(watch.__all__) - {"LiveSource", "PinnedSource"}
    for cls in (nbr.Registry, nbr.RegistryView, watch.Monitor):
        public |= {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}
    missing = sorted(public - documented_names())
    assert missing == []


def test_the_docs_table_parser_sees_only_first_columns() -> None:
    names = documented_names()
    assert {"open_registry", "register", "get", "head", "InvalidInputError"} <= names
    assert "who" not in names and "anyone" not in names  # other columns are not parsed
