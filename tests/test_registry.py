from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import nbregistry as nbr
from conftest import TinyModel


def test_versions_count_per_model(registry: nbr.Registry) -> None:
    a1 = registry.register(TinyModel(1), "a")
    a2 = registry.register(TinyModel(2), "a")
    b1 = registry.register(TinyModel(3), "b")
    assert (a1.version, a2.version, b1.version) == (1, 2, 1)
    assert registry.models() == ["a", "b"]


def test_register_records_everything(registry: nbr.Registry) -> None:
    mv = registry.register(TinyModel(2), "credit_risk", params={"C": 0.5, "layers": [1, 2]},
                           metrics={"auc": 0.81}, tags={"team": "risk"},
                           description="baseline", card={"intended_use": "scoring"})
    got = registry.get("credit_risk", 1)
    assert got == mv
    assert got.params == {"C": 0.5, "layers": [1, 2]}
    assert got.metrics == {"auc": 0.81}
    assert got.tags == {"team": "risk"}
    assert got.card == {"intended_use": "scoring"}
    assert got.created_by == "alice"
    assert len(got.sha256) == 64 and got.size > 0
    assert got.lineage["python"] and "pyarrow" in got.lineage["packages"]
    assert registry.load("credit_risk", 1, trusted=True) == TinyModel(2)


def test_aliases_move_and_resolve(registry: nbr.Registry) -> None:
    for w in (1, 2, 3):
        registry.register(TinyModel(w), "m")
    registry.set_alias("m", "champion", 1)
    assert registry.get("m@champion").version == 1
    registry.set_alias("m", "champion", 3)
    assert registry.get("m@champion").version == 3
    assert registry.get("m", 1).aliases == ()
    assert registry.get("m", 3).aliases == ("champion",)
    assert registry.load("m@champion", trusted=True) == TinyModel(3)
    registry.delete_alias("m", "champion")
    with pytest.raises(nbr.NotFoundError, match="no alias 'champion'"):
        registry.get("m@champion")
    events = registry.history("m").to_pylist()
    assert [e["action"] for e in events] == ["register"] * 3 + ["set_alias"] * 2 + [
        "delete_alias"]


def test_get_latest_and_missing(registry: nbr.Registry) -> None:
    registry.register(TinyModel(), "m")
    registry.register(TinyModel(), "m")
    assert registry.get("m").version == 2
    with pytest.raises(nbr.NotFoundError, match="no version 7"):
        registry.get("m", 7)
    with pytest.raises(nbr.NotFoundError, match="no model named 'zzz'"):
        registry.get("zzz")
    with pytest.raises(nbr.NotFoundError, match="stage 'production'"):
        registry.get("m", stage="production")


def test_second_process_view_sees_new_writes(registry_uri: str) -> None:
    writer = nbr.open_registry(registry_uri, user="alice")
    reader = nbr.open_registry(registry_uri, user="bob")
    writer.register(TinyModel(), "m")
    assert reader.get("m").version == 1
    reader.register(TinyModel(), "m")
    assert writer.get("m").version == 2
    assert writer.get("m", 2).created_by == "bob"


def test_search_filters_and_orders(registry: nbr.Registry) -> None:
    for i, auc in enumerate([0.70, 0.90, 0.80]):
        registry.register(TinyModel(i), "m", metrics={"auc": auc, "ks": 0.3},
                          tags={"team": "risk" if i else "ops"}, params={"depth": i})
    registry.register(TinyModel(), "other", metrics={"auc": 0.99})
    registry.set_alias("m", "champion", 2)
    table = registry.search("m", metric="auc")
    assert table.column("version").to_pylist() == [2, 3, 1]
    assert table.column("metrics.auc").to_pylist() == [0.9, 0.8, 0.7]
    assert registry.search("m", min_metrics={"auc": 0.75}).num_rows == 2
    assert registry.search("m", max_metrics={"auc": 0.75}).num_rows == 1
    assert registry.search("m", tags={"team": "risk"}).column("version").to_pylist() == [2, 3]
    assert registry.search(alias="champion").column("version").to_pylist() == [2]
    assert registry.search().num_rows == 4
    assert registry.search(limit=1, metric="auc").column("name").to_pylist() == ["other"]
    frame = registry.search("m").to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame["params.depth"]) == ["0", "1", "2"]
    with pytest.raises(nbr.InvalidInputError, match="no matching version has a metric"):
        registry.search("m", metric="f1")


