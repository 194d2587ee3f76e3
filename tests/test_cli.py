from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nbregistry as nbr
from nbregistry.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole product: register, approve (signed), deploy, monitor, alert, report, verify."""
    target = tmp_path / "demo"
    assert main(["demo", "--path", str(target)]) == 0
    out = capsys.readouterr().out
    assert "tried to approve her own request: refused" in out
    assert "<VerifyReport OK" in out and "witness" in out
    reg = nbr.open_registry(target / "registry", create=False)
    champion = reg.get("credit_risk@champion")
    assert champion.version == 2 and champion.stage == "production"
    assert champion.status["approved_by"] == ["val-bob"]
    assert reg.requests("credit_risk", status="promoted")[-1].approvals[0].signed
    assert champion.lineage["training_data"]["format"] == "delta"
    assert reg.deployments("credit_risk").num_rows == 1
    assert champion.status.get("retrain_requested")  # the drift was caught and acted on
    actions = reg.history("credit_risk").column("action").to_pylist()
    assert actions.count("report") == 4 and "alert" in actions and "seal" in actions
    assert (target / "reports" / "index.html").exists()
    model = reg.load("credit_risk@champion")  # skops, with the tree type the policy trusts
    assert hasattr(model, "predict_proba")
    assert main(["verify", "--uri", str(target / "registry"), "--witness",
                 str(target / "witness")]) == 0
    assert main(["history", "credit_risk", "--uri", str(target / "registry")]) == 0
    assert "set_alias" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nbr.open_registry(tmp_path / "r", create=True)
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


def test_read_commands_never_create_a_registry(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--uri", str(tmp_path / "typo")]) == 2
    assert "no registry at" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_deploy_and_verify_with_a_head(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(tmp_path / "r")
    alice = nbr.open_registry(uri, user="alice")
    alice.set_policy({"roles": ["admin"], "lifecycle": {
        "stages": ["dev", "prod"], "transitions": {"dev": ["prod"]}}})
    mv = alice.register({"w": 1}, "m")
    assert main(["deploy", "m", "1", "--target", "eu", "--uri", uri, "--stage", "prod"]) == 2
    assert "only the version approved for prod" in capsys.readouterr().err
    alice.request_promotion("m", 1, to="prod")
    assert main(["deploy", "m", "1", "--target", "eu", "--uri", uri, "--stage", "prod",
                 "--sha256", mv.sha256]) == 0
    assert "matches the approved artifact" in capsys.readouterr().out
    seq, digest = alice.refresh().head
    assert main(["verify", "--uri", uri, "--expected-head", f"{seq}:{digest}"]) == 0
    assert main(["verify", "--uri", uri, "--expected-head", f"{seq + 5}:{digest}"]) == 1
    assert "truncated" in capsys.readouterr().out
