"""The monitoring-at-scale benchmark's smoke run (``--quick``: 1M rows) measures, or says it
cannot, every row of its tables on both engines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pysail")
pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_quick_run_prints_every_row(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from scale_report import ENGINES, rows

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "monitoring_scale.py"), "--quick",
                           "--work", str(tmp_path / "work"), "--json",
                           str(tmp_path / "figures.json")],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "figures.json").read_text())
    measured = figures["sizes"]["1M"]["engines"]
    assert sorted(measured) == ["duckdb", "sail"]
    tables = done.stdout.split("\n== ")
    for engine in ("duckdb", "sail"):
        title = ENGINES[engine]
        [text] = [t for t in tables if t.startswith(f"1M rows, {title}")]
        for key, label, _ in rows(figures["ticks"]):
            assert key in measured[engine]
            assert re.search(re.escape(label) + r"\s+\d+\.\d\d s", text), label
        assert re.search(r"peak RSS of any question \(process or server\)\s+\d+\.\d\d GiB", text)
    assert re.search(r"\d+ of \d+ targets PASS", done.stdout)