def test_unfiltered_search_is_kept_per_model_and_follows_every_change(
        registry: nbr.Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    from nbregistry.registry import search
    from nbregistry.registry.state import ModelState

    def expected() -> pa.Table:
        state = registry.ledger.current()
        return search.versions_table([state.models[n].view(v) for n in sorted(state.models)
                                      for v in sorted(state.models[n].versions)])

    def same() -> None:
        assert registry.search().equals(expected())
        for name in registry.models():
            model = registry.ledger.current().models[name]
            assert registry.search(name).equals(search.versions_table(
                [model.view(v) for v in sorted(model.versions)]))

    data = str(tmp_path / "training")
    write_deltalake(data, pa.table({"x": [1.0, 2.0]}))
    registry.grant_role("bob", "validator")
    for i in range(3):
        registry.register(TinyModel(i), "b", metrics={"auc": 0.7 + i / 10}, tags={"i": str(i)})
    registry.register(TinyModel(), "a", params={"depth": 3}, metrics={"ks": 0.2})
    same()
    changes = [lambda: registry.set_alias("b", "champion", 2),
               lambda: registry.set_alias("b", "champion", 3),
               lambda: registry.delete_alias("b", "champion"),
               lambda: registry.set_card("b", 1, {"limitations": "thin"}),
               lambda: registry.request_promotion("b", 2, to="staging"),
               lambda: registry.request_promotion("b", 3, to="staging"),
               lambda: registry.register(TinyModel(9), "a", training_data=data),
               lambda: registry.flag_data(data, 0, reason="recalled")]
    for change in changes:
        change()
        same()
    assert registry.search("a").column("revalidation_required").to_pylist() == [None,
                                                                                 "recalled"]
    views: list[int] = []
    real = ModelState.view
    monkeypatch.setattr(ModelState, "view", lambda self, v: views.append(v) or real(self, v))
    registry.search("b")
    every = registry.search()
    assert views == []  # unchanged since the last search: nothing per version
    assert registry.search() is every  # nor for all models together
    registry.set_alias("a", "champion", 1)
    assert registry.search() is not every and registry.search().equals(expected())


def test_empty_search_is_a_table(registry: nbr.Registry) -> None:
    assert registry.search().num_rows == 0
    assert "name" in registry.search().column_names


def test_as_of_answers_the_past(registry: nbr.Registry) -> None:
    registry.register(TinyModel(1), "m")
    registry.set_alias("m", "champion", 1)
    between = datetime.now(UTC)
    registry.register(TinyModel(2), "m")
    registry.set_alias("m", "champion", 2)
    past = registry.as_of(between)
    assert past.get("m@champion").version == 1
    assert past.get("m").version == 1
    assert registry.get("m@champion").version == 2
    assert registry.as_of(between.isoformat()).get("m@champion").version == 1
    earlier = registry.as_of(between - timedelta(days=365))
    assert earlier.models() == []
    assert not hasattr(past, "register") and not hasattr(past, "approve")  # reads only
    with pytest.raises(nbr.InvalidInputError, match="ISO 8601"):
        registry.as_of("last tuesday")


def test_history_is_oldest_first_and_names_actor(registry_uri: str) -> None:
    nbr.open_registry(registry_uri, user="alice").register(TinyModel(), "m")
    bob = nbr.open_registry(registry_uri, user="bob")
    bob.set_alias("m", "champion", 1)
    rows = bob.history().to_pylist()
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("alice", "create_registry"), ("alice", "register"), ("bob", "set_alias")]


def test_identity_from_environment(registry_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBREGISTRY_USER")
    monkeypatch.setenv("JUPYTERHUB_USER", "hubuser")
    assert nbr.open_registry(registry_uri).user == "hubuser"
    monkeypatch.setenv("NBREGISTRY_USER", "envuser")
    assert nbr.open_registry(registry_uri).user == "envuser"
    assert nbr.open_registry(registry_uri, user="explicit").user == "explicit"


def test_default_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    reg = nbr.open_registry()
    assert reg.uri == str(tmp_path / ".nbregistry")
    monkeypatch.setenv("NBREGISTRY_URI", str(tmp_path / "elsewhere"))
    assert nbr.open_registry().uri == str(tmp_path / "elsewhere")


def test_reference_data_is_frozen_with_schema(registry: nbr.Registry) -> None:
    frame = pd.DataFrame({"income": [1.0, 2.0, 3.0], "region": ["a", "b", "a"]})
    mv = registry.register(TinyModel(), "m", reference_data=frame,
                           reference_target=pd.Series([0, 1, 0]))
    assert [f["name"] for f in mv.features] == ["income", "region"]
    assert mv.reference is not None and mv.reference["rows"] == 3
    with pytest.raises(nbr.InvalidInputError, match="one target per row"):
        registry.register(TinyModel(), "m", reference_data=frame, reference_target=[1])
    assert registry.get("m").version == 1


def test_training_data_pins_delta_version(registry: nbr.Registry, tmp_path: Path) -> None:
    from nbregistry.store import write_table

    uri = str(tmp_path / "train")
    write_table(uri, pd.DataFrame({"x": [1, 2]}))
    write_table(uri, pd.DataFrame({"x": [1, 2, 3]}))
    mv = registry.register(TinyModel(), "m", training_data=uri)
    assert mv.lineage["training_data"] == {"uri": uri, "format": "delta", "version": 1}
    csv = tmp_path / "train.csv"
    csv.write_text("x\n1\n")
    mv2 = registry.register(TinyModel(), "m", training_data=csv)
    assert mv2.lineage["training_data"]["format"] == "file"
    assert len(mv2.lineage["training_data"]["sha256"]) == 64


def test_model_version_reprs(registry: nbr.Registry) -> None:
    mv = registry.register(TinyModel(), "m", metrics={"auc": 0.8}, description="<b>x</b>")
    assert "m v1" in repr(mv) and "auc=0.8" in repr(mv)
    html = mv._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<script" not in html


def test_registry_pickles_by_reopening(registry: nbr.Registry) -> None:
    import pickle

    registry.register(TinyModel(5), "m")
    clone = pickle.loads(pickle.dumps(registry))
    assert clone.uri == registry.uri and clone.user == registry.user
    assert clone.load("m", trusted=True) == TinyModel(5)


def test_lineage_records_git_commit_and_dirty_flag(registry: nbr.Registry, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    monkeypatch.setenv("JPY_SESSION_NAME", str(repo / "train.ipynb"))
    clean = registry.register(TinyModel(), "m")
    assert clean.lineage["git"] == {"commit": head, "dirty": False}
    assert clean.lineage["notebook"] == str(repo / "train.ipynb")
    (repo / "train.py").write_text("print(2)\n")
    assert registry.register(TinyModel(), "m").lineage["git"]["dirty"] is True
