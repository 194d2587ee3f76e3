"""Migration from MLflow: a real MLflow registry (SQLite backend, scikit-learn models logged
with ``mlflow.sklearn``) built in the test, imported, verified and imported again."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nbregistry as nbr
from nbregistry.cli import main
from nbregistry.registry.mlflow_import import target_names
from nbregistry.registry.mlflow_model import pack, unpack
from nbregistry.registry.mlflow_source import redact

WORLD_SCRIPT = Path(__file__).with_name("mlflow_world.py")
# Building a real MLflow registry and starting MLflow to read it take seconds each.
needs_mlflow_world = pytest.mark.slow
PROBE = [[0.5, -1.0, 2.0], [-1.5, 0.25, 0.0]]
# 3 models x 5 versions: aliases, tags, descriptions, every MLflow stage, two versions in
# Production at once (churn), pickled (fraud) and skops (the others) sklearn models.
WORLD = {
    "credit risk": {"versions": 5, "aliases": {"champion": 4, "challenger": 5},
                    "stages": {"1": "Archived", "2": "Archived", "3": "Staging",
                               "4": "Production"},
                    "description": "PD model", "tags": {"team": "risk"}},
    "fraud": {"versions": 5, "format": "cloudpickle", "aliases": {"champion": 2},
              "stages": {"4": "Staging", "5": "Production"}},
    "churn": {"versions": 5, "aliases": {"prod": 3},
              "stages": {"1": "Archived", "2": "Production", "3": "Production"}},
}
# The default policy without its card gate: production needs a validator's approval.
GOVERNED = """
roles = ["admin", "validator", "data_scientist"]
[lifecycle]
stages = ["development", "staging", "production", "archived"]
initial = "development"
exclusive = ["staging", "production"]
replaced_to = "archived"
[lifecycle.transitions]
development = ["staging", "archived"]
staging = ["production", "development", "archived"]
production = ["archived"]
archived = ["development"]
[stages.production]
approvals = 1
approver_roles = ["validator"]
"""


def build_world(folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Create (or add versions to) the MLflow registry in ``folder``, in its own process."""
    done = subprocess.run([sys.executable, str(WORLD_SCRIPT), str(folder), json.dumps(spec)],
                          capture_output=True, text=True, cwd=folder, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_world(tmp_path_factory.mktemp("mlflow"), WORLD)


@pytest.fixture(scope="module")
def first_import(world: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, Any]:
    """A governed registry with the whole MLflow registry imported once (tests that change
    the registry work on a copy)."""
    path = tmp_path_factory.mktemp("imported") / "registry"
    reg = nbr.open_registry(path, user="alice", create=True)
    reg.set_policy(GOVERNED)
    reg.grant_role("bob", "validator")
    return path, nbr.import_mlflow(world["tracking_uri"], registry=reg, progress=False)


def copy_of(first: tuple[Path, Any], tmp_path: Path, user: str = "alice") -> nbr.Registry:
    shutil.copytree(first[0], tmp_path / "copy")
    return nbr.open_registry(tmp_path / "copy", user=user, create=False)


@needs_mlflow_world
def test_three_models_of_five_versions_arrive_with_everything(
        world: dict[str, Any], first_import: tuple[Path, Any]) -> None:
    path, result = first_import
    reg = nbr.open_registry(path, user="alice", create=False)
    assert result.names == {"churn": "churn", "credit risk": "credit_risk", "fraud": "fraud"}
    assert result.stage_map == {"None": None, "Staging": "staging",
                                "Production": "production", "Archived": "archived"}
    assert len(result.imported) == 15 and result.already == 0
    for mlflow_name, runs in world["models"].items():
        name = result.names[mlflow_name]
        for number, run in runs.items():
            mv = reg.get(name, int(number))
            origin = mv.lineage["mlflow"]
            assert (origin["model"], origin["version"]) == (mlflow_name, int(number))
            assert origin["run_id"] == run["run_id"] and origin["source"].startswith("models:/")
            assert origin["run"]["source_name"].endswith("mlflow_world.py")
            assert mv.lineage["imported_from"] == "mlflow" and "scikit-learn" in (
                mv.lineage["packages"])
            assert mv.flavor == "mlflow" and mv.created_by == "alice"
            assert mv.params == {"C": str(0.1 * int(number)), "solver": "lbfgs"}
            assert mv.metrics["auc"] == pytest.approx(0.7 + int(number) / 100)
            assert mv.description == f"{mlflow_name} version {number}"
            assert mv.tags["round"] == number
    # MLflow keeps NaN metrics; the registry refuses them, so the import says so in a tag.
    nan = reg.get("fraud", 2)
    assert "brier" not in nan.metrics and nan.tags["mlflow.nonfinite_metrics"] == "brier"
    risk = reg.get("credit_risk", 1)
    assert risk.tags["team"] == "risk" and risk.card == {"model_description": "PD model"}
    assert [reg.get(ref).version for ref in ("credit_risk@champion", "credit_risk@challenger",
                                             "fraud@champion", "churn@prod")] == [4, 5, 2, 3]
    assert reg.verify().ok


@needs_mlflow_world
def test_stages_go_through_governance(first_import: tuple[Path, Any]) -> None:
    path, result = first_import
    reg = nbr.open_registry(path, user="alice", create=False)
    # Production needs a validator: the import stops at an open request, one step before.
    assert reg.stages("credit_risk") == {"archived": [1, 2], "development": [3, 5],
                                         "staging": [4]}
    assert reg.stages("fraud") == {"development": [1, 2, 3, 4], "staging": [5]}
    assert reg.stages("churn") == {"archived": [1], "development": [2, 4, 5], "staging": [3]}
    open_requests = {(r.model, r.version, r.to) for r in reg.requests()}
    assert open_requests == {("credit_risk", 4, "production"), ("fraud", 5, "production"),
                             ("churn", 3, "production")}
    lines = "\n".join(result.stages)
    assert "credit_risk v4 (MLflow v4, Production): production requested: awaits 1" in lines
    assert "credit_risk v3 (MLflow v3, Staging): waits: staging is taken by v4" in lines
    assert "churn v2 (MLflow v2, Production): not requested: production holds one" in lines
    assert all("imported from MLflow" in r.comment for r in reg.requests())


@needs_mlflow_world
def test_a_second_import_adds_nothing_and_says_so(world: dict[str, Any],
                                                  first_import: tuple[Path, Any],
                                                  tmp_path: Path) -> None:
    reg = copy_of(first_import, tmp_path)
    head = reg.head
    again = nbr.import_mlflow(world["tracking_uri"], registry=reg, progress=False)
    assert reg.head == head and again.events == 0 and not again.changed
    assert again.imported == () and again.aliases == () and again.already == 15
    assert again.summary.startswith("nothing new: the registry already holds all 15")


@needs_mlflow_world
def test_after_the_approval_the_next_import_continues(world: dict[str, Any],
                                                     first_import: tuple[Path, Any],
                                                     tmp_path: Path) -> None:
    copy_of(first_import, tmp_path)
    bob = nbr.open_registry(tmp_path / "copy", user="bob", create=False)
    bob.approve("credit_risk", 4, comment="carried over from MLflow")
    reg = nbr.open_registry(tmp_path / "copy", user="alice", create=False)
    result = nbr.import_mlflow(world["tracking_uri"], registry=reg, progress=False)
    assert result.events == 1 and result.imported == ()
    assert reg.stages("credit_risk") == {"archived": [1, 2], "development": [5],
                                         "production": [4], "staging": [3]}
    assert "credit_risk v3 (MLflow v3, Staging): now in staging" in result.stages
    assert reg.verify().ok


@needs_mlflow_world
def test_mlflow_models_load_through_mlflow_only_when_trusted(
        world: dict[str, Any], first_import: tuple[Path, Any], tmp_path: Path) -> None:
    reg = nbr.open_registry(first_import[0], user="carol", create=False)
    with pytest.raises(nbr.PolicyViolationError, match="trusted=True") as refused:
        reg.load("credit_risk@champion")
    assert refused.value.rule == "untrusted_artifact"
    for name, mlflow_name in (("credit_risk", "credit risk"), ("fraud", "fraud")):
        model = reg.load(name, 4, trusted=True)  # skops- and cloudpickle-saved
        expected = world["models"][mlflow_name]["4"]["proba"]
        assert np.allclose(model.predict_proba(np.array(PROBE)), expected)
    policy = reg.policy.source | {"loading": {"trusted_registrants": ["alice"]}}
    copy = copy_of(first_import, tmp_path)
    copy.set_policy(policy)
    # trust by registrant needs the importer's signature: alice imported without a key
    with pytest.raises(nbr.PolicyViolationError, match="no enrolled signing key"):
        copy.load("churn@prod")
    assert hasattr(copy.load("churn@prod", trusted=True), "predict_proba")


@needs_mlflow_world
def test_new_mlflow_versions_are_imported_by_the_next_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mlflow"
    folder.mkdir()
    # cloudpickle: skops's import alone costs seconds, and the big world covers it.
    small = {"scorecard": {"versions": 2, "aliases": {"champion": 1}, "format": "cloudpickle",
                           "stages": {"1": "Staging", "2": "Production"}}}
    first = build_world(folder, small)
    registry = tmp_path / "registry"
    result = nbr.import_mlflow(first["tracking_uri"], uri=registry, user="alice",
                              progress=False)
    assert [v for *_, v in result.imported] == [1, 2]
    # The default policy wants a model card for production: not requested, and said why.
    assert ("scorecard v2 (MLflow v2, Production): not requested: production: model card "
            "lacks intended_use, limitations") in "\n".join(result.stages)
    reg = nbr.open_registry(registry, create=False)
    assert reg.stages("scorecard") == {"development": [2], "staging": [1]}
    assert reg.requests() == []
    build_world(folder, {"scorecard": {"versions": 1, "aliases": {"champion": 3},
                                       "format": "cloudpickle"}})
    assert main(["import-mlflow", "--tracking-uri", first["tracking_uri"], "--uri",
                 str(registry), "--name", "scorecard=scorecard", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "model 'scorecard' -> scorecard" in out and "stage Production -> production" in out
    assert "imported scorecard v3 as scorecard v3" in out
    assert "alias scorecard@champion -> v3 (MLflow v3)" in out
    assert "imported 1 version(s) (2 already there), 1 alias change(s); 2 event(s)" in out
    assert reg.get("scorecard@champion").lineage["mlflow"]["version"] == 3
    assert reg.verify().ok


def test_mlflow_names_become_registry_names() -> None:
    found = [{"name": "credit risk"}, {"name": "churn"}, {"name": "fraud"}]
    assert target_names(found, {"fraud": "fraud_v2"}) == {
        "credit risk": "credit_risk", "churn": "churn", "fraud": "fraud_v2"}
    with pytest.raises(nbr.InvalidInputError, match="would both become 'churn'"):
        target_names(found, {"fraud": "churn"})
    with pytest.raises(nbr.InvalidInputError, match="does not read from MLflow"):
        target_names(found, {"nope": "x"})
    assert target_names([{"name": "__a  b..c"}], None) == {"__a  b..c": "a_b_c"}


@needs_mlflow_world
def test_bad_requests_write_nothing(world: dict[str, Any], tmp_path: Path) -> None:
    reg = nbr.open_registry(tmp_path / "r", user="alice", create=True)
    head = reg.head
    with pytest.raises(nbr.NotFoundError, match="no registered model named 'nope'"):
        nbr.import_mlflow(world["tracking_uri"], registry=reg, models=["nope"],
                          progress=False)
    with pytest.raises(nbr.InvalidInputError, match="unknown stage 'prod'"):
        nbr.import_mlflow(world["tracking_uri"], registry=reg, stages={"Production": "prod"},
                          progress=False)
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)  # an interpreter without MLflow
    with pytest.raises(nbr.MissingDependencyError, match="nbregistry\\[mlflow\\]") as missing:
        nbr.import_mlflow(world["tracking_uri"], registry=reg, python=bare / "bin" / "python",
                          progress=False)
    assert missing.value.extra == "mlflow"
    assert reg.head == head


def test_the_artifact_is_deterministic_and_unpacks_only_inside(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "code" / "helper.py").write_text("x = 1\n")
    first = pack(model)
    helper = model / "code" / "helper.py"
    os.utime(helper, (1_000_000_000, 1_000_000_000))  # another time and mode, same bytes
    helper.chmod(0o600)
    assert pack(model) == first
    unpack(first, tmp_path / "out")
    assert (tmp_path / "out" / "code" / "helper.py").read_text() == "x = 1\n"
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("MLmodel", "flavors: {}\n")
        archive.writestr("../escaped.py", "boom")
    with pytest.raises(nbr.IntegrityError, match="unsafe path"):
        unpack(evil.getvalue(), tmp_path / "evil")
    assert not (tmp_path / "escaped.py").exists()
    with pytest.raises(nbr.InvalidInputError, match="no MLmodel"):
        pack(tmp_path / "out" / "code")


def test_a_password_in_the_tracking_uri_never_reaches_the_log() -> None:
    assert redact("postgresql://mlflow:s3cret@db:5432/mlflow") == (
        "postgresql://mlflow:***@db:5432/mlflow")
    assert redact("https://user:tok@mlflow.example/") == "https://user:***@mlflow.example/"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
