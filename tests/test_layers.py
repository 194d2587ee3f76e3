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
    ("pyspark", ("monitoring/spark.py",)),
    ("sqlglot", ("monitoring/spark.py",)),
    ("mlflow", ("registry/mlflow_model.py", "registry/mlflow_export.py")),
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


BLOCK = ("import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
         "        if name.split('.')[0] in BLOCKED:\n"
         "            raise ImportError(f'{name} is not installed (blocked by the test)')\n"
         "sys.meta_path.insert(0, Block())\n")


def test_the_core_install_is_lean() -> None:
    import importlib.metadata as md

    requires = md.requires("nbregistry") or []
    core = sorted(re.split(r"[<>=!~; \[]", r)[0] for r in requires if "extra ==" not in r)
    assert core == ["cryptography", "deltalake", "joblib", "obstore", "pyarrow", "tqdm"]
    lab = [r for r in requires if r.startswith("jupyterlab")]
    assert lab and all("extra == 'dev'" in r for r in lab)  # only the browser tests need it


def test_a_scoring_process_needs_only_the_core(tmp_path: Path) -> None:
    """Open, register, resolve the alias and load, as a serving process does, with every
    optional package made unimportable (pyarrow would otherwise pull in pandas if present)."""
    code = ("BLOCKED = {'pandas', 'duckdb', 'IPython', 'ipywidgets', 'altair', 'papermill', "
            "'sklearn', 'scipy', 'polars', 'traitlets', 'nbformat'}\n" + BLOCK +
            f"import nbregistry as nbr\nreg = nbr.open_registry({str(tmp_path)!r}, user='svc', "
            "create=True)\nreg.register({'w': 1}, 'm')\nreg.set_alias('m', 'c', 1)\n"
            "assert reg.load('m@c', trusted=True) == {'w': 1} and reg.verify().ok\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_missing_extra_names_it() -> None:
    code = ("BLOCKED = {'altair'}\n" + BLOCK + "try:\n    import nbregistry.charts\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("MissingDependencyError") and "nbregistry[notebook]" in out
