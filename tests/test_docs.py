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


def test_every_public_name_is_documented() -> None:
    text = "\n".join(p.read_text() for p in DOCS)
    public = {n for n in nbr.__all__ if not n.endswith("Error")} - {"Flavor", "VerifyReport"}
    methods = {n for n, _ in inspect.getmembers(nbr.Registry) if not n.startswith("_")}
    missing = sorted(n for n in public | methods if n not in text)
    assert missing == []
