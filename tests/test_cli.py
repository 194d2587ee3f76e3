from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import nbregistry as nbr
from nbregistry.cli import _parser, main
from nbregistry.demo import FEATURES, credit_data
from nbregistry.store import write_table

DOC = Path(__file__).parents[1] / "docs" / "cli.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command, usage errors and --version included."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The whole product: register, approve (signed), deploy, monitor, alert, report, verify."""
    target = tmp_path / "demo"
    assert main(["demo", "--path", str(target)]) == 0
    out, err = capfd.readouterr()
    assert "tried to approve her own request: refused" in out
    assert "<VerifyReport OK" in out and "witness" in out and "pinned_keys" in out
    assert "without encryption" not in err  # the report kernel's TCP warning
    reg = nbr.open_registry(target / "registry", create=False)
    champion = reg.get("credit_risk@champion")
    assert champion.version == 2 and champion.stage == "production"
    assert champion.status["approved_by"] == ["val-bob"]
    assert reg.requests("credit_risk", status="promoted")[-1].approvals[0].signed
    assert champion.lineage["training_data"]["format"] == "delta"
    assert reg.deployments("credit_risk").num_rows == 1
    assert champion.status.get("retrain_requested")  # the drift was caught and acted on
    actions = reg.history("credit_risk").column("action").to_pylist()
    # four in the pack, and the validation report production requires before approval
    assert actions.count("report") == 5 and "alert" in actions and "seal" in actions
    assert (target / "reports" / "index.html").exists()
    model = reg.load("credit_risk@champion")  # skops, with the tree type the policy trusts
    assert hasattr(model, "predict_proba")
    assert main(["verify", str(target / "registry"), "--witness", str(target / "witness"),
                 "--trusted-keys", str(target / "pinned-keys.json")]) == 0
    assert main(["history", "credit_risk", "--uri", str(target / "registry")]) == 0
    assert "set_alias" in capfd.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nbr.open_registry(tmp_path / "r", create=True)
    code, _, err = run(capsys, "history", "ghost", "--uri", str(tmp_path / "r"))
    assert code == 1
    assert err.startswith("nbregistry: no model named 'ghost'") and "Traceback" not in err
    assert err.count("\n") == 1


def test_console_script_is_installed() -> None:
    """The ``nbregistry`` command that ``pip install`` put next to this interpreter."""
    script = Path(sys.executable).parent / "nbregistry"
    assert script.exists(), f"{script} missing: pip install -e . creates it"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "demo" in out and "verify" in out and "exit codes" in out


def test_read_commands_never_create_a_registry(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("models", "history", "verify"):
        code, _, err = run(capsys, command, "--uri", str(tmp_path / "typo"))
        assert code == 1 and "typo" in err, command
    assert not (tmp_path / "typo").exists()


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version")[:2] == (0, f"nbregistry {nbr.__version__}\n")
    code, _, err = run(capsys, "models", "--no-such-option")
    assert code == 2 and "unrecognized arguments" in err
    assert run(capsys, "history", "--limit", "0")[0] == 2


def test_json_output_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    from nbregistry.cli.options import emit_json

    emit_json({"value": float("nan"), "rows": [{"psi": float("inf")}, 1.5],
               "at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC)})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == {
        "value": None, "rows": [{"psi": None}, 1.5], "at": "2026-03-01T09:30:00.000000Z"}


def test_every_subcommand_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    names = commands()
    assert {"check", "log-predictions", "log-outcomes", "verify", "models"} <= names
    for name in names:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and re.search(r"^examples?:\n  nbregistry " + name, out, re.M), name


def commands() -> set[str]:
    import argparse

    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_deploy_and_verify_with_a_head(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(tmp_path / "r")
    alice = nbr.open_registry(uri, user="alice")
    alice.set_policy({"roles": ["admin"], "lifecycle": {
        "stages": ["dev", "prod"], "transitions": {"dev": ["prod"]}}})
    mv = alice.register({"w": 1}, "m")
    code, _, err = run(capsys, "deploy", "m", "1", "--target", "eu", "--uri", uri,
                       "--stage", "prod")
    assert code == 1 and "only the version approved for prod" in err
    alice.request_promotion("m", 1, to="prod")
    code, out, _ = run(capsys, "deploy", "m", "1", "--target", "eu", "--uri", uri,
                       "--stage", "prod", "--sha256", mv.sha256)
    assert code == 0 and "matches the approved artifact" in out
    code, out, _ = run(capsys, "deploy", "m", "1", "--target", "us", "--uri", uri,
                       "--stage", "prod", "--sha256", "ab" * 32)
    assert code == 4 and "DOES NOT MATCH" in out  # recorded, as evidence
    seq, digest = alice.refresh().head
    assert run(capsys, "verify", uri, "--expected-head", f"{seq}:{digest}")[0] == 0
    code, out, _ = run(capsys, "verify", "--uri", uri, "--expected-head",
                       f"{seq + 5}:{digest}")
    assert code == 4 and "truncated" in out
    code, out, _ = run(capsys, "verify", uri, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["head"] == {"seq": seq, "hash": digest}
    assert {c["name"] for c in report["checks"]} >= {"chain", "artifacts"}
    code, _, err = run(capsys, "verify", uri, "--uri", str(tmp_path / "other"))
    assert code == 1 and "two registries named" in err


def test_verify_with_pinned_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    uri = str(tmp_path / "r")
    alice = nbr.open_registry(uri, user="alice")
    alice.set_policy({"roles": ["admin"], "lifecycle": {
        "stages": ["dev", "prod"], "transitions": {"dev": ["prod"]}}})
    bob_key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    alice.register_key(_pem(bob_key), user="bob")
    key_file = tmp_path / "bob.pem"
    key_file.write_bytes(bob_key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    nbr.open_registry(uri, user="bob", signing_key=bob_key).register({"w": 1}, "m")
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({"bob": _pem(bob_key).decode()}))
    assert run(capsys, "verify", uri, "--trusted-keys", str(pins))[0] == 0
    pins.write_text(json.dumps({"bob": [_pem(other).decode()]}))
    code, out, _ = run(capsys, "verify", uri, "--trusted-keys", str(pins))
    assert code == 4 and "not among the keys pinned" in out
    pins.write_text("{not json")
    code, _, err = run(capsys, "verify", uri, "--trusted-keys", str(pins))
    assert code == 1 and "is not JSON" in err
    # bob's events must be signed: the CLI takes his key from a file
    alice.request_promotion("m", 1, to="prod")
    deploy = ["deploy", "m", "1", "--target", "x", "--stage", "prod", "--uri", uri,
              "--user", "bob"]
    code, _, err = run(capsys, *deploy)
    assert code == 1 and "must be signed" in err
    assert run(capsys, *deploy, "--signing-key", str(key_file))[0] == 0
    code, _, err = run(capsys, *deploy, "--signing-key", str(tmp_path / "nope.pem"))
    assert code == 1 and "--signing-key" in err


def _pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))


# -- models and history ----------------------------------------------------------------------

@pytest.fixture
def browsed(tmp_path: Path) -> str:
    uri = str(tmp_path / "r")
    reg = nbr.open_registry(uri, user="alice")
    for i in range(3):
        reg.register({"w": i}, "scorecard", metrics={"auc": 0.7 + i / 100, "gini": 0.4},
                     params={"depth": i}, description="a very long description " * 8)
    reg.register({"w": 9}, "other", metrics={"rmse": 1.5})  # no auc: no NaN printed
    reg.set_alias("scorecard", "champion", 2)
    reg.request_promotion("scorecard", 2, to="staging",
                          comment="see \x1b[2J\x1b[31mthe ticket\x1b[0m")
    return uri


def test_models_and_history_fit_the_terminal(browsed: str, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for width in (60, 100, 160):
        monkeypatch.setenv("COLUMNS", str(width))
        for argv in (["models"], ["history"], ["history", "scorecard", "--limit", "3"]):
            code, out, _ = run(capsys, *argv, "--uri", browsed)
            assert code == 0 and out.strip()
            lines = out.splitlines()
            assert max(len(line) for line in lines) <= width, (argv, width)
            assert not re.search(r"[0-9a-f]{64}", out)  # hashes are shortened
            assert "nan" not in out.lower().split() and "None" not in out
            assert "\x1b" not in out  # a payload cannot drive the terminal
    monkeypatch.setenv("COLUMNS", "160")
    out = run(capsys, "models", "--uri", browsed)[1]
    header, _, *rows = out.splitlines()
    assert header.split()[:5] == ["name", "v", "stage", "aliases", "auc"]
    assert len(rows) == 4 and "champion" in rows[2] and "0.71" in rows[2]
    assert rows[0].split()[:3] == ["other", "1", "development"] and "1.5" in rows[0]
    monkeypatch.setenv("COLUMNS", "60")
    assert "too narrow for" in run(capsys, "models", "--uri", browsed)[1]


def test_models_and_history_for_machines(browsed: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    versions = json.loads(run(capsys, "models", "--uri", browsed, "--json")[1])
    assert [(v["name"], v["version"]) for v in versions] == [
        ("other", 1), ("scorecard", 1), ("scorecard", 2), ("scorecard", 3)]
    first = versions[1]
    assert first["metrics"] == {"auc": 0.7, "gini": 0.4} and first["params"] == {"depth": "0"}
    assert len(first["sha256"]) == 64 and first["created_at"].endswith("Z")
    assert "rmse" not in first["metrics"] and versions[0]["metrics"] == {"rmse": 1.5}
    newest = json.loads(run(capsys, "models", "--uri", browsed, "--limit", "2", "--json")[1])
    assert [(v["name"], v["version"]) for v in newest] == [("other", 1), ("scorecard", 3)]
    one = json.loads(run(capsys, "models", "--model", "other", "--uri", browsed, "--json")[1])
    assert [v["name"] for v in one] == ["other"]
    events = json.loads(run(capsys, "history", "--uri", browsed, "--json")[1])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["action"] == "request_promotion" and len(events[-1]["hash"]) == 64
    assert events[-1]["payload"]["comment"].startswith("see \x1b[2J")  # as recorded
    tail = json.loads(run(capsys, "history", "--model", "scorecard", "--limit", "2",
                          "--uri", browsed, "--json")[1])
    assert [e["action"] for e in tail] == ["set_alias", "request_promotion"]
    code, _, err = run(capsys, "history", "scorecard", "--model", "other", "--uri", browsed)
    assert code == 1 and "two models named" in err


# -- monitoring --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from monitored import monitored

    uri = str(tmp_path_factory.mktemp("cli") / "r")
    monitored(uri, days=3, rows_per_day=300)  # the last day's debt ratio is shifted
    yield uri


def test_check_exit_codes_and_window(watched: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "credit", "--uri", watched, "--window", "1d")
    assert code == 3
    summary, *lines = out.splitlines()
    assert summary.startswith("credit v1, ") and "2 alert(s)" in summary
    alerts = [line for line in lines if line.startswith("ALERT ")]
    assert len(alerts) == 2 and any("psi debt_ratio = " in a for a in alerts)
    assert any(line.startswith("action: ") for line in lines) is False  # on_alert: none
    code, out, _ = run(capsys, "check", "credit", "--uri", watched, "--json")
    found = json.loads(out)
    start, end = (datetime.fromisoformat(t) for t in found["window"])
    assert code == 3 and end - start == timedelta(days=7)  # the policy's window
    assert not found["ok"] and found["seal"] < found["alerts"][0]["seq"]
    assert {f["status"] for f in found["figures"]} >= {"ok", "alert"}
    found = json.loads(run(capsys, "check", "credit", "--uri", watched, "--window", "12h",
                           "--json")[1])
    start, end = (datetime.fromisoformat(t) for t in found["window"])
    assert end - start == timedelta(hours=12)
    code, _, err = run(capsys, "check", "credit", "--uri", watched, "--window", "1x")
    assert code == 1 and "must be a positive length" in err


def test_check_without_alerts_exits_0(watched: str, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    uri = str(tmp_path / "copy")
    shutil.copytree(watched, uri)
    reg = nbr.open_registry(uri, user="alice")
    source = reg.policy.source
    reg.set_policy({**source, "monitoring": {**source["monitoring"], "thresholds": {
        "psi": {"warn": 50, "alert": 100}}}})
    before = reg.refresh().head[0]
    code, out, _ = run(capsys, "check", "credit", "--uri", uri)
    assert code == 0 and "0 alert(s)" in out and "ALERT" not in out
    assert [e["action"] for e in json.loads(run(capsys, "history", "--uri", uri, "--json")[1])
            if e["seq"] > before] == ["seal"]


def scored(n: int = 120, seed: int = 11, prefix: str = "app") -> Any:
    frame = credit_data(n, seed=seed)
    frame["application_id"] = [f"{prefix}-{i}" for i in range(n)]
    frame["score"] = [0.1 + (i % 8) / 10 for i in range(n)]
    frame["scored_at"] = datetime.now(UTC) - timedelta(hours=2)
    return frame


def test_log_predictions_and_outcomes_from_files(watched: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    uri = str(tmp_path / "copy")
    shutil.copytree(watched, uri)
    mon = nbr.open_registry(uri).monitor("credit")
    rows = mon.tables.predictions.read().num_rows
    frame = scored()
    frame.drop(columns=["default"]).to_parquet(tmp_path / "scored.parquet")
    code, out, _ = run(capsys, "log-predictions", "credit", str(tmp_path / "scored.parquet"),
                       "--uri", uri, "--id-column", "application_id", "--ts-column",
                       "scored_at", "--attributes", "sex")
    assert code == 0 and out.startswith("logged 120 predictions of credit v1")
    logged = mon.tables.predictions.read()
    assert logged.num_rows == rows + 120
    mine = logged.filter(pa.compute.starts_with(logged["prediction_id"], "app-"))
    assert sorted(mine["sex"].to_pylist()) == sorted(frame["sex"])
    assert set(mine["ts"].to_pylist()) == {frame["scored_at"][0].to_pydatetime()}
    frame[["application_id", "default"]].to_csv(tmp_path / "outcomes.csv", index=False)
    code, out, _ = run(capsys, "log-outcomes", "credit", str(tmp_path / "outcomes.csv"),
                       "--uri", uri, "--id-column", "application_id", "--actual-column",
                       "default", "--json")
    receipt = json.loads(out)
    assert code == 0 and receipt["written"] == 120 and receipt["unknown"] == 0
    again = json.loads(run(capsys, "log-outcomes", "credit", str(tmp_path / "outcomes.csv"),
                           "--uri", uri, "--id-column", "application_id",
                           "--actual-column", "default", "--json")[1])
    assert again["written"] == 0 and again["already_recorded"] == 120
    # CSV with text times, and a Delta table
    csv = scored(prefix="csv").drop(columns=["default"])
    csv["scored_at"] = "2026-03-01T09:30:00Z"
    csv.to_csv(tmp_path / "scored.csv", index=False)
    code, out, _ = run(capsys, "log-predictions", "credit", str(tmp_path / "scored.csv"),
                       "--uri", uri, "--ts-column", "scored_at", "--json")
    receipt = json.loads(out)
    assert code == 0 and receipt["rows"] == 120
    assert set(receipt["ignored_columns"]) == {"sex", "application_id"}
    delta = str(tmp_path / "scored-delta")
    write_table(delta, scored(prefix="delta").drop(columns=["default"]))
    code, out, _ = run(capsys, "log-predictions", "credit", delta, "--uri", uri,
                       "--id-column", "application_id")
    assert code == 0 and "logged 120 predictions" in out
    assert mon.tables.predictions.read().num_rows == rows + 360


def test_batch_logs_need_only_the_core_install(watched: str, tmp_path: Path) -> None:
    """A scoring host without pandas, numpy or DuckDB logs its batch from the command line."""
    from test_layers import BLOCK

    frame = scored(50, prefix="lean")
    frame.drop(columns=["default"]).to_parquet(tmp_path / "scored.parquet")
    frame[["application_id", "default"]].to_csv(tmp_path / "outcomes.csv", index=False)
    uri = str(tmp_path / "copy")
    shutil.copytree(watched, uri)
    code = ("BLOCKED = {'pandas', 'numpy', 'duckdb', 'scipy', 'sklearn', 'IPython', "
            "'papermill', 'polars'}\n" + BLOCK + "from nbregistry.cli import main\n"
            f"print(main(['log-predictions', 'credit', {str(tmp_path / 'scored.parquet')!r}, "
            f"'--id-column', 'application_id', '--uri', {uri!r}]))\n"
            f"print(main(['log-outcomes', 'credit', {str(tmp_path / 'outcomes.csv')!r}, "
            f"'--id-column', 'application_id', '--actual-column', 'default', '--uri', {uri!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.splitlines()[1::2] == ["0", "0"], done.stdout + done.stderr
    assert "50 written" in done.stdout


def test_bad_batches_write_nothing(watched: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    frame = scored().drop(columns=["default"])
    mon = nbr.open_registry(watched).monitor("credit")
    version = mon.tables.predictions.snapshot().version
    frame.drop(columns=["income"]).to_parquet(tmp_path / "no_income.parquet")
    frame.to_parquet(tmp_path / "ok.parquet")
    (tmp_path / "scored.txt").write_text("not a table")
    for argv, message in (
            ([str(tmp_path / "no_income.parquet")], "income"),
            ([str(tmp_path / "ok.parquet"), "--score", "proba"], "no column 'proba' (--score)"),
            ([str(tmp_path / "ok.parquet"), "--ts-column", "sex"], "'M' is not an ISO 8601 time"),
            ([str(tmp_path / "missing.csv")], "cannot read"),
            ([str(tmp_path / "scored.txt")], "neither a .parquet or .csv file nor a Delta")):
        code, _, err = run(capsys, "log-predictions", "credit", *argv, "--uri", watched)
        assert code == 1 and message in err and err.count("\n") == 1, (argv, err)
    assert mon.tables.predictions.snapshot().version == version


# -- the documented commands ------------------------------------------------------------------

def documented() -> list[str]:
    """Every line of the bash blocks in docs/cli.md."""
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def write_inputs(folder: Path) -> None:
    """The files docs/cli.md says its batch jobs wrote."""
    frame = scored(300, seed=21, prefix="doc")
    frame.drop(columns=["default"]).to_parquet(folder / "scored.parquet")
    frame[FEATURES].assign(probability=frame["score"]).to_csv(folder / "scored.csv",
                                                              index=False)
    write_table(str(folder / "scored-delta"),
                scored(300, seed=22, prefix="delta").drop(columns=["default"]))
    frame[["application_id", "default"]].rename(columns={"default": "defaulted"}).to_csv(
        folder / "outcomes.csv", index=False)
    pq.read_table(folder / "scored.parquet")  # readable before the walk starts
    world = Path(__file__).parent / "mlflow_world.py"  # the MLflow registry it imports
    subprocess.run([sys.executable, str(world), str(folder), json.dumps(
        {"churn": {"versions": 2, "format": "skops", "aliases": {"champion": 2}}})],
        check=True, capture_output=True)


@pytest.mark.slow
def test_every_documented_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """In order, as a reader would type them, each with the exit code its comment gives
    (0 when none); SEQ:HASH stands for a head recorded earlier."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    write_inputs(tmp_path)
    ran = set()
    for line in documented():
        command, _, comment = line.partition("#")
        words = shlex.split(command)
        if words[0] == "export":
            monkeypatch.setenv(*words[1].split("=", 1))
            continue
        assert words[0] == "nbregistry", line
        if "SEQ:HASH" in words:
            seq, digest = nbr.open_registry(create=False).head
            words[words.index("SEQ:HASH")] = f"{seq}:{digest}"
        expected = re.search(r"exit (\d)", comment)
        code, out, err = run(capsys, *words[1:])
        assert code == (int(expected[1]) if expected else 0), (line, out[-2000:], err)
        assert "Traceback" not in err
        ran.add(words[1])
    assert commands() <= ran, "document every subcommand in docs/cli.md"
