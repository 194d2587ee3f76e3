"""The architecture of DESIGN.md, enforced."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "nbregistry"


def test_import_linter_layers() -> None:
    result = subprocess.run(["lint-imports"], cwd=SRC.parents[1], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module, allowed", [
    ("deltalake", ("store/",)),
    ("duckdb", ("store/", "monitoring/")),
    ("IPython", ("notebook/",)),
    ("ipywidgets", ("notebook/",)),
])
def test_third_party_imports_stay_in_their_layer(module: str, allowed: tuple[str, ...]) -> None:
    pattern = re.compile(rf"^\s*(from|import) {module}\b", re.M)
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if pattern.search(p.read_text())
                 and not str(p.relative_to(SRC)).startswith(allowed)]
    assert offenders == []


def test_domain_is_stdlib_only() -> None:
    stdlib = sys.stdlib_module_names
    for path in (SRC / "domain").rglob("*.py"):
        for match in re.finditer(r"^\s*(?:from|import) ([a-zA-Z_]\w*)", path.read_text(), re.M):
            assert match.group(1) in stdlib or match.group(1) == "__future__", (path, match[1])


def test_import_is_cheap() -> None:
    code = ("import sys, nbregistry; heavy = {'deltalake', 'duckdb', 'IPython', 'ipywidgets', "
            "'altair', 'papermill', 'pandas', 'pyarrow', 'obstore'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_no_module_over_500_lines() -> None:
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}
