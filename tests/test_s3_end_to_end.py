"""Every operation on ``s3://`` (a real moto server over HTTP on 127.0.0.1), end to end.

One registry, built once for the module: a training table and a model registered with
reference data, promoted with an approval, predictions logged by several spawned processes
at once, outcomes. Then the monitoring questions, a check that raises alerts and applies
the policy's action, a report and its reverify, a deployment, verify with a witness that is
on S3 too, and the monitoring dashboard built headless. The last test does it again with
the credentials in the usual AWS variables and no ``storage_options`` anywhere.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from nbregistry.demo import credit_data
from nbregistry.store import write_table
from s3server import BUCKET

pytestmark = pytest.mark.slow

FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
PROCESSES, BATCHES, SIZE = 3, 4, 100
POLICY = {"window": "1d", "min_rows": 100, "fairness_group": "sex", "fairness_favorable": 0,
          "on_alert": "retrain", "thresholds": {"psi": {"warn": 0.02, "alert": 0.05}}}


def log_from_processes(uri: str, options: dict[str, str] | None) -> None:
    """PROCESSES spawned scorers log BATCHES batches each, all at once (a barrier)."""
    import capture_workers

    ctx = multiprocessing.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=capture_workers.log_scored_batches,
                         args=(uri, options, w, BATCHES, SIZE, barrier, queue))
             for w in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        errors = [error for _, error in (queue.get(timeout=300) for _ in procs) if error]
    finally:
        for p in procs:
            p.join(30)
    assert not errors, "\n".join(errors)


def build(uri: str, options: dict[str, str] | None, data_uri: str) -> dict[str, Any]:
    """The registry at ``uri``: credit v1 (champion, production) and v2 (a challenger),
    traffic from several processes, then a drifted batch, and outcomes for all of it."""
    from sklearn.linear_model import LogisticRegression

    data = credit_data(3000, seed=3)
    write_table(data_uri, data, storage_options=options)
    alice = nbr.open_registry(uri, user="alice", storage_options=options, create=True)
    alice.grant_role("bob", "validator")
    alice.set_policy({**alice.policy.source, "monitoring": POLICY})
    model = LogisticRegression(max_iter=500).fit(data[FEATURES], data["default"])
    challenger = LogisticRegression(C=0.01, max_iter=500).fit(data[FEATURES], data["default"])
    for fitted in (model, challenger):
        alice.register(fitted, "credit", training_data=data_uri, data_storage_options=options,
                       reference_data=data[FEATURES], reference_target=data["default"],
                       metrics={"auc": 0.7},
                       card={"intended_use": "retail credit", "limitations": "synthetic"})
    alice.set_alias("credit", "champion", 1)
    alice.request_promotion("credit", 1, to="staging")
    alice.request_promotion("credit", 1, to="production")
    bob = nbr.open_registry(uri, user="bob", storage_options=options)
    bob.approve("credit", 1, comment="validated")

    log_from_processes(uri, options)
    mon = alice.monitor("credit")
    shifted = credit_data(300, seed=9)
    shifted["debt_ratio"] += 0.4
    mon.log_predictions(shifted, model.predict_proba(shifted[FEATURES]), attributes=["sex"],
                        ids=[f"shifted-{i}" for i in range(len(shifted))])
    ids = mon.tables.predictions.read(columns=["prediction_id"])["prediction_id"].to_pylist()
    actuals = {f"w{w}-{b}-{i}": credit_data(BATCHES * SIZE, seed=100 + w)["default"]
               .iloc[b * SIZE + i] for w in range(PROCESSES) for b in range(BATCHES)
               for i in range(SIZE)}
    actuals.update({f"shifted-{i}": v for i, v in enumerate(shifted["default"])})
    mon.log_outcomes(ids, [int(actuals[i]) for i in ids])
    return {"uri": uri, "options": options, "alice": alice, "bob": bob, "mon": mon,
            "ids": ids, "data_uri": data_uri}


@pytest.fixture(scope="module")
def world(s3_server: dict[str, str]) -> dict[str, Any]:
    uri = f"s3://{BUCKET}/e2e-{uuid.uuid4().hex[:12]}"
    return build(uri, dict(s3_server), f"{uri}-data/applications")


def test_predictions_from_several_processes_are_all_there(world: dict[str, Any]) -> None:
    ids = world["ids"]
    expected = {f"w{w}-{b}-{i}" for w in range(PROCESSES) for b in range(BATCHES)
                for i in range(SIZE)} | {f"shifted-{i}" for i in range(300)}
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    outcomes = world["mon"].tables.outcomes.read(columns=["prediction_id"])
    assert sorted(outcomes["prediction_id"].to_pylist()) == sorted(ids)


def test_questions_and_a_check_with_alerts_and_an_action(world: dict[str, Any]) -> None:
    mon, alice = world["mon"], world["alice"]
    head = alice.refresh().head
    drift = {r["feature"]: r for r in mon.drift().to_pylist()}
    assert drift["debt_ratio"]["status"] != "ok" and drift["income"]["psi"] is not None
    performance = mon.performance(window=None).to_pylist()
    assert performance and performance[0]["n"] == len(world["ids"])
    fairness = mon.fairness("sex", favorable=0).to_pylist()
    assert {r["group"] for r in fairness} == {"F", "M"}
    replay = mon.replay(2)
    assert replay.n == len(world["ids"]) and "roc_auc" in replay.metrics
    assert alice.refresh().head == head  # questions never write
    result = mon.check()
    assert result.alerts and [a.action for a in result.actions] == ["retrain_requested"]
    assert alice.get("credit", 1).status.get("retrain_requested")
    assert world["bob"].alerts("credit")


def test_a_report_and_its_reverify(world: dict[str, Any], tmp_path: Path) -> None:
    report = nbr.run_report("validation", output_dir=tmp_path / "out", uri=world["uri"],
                            storage_options=world["options"], user="bob", model="credit",
                            version=1, progress=False, pdf=False)
    assert report.event is not None and report.figures
    # The kernel read the training table and the logged predictions on S3, pinned.
    assert world["data_uri"] in report.tables
    assert any(t.endswith("monitoring/credit/predictions") for t in report.tables), report.tables
    again = nbr.reverify(report, storage_options=world["options"],
                         output_dir=tmp_path / "again", progress=False)
    assert again.ok, again


def test_deploy_and_verify_with_a_witness_on_s3(world: dict[str, Any]) -> None:
    options = world["options"]
    witness = f"s3://{BUCKET}/witness-{uuid.uuid4().hex[:8]}"
    alice = nbr.open_registry(world["uri"], user="alice", storage_options=options,
                              witness=witness, witness_storage_options=options)
    alice.record_deployment("credit", 1, "scoring-eu")
    assert alice.deployments("credit").num_rows == 1
    report = nbr.verify(world["uri"], storage_options=options, witness=witness,
                        witness_storage_options=options)
    assert report.ok, report.problems
    assert any(c.name == "witness" and c.ok for c in report.checks)


def test_the_panels_headless(world: dict[str, Any]) -> None:
    from nbregistry.notebook.panels import (
        ComparisonPanel,
        MonitoringDashboard,
        PromotionPanel,
        RegistryBrowser,
    )

    reg = nbr.open_registry(world["uri"], user="bob", storage_options=world["options"])
    panel = MonitoringDashboard(reg, "credit", window="2d")
    assert not panel.failed, panel.status
    drift, perf, fair, alerts = (page.value for page in panel.pages)
    assert "<svg" in drift and "debt_ratio" in drift
    assert "<svg" in perf and "adverse impact ratio" in fair and "debt_ratio" in alerts
    browser = RegistryBrowser(reg)
    assert [r["version"] for r in browser.rows] == [1, 2] and not browser.failed
    assert not ComparisonPanel(reg, "credit", [1, 2], chart=False).failed
    promotion = PromotionPanel(world["alice"], "credit", 2)
    promotion.request_button.click()
    assert not promotion.failed and "promoted" in promotion.status, promotion.status
    assert reg.get("credit", 2).stage == "staging"


def test_credentials_from_the_usual_aws_variables(s3_server: dict[str, str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``storage_options`` anywhere: deltalake, obstore, the spawned scorers and the
    report kernel all take the endpoint and the credentials from the environment."""
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    uri = f"s3://{BUCKET}/env-{uuid.uuid4().hex[:12]}"
    witness = f"s3://{BUCKET}/env-witness-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("NBREGISTRY_WITNESS", witness)
    world = build(uri, None, f"{uri}-data/applications")
    mon = world["mon"]
    assert mon.drift().num_rows and mon.performance(window=None).num_rows
    assert mon.check().actions
    report = nbr.run_report("validation", output_dir=tmp_path / "out", uri=uri, user="bob",
                            model="credit", version=1, progress=False, pdf=False)
    assert world["data_uri"] in report.tables
    assert nbr.reverify(report, output_dir=tmp_path / "again", progress=False).ok
    deployed = subprocess.run(  # the command line takes no storage options at all
        [sys.executable, "-m", "nbregistry.cli", "deploy", "credit", "1", "--target",
         "scoring-eu", "--uri", uri], capture_output=True, text=True, timeout=120,
        env={**os.environ, "NBREGISTRY_USER": "alice"})
    assert deployed.returncode == 0, deployed.stderr
    assert world["alice"].deployments("credit").num_rows == 1
    verified = nbr.verify(uri)
    assert verified.ok and any(c.name == "witness" and c.ok for c in verified.checks)
    cli = subprocess.run([sys.executable, "-m", "nbregistry.cli", "verify", uri],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    from nbregistry.notebook.panels import MonitoringDashboard

    assert not MonitoringDashboard(nbr.open_registry(uri, user="bob"), "credit").failed
