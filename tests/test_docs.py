"""Docs tested against the code: examples run, public names are documented."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterable
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


def documented_names(docs: Iterable[Path] = DOCS) -> set[str]:
    """Names in the first column of the docs' API tables: `name(...)`, `nbr.Name`, `attr`."""
    names: set[str] = set()
    for path in docs:
        for cell in CELL.findall(path.read_text()):
            for span in SPAN.findall(cell):
                match = NAME.match(span.strip() + " ")
                if match:
                    names.add(match.group(1))
    return names


def members(cls: type) -> set[str]:
    """Public attributes nbregistry defines on a class (fields of a dataclass included),
    not those inherited from Python's own types (an exception's ``args``)."""
    own = {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")
           and any(n in vars(k) for k in cls.__mro__ if k.__module__.startswith("nbregistry"))}
    if dataclasses.is_dataclass(cls):
        own |= {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    return own


def test_every_public_name_is_documented_in_api_md() -> None:
    from nbregistry import reports, watch

    public = (set(nbr.__all__) | set(watch.__all__) | set(reports.__all__)) - {
        "LiveSource", "PinnedSource"}
    for cls in (nbr.Registry, nbr.RegistryView, watch.Monitor, watch.TableResult,
                watch.DriftResult, watch.PerformanceResult, watch.FairnessResult,
                watch.CheckResult, watch.ReplayResult, reports.Report, reports.ReverifyResult,
                reports.Pack):
        public |= members(cls)
    missing = sorted(public - documented_names([ROOT / "docs" / "api.md"]))
    assert missing == []


def test_the_docs_table_parser_sees_only_first_columns() -> None:
    names = documented_names()
    assert {"open_registry", "register", "get", "head", "InvalidInputError"} <= names
    assert "who" not in names and "anyone" not in names  # other columns are not parsed


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_links_and_pictures_in_the_docs_exist() -> None:
    """Relative links and images (the README's screenshots) point at committed files."""
    missing = []
    for path in DOCS:
        for target in LINK.findall(path.read_text()):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                missing.append(f"{path.name}: {target}")
    assert missing == []
    readme = (ROOT / "README.md").read_text()
    assert "](docs/images/monitoring-dashboard.png)" in readme
    for role in ("monitoring", "compliance", "audit"):
        assert f"](notebooks/{role}.ipynb)" in readme
