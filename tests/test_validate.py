"""Bad input gets a typed error and leaves the registry unchanged."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.domain import validate

BAD_NAMES = ["", " ", "a b", "a/b", "../x", "a..b", "x" * 201, "tab\tname", "-lead", "é@x",
             "new\nline", "name@alias"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_rejected_and_nothing_written(registry: nbr.Registry, name: str) -> None:
    before = registry.head
    with pytest.raises(nbr.InvalidInputError, match=r"not allowed|empty|characters long"):
        registry.register(TinyModel(), name)
    assert registry.head == before


def test_long_name_boundary(registry: nbr.Registry) -> None:
    assert registry.register(TinyModel(), "x" * 200).version == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"params": {"f": object()}}, "JSON-serializable"),
    ({"params": {"nan": float("nan")}}, "JSON-serializable"),
    ({"params": {1: "int key"}}, "keys must be non-empty strings"),
    ({"params": ["not", "a", "dict"]}, "must be a dict"),
    ({"metrics": {"auc": float("nan")}}, "not a finite number"),
    ({"metrics": {"auc": float("inf")}}, "not a finite number"),
    ({"metrics": {"auc": "high"}}, "not a finite number"),
    ({"metrics": {"auc": True}}, "not a finite number"),
    ({"tags": {"t": [1, 2]}}, "must be a string"),
    ({"description": 42}, "must be a string"),
    ({"training_data": "/definitely/not/here"}, "neither a Delta table nor a readable file"),
    ({"reference_data": [1, 2, 3]}, "pandas DataFrame or a pyarrow Table"),
    ({"flavor": "onnx"}, "no flavor named 'onnx'"),
])
def test_bad_register_arguments(registry: nbr.Registry, kwargs: dict[str, object],
                                match: str) -> None:
    before = registry.head
    with pytest.raises(nbr.NbRegistryError, match=match):
        registry.register(TinyModel(), "m", **kwargs)  # type: ignore[arg-type]
    assert registry.head == before
    assert registry.models() == []


def test_unpicklable_model(registry: nbr.Registry) -> None:
    before = registry.head
    with pytest.raises(nbr.InvalidInputError, match="cannot serialize") as info:
        registry.register(threading.Lock(), "m")
    assert "register_flavor" in str(info.value)
    assert registry.head == before


def test_unknown_alias_and_version_errors(registry: nbr.Registry) -> None:
    registry.register(TinyModel(), "m")
    before = registry.head
    with pytest.raises(nbr.NotFoundError, match="no version 9"):
        registry.set_alias("m", "champion", 9)
    with pytest.raises(nbr.NotFoundError, match="no alias 'ghost'"):
        registry.delete_alias("m", "ghost")
    with pytest.raises(nbr.InvalidInputError, match="positive integer"):
        registry.set_alias("m", "champion", 0)
    with pytest.raises(nbr.InvalidInputError, match="alias '1bad'"):
        registry.set_alias("m", "1bad", 1)
    with pytest.raises(nbr.NotFoundError):
        registry.set_alias("nope", "champion", 1)
    assert registry.head == before


def test_bad_uri_and_user() -> None:
    with pytest.raises(nbr.InvalidInputError, match="unsupported URI scheme"):
        nbr.open_registry("ftp://host/x")
    with pytest.raises(nbr.InvalidInputError, match="not a valid identity"):
        nbr.open_registry("/tmp/x-never-created", user="bad\x00user")


NAME_CHARS = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc"))


@given(st.text(NAME_CHARS, max_size=210))
def test_name_validation_is_total(name: str) -> None:
    """Any string is either accepted as a safe path segment or refused with InvalidInputError."""
    try:
        accepted = validate.model_name(name)
    except nbr.InvalidInputError as exc:
        assert str(exc)
        return
    assert accepted == name and 0 < len(name) <= 200
    assert "/" not in name and ".." not in name and not any(c.isspace() for c in name)
    assert name.isascii() and "@" not in name


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(), inner, max_size=3), max_leaves=8)


@given(st.dictionaries(st.text(min_size=1), JSON, max_size=4))
def test_params_roundtrip_or_refused(params: dict[str, object]) -> None:
    try:
        out = validate.json_mapping(params, what="params")
    except nbr.InvalidInputError:
        return
    assert out == params


@given(st.dictionaries(st.text(min_size=1, max_size=20),
                       st.floats() | st.integers(-10**6, 10**6), max_size=4))
def test_metrics_finite_or_refused(metrics: dict[str, float]) -> None:
    try:
        out = validate.metrics_mapping(metrics)
    except nbr.InvalidInputError:
        assert any(not math.isfinite(v) for v in metrics.values())
        return
    assert out == {k: float(v) for k, v in metrics.items()}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(st.sampled_from("ab_-.1/ @"), min_size=0, max_size=6),
       auc=st.floats(allow_nan=True, allow_infinity=True))
def test_register_property(registry: nbr.Registry, name: str, auc: float) -> None:
    """Whatever the input, register either succeeds consistently or changes nothing."""
    before = registry.head
    try:
        mv = registry.register(TinyModel(), name, metrics={"auc": auc})
    except nbr.NbRegistryError:
        assert registry.head == before
        return
    assert registry.get(name, mv.version).metrics == {"auc": auc}
    assert registry.head[0] == before[0] + 1


def test_odd_inputs_found_by_probing_are_refused(registry: nbr.Registry, tmp_path: object,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    registry.register(TinyModel(1), "m", metrics={"auc": 0.7})
    registry.register(TinyModel(2), "m", metrics={"auc": 0.8})
    before = registry.head
    for digits in ("١", "²", "𝟙"):
        with pytest.raises(nbr.InvalidInputError, match="positive integer"):
            registry.get("m", digits)
    with pytest.raises(nbr.InvalidInputError, match="control characters"):
        registry.grant_role("bob\x00", "validator")
    with pytest.raises(nbr.InvalidInputError, match="limit"):
        registry.search("m", limit=-1)
    assert registry.search("m", limit=0).num_rows == 0
    with pytest.raises(nbr.InvalidInputError, match="finite"):
        registry.search("m", min_metrics={"auc": math.nan})
    with pytest.raises(nbr.InvalidInputError, match="time"):
        registry.as_of(12345)  # type: ignore[arg-type]
    with pytest.raises(nbr.InvalidInputError, match="time"):
        registry.overdue(now="soon")
    with pytest.raises(nbr.InvalidInputError, match="max_staleness"):
        nbr.open_registry(registry.uri, max_staleness=math.nan)
    monkeypatch.setenv("NBREGISTRY_URI", "  ")
    with pytest.raises(nbr.InvalidInputError, match="NBREGISTRY_URI is set but empty"):
        nbr.open_registry()
    with pytest.raises(nbr.InvalidInputError, match="empty"):
        nbr.open_registry("")
    with pytest.raises(nbr.NotFoundError, match="no registry at"):
        nbr.open_registry(f"{tmp_path}/typo", create=False)
    with pytest.warns(nbr.RegistryCreatedWarning, match="admin"):
        nbr.open_registry(f"{tmp_path}/new")
    assert registry.head == before


def test_a_planted_lock_symlink_is_not_followed(registry: nbr.Registry, tmp_path: object) -> None:
    import os

    victim = f"{tmp_path}/victim"
    with open(victim, "w") as handle:
        handle.write("precious")
    lock = f"{registry.uri}/_registry/.writer.lock"
    if os.path.exists(lock):
        os.remove(lock)
    os.symlink(victim, lock)
    with pytest.raises(nbr.StorageError, match="cannot lock"):
        registry.register(TinyModel(), "m")
    with open(victim) as handle:
        assert handle.read() == "precious"


def test_sizes_are_capped_so_the_log_stays_fast(registry: nbr.Registry) -> None:
    before = registry.head
    big = "x" * 10_000_000
    for kwargs in ({"tags": {"blob": big}}, {"params": {"p": big}}, {"card": {"c": big}},
                   {"description": big}, {"tags": {f"t{i}": i for i in range(500)}}):
        with pytest.raises(nbr.InvalidInputError, match=r"limit|too long"):
            registry.register(TinyModel(), "m", **kwargs)  # type: ignore[arg-type]
    registry.register(TinyModel(), "m")
    with pytest.raises(nbr.InvalidInputError, match="limit"):
        registry.comment("m", 1, big)
    assert registry.head[0] == before[0] + 1


def test_a_private_registry_is_closed_to_other_users(tmp_path: object) -> None:
    import os
    import stat

    reg = nbr.open_registry(f"{tmp_path}/private", create=True, private=True)
    reg.register(TinyModel(), "m")
    mode = stat.S_IMODE(os.stat(reg.uri).st_mode)
    assert mode == 0o700
