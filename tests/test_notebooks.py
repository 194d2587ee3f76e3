"""The notebooks per role run top to bottom under papermill, in a real kernel, against a
registry each builds in its own folder, and leave the registry in the state they describe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
BUDGET = 180  # seconds; each takes 26-41 s on this 2-core machine with other work running


def run(name: str, folder: Path) -> list[list[dict[str, Any]]]:
    """Execute the notebook with ``workdir=folder``; the outputs of each code cell."""
    import papermill

    started = time.perf_counter()
    out = papermill.execute_notebook(str(NOTEBOOKS / name), str(folder / name),
                                     parameters={"workdir": str(folder)}, cwd=str(folder),
                                     kernel_name="python3", progress_bar=False)
    seconds = time.perf_counter() - started
    print(f"\n{name} under papermill: {seconds:.1f} s")
    cells = [cell.get("outputs", []) for cell in out["cells"] if cell["cell_type"] == "code"]
    noise = [o for outputs in cells for o in outputs
             if o["output_type"] == "error" or o.get("name") == "stderr"]
    assert noise == []  # no error, no warning on stderr
    assert seconds < BUDGET
    return cells


def svgs(cells: list[list[dict[str, Any]]]) -> int:
    return sum("image/svg+xml" in o.get("data", {}) for outputs in cells for o in outputs)


def text(cells: list[list[dict[str, Any]]]) -> str:
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for outputs in cells for o in outputs)


def test_monitoring_notebook(tmp_path: Path) -> None:
    cells = run("monitoring.ipynb", tmp_path)
    reg = nbr.open_registry(tmp_path / "registry", user="auditor", create=False)
    assert reg.get("credit_risk", stage="production").version == 1
    assert reg.get("credit_risk", 1).status.get("retrain_requested")
    assert {e.payload["feature"] for e in reg.alerts("credit_risk")} >= {"debt_ratio"}
    assert svgs(cells) >= 5  # heatmap, drift bars, performance, fairness, replay
    [dashboard] = [outputs for outputs in cells if any(
        "MonitoringDashboard" in o.get("data", {}).get("text/plain", "") for o in outputs)]
    assert len(dashboard) == 1  # the panel alone: its progress bars stay inside it
    assert "ReplayResult credit_risk v2 vs served v1" in text(cells)
    assert reg.verify().ok


def test_compliance_notebook(tmp_path: Path) -> None:
    cells = run("compliance.ipynb", tmp_path)
    reg = nbr.open_registry(tmp_path / "registry", user="auditor", create=False)
    production = reg.get("credit_risk", stage="production")
    assert production.version == 1 and production.status["approved_by"] == ["val-bob"]
    reports = [e.payload["template"] for e in reg.events("credit_risk") if e.action == "report"]
    assert sorted(reports) == ["fair_lending", "monitoring", "sox_change", "validation"]
    assert "FAIL report:validation" in text(cells)  # the gate before the report was filed
    assert "refused:" in text(cells)
    assert svgs(cells) >= 2
    assert reg.verify().ok


def test_audit_notebook(tmp_path: Path) -> None:
    cells = run("audit.ipynb", tmp_path)
    shown = text(cells)
    assert "credit_risk v1" in shown and "val-bob" in shown  # who held production at T
    assert "VerifyReport OK" in shown
    assert "not among the keys pinned" in shown  # the forged pin is caught
    assert "ReverifyResult OK" in shown and "modified" in shown
    assert svgs(cells) >= 1
