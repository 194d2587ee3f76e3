"""Loading runs no registrant's code unless the caller trusts them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nbregistry as nbr
from conftest import TinyModel

X = np.random.default_rng(0).random((60, 3))
Y = (X[:, 0] > 0.5).astype(int)


def test_sklearn_models_load_safely_by_default(registry: nbr.Registry) -> None:
    mv = registry.register(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y), "m")
    assert mv.flavor == "skops"
    model = registry.load("m")  # no trust needed: the skops loader audits every type
    assert (model.predict(X) == Y).mean() > 0.9


def test_reviewed_types_are_allowed_per_call_or_by_policy(registry: nbr.Registry) -> None:
    registry.register(GradientBoostingClassifier(n_estimators=5).fit(X, Y), "gbm")
    with pytest.raises(nbr.PolicyViolationError, match=r"sklearn\.tree\._tree\.Tree"):
        registry.load("gbm")
    assert registry.load("gbm", trusted=["sklearn.tree._tree.Tree"]).predict(X).shape == (60,)
    source = registry.policy.source
    registry.set_policy({**source, "loading": {"trusted_types": ["sklearn.tree._tree.Tree"]}})
    assert registry.load("gbm").predict(X).shape == (60,)


def test_pickles_load_only_when_trusted(registry_uri: str) -> None:
    alice = nbr.open_registry(registry_uri, user="alice")
    bob = nbr.open_registry(registry_uri, user="bob")
    bob.register(TinyModel(3), "m")
    refusal = r"runs code chosen by .*bob.*trusted=True"
    with pytest.raises(nbr.PolicyViolationError, match=refusal) as info:
        alice.load("m")
    assert info.value.rule == "untrusted_artifact"
    assert alice.load("m", trusted=True) == TinyModel(3)
    alice.set_policy({**alice.policy.source, "loading": {"trusted_registrants": ["bob"]}})
    assert alice.load("m") == TinyModel(3)


def _identity(x: object) -> object:
    return x


def test_code_inside_a_skops_artifact_needs_trust(registry: nbr.Registry) -> None:
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(_identity), LogisticRegression()).fit(X, Y)
    assert registry.register(model, "odd").flavor == "skops"
    with pytest.raises(nbr.PolicyViolationError, match="_identity"):
        registry.load("odd")  # our own function is a type the safe loader refuses
    assert registry.load("odd", trusted=True).predict(X).shape == (60,)


def test_a_flavor_that_cannot_serialize_falls_back_to_the_next(
        registry: nbr.Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbregistry.registry import flavors

    class Brittle:
        name, safe = "brittle", True

        def matches(self, model: object) -> bool:
            return True

        def dump(self, model: object) -> bytes:
            raise TypeError("cannot serialize this")

        def load(self, data: bytes) -> object:
            raise AssertionError("never dumped, never loaded")

    monkeypatch.setattr(flavors, "_FLAVORS", [Brittle(), *flavors._FLAVORS])
    assert registry.register(TinyModel(2), "m").flavor == "joblib"
    with pytest.raises(nbr.InvalidInputError, match="cannot serialize this"):
        registry.register(TinyModel(2), "m", flavor="brittle")  # named: no fallback
