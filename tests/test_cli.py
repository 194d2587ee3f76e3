from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nbregistry as nbr
from nbregistry.cli import main


def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    assert main(["demo", "--path", str(target)]) == 0
    out = capsys.readouterr().out
    assert "champion alias now -> v2" in out
    assert "<VerifyReport OK" in out and "may not approve production" in out
    assert "tried to approve her own request: refused" in out
    reg = nbr.open_registry(target / "registry")
    champion = reg.get("credit_risk@champion")
    assert champion.version == 2 and champion.stage == "production"
    assert champion.status["approved_by"] == ["val-bob"]
    assert champion.lineage["training_data"]["format"] == "delta"
    assert champion.metrics["auc"] > reg.get("credit_risk", 1).metrics["auc"]
    model = reg.load("credit_risk@champion")
    assert hasattr(model, "predict_proba")
    assert main(["verify", "--uri", str(target / "registry")]) == 0
    assert main(["history", "credit_risk", "--uri", str(target / "registry")]) == 0
    assert "set_alias" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "ghost", "--uri", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nbregistry: no model named 'ghost'") and "Traceback" not in err


def test_console_script_is_installed() -> None:
    """The ``nbregistry`` command that ``pip install`` put next to this interpreter."""
    script = Path(sys.executable).parent / "nbregistry"
    assert script.exists(), f"{script} missing: pip install -e . creates it"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "demo" in out and "verify" in out
