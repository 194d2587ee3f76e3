"""Loading runs no registrant's code unless the caller trusts them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nbregistry as nbr
from conftest import TinyModel, from_storage

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
    bob_key, bob_pem = _keypair()
    alice.register_key(bob_pem, user="bob")
    bob = nbr.open_registry(registry_uri, user="bob", signing_key=bob_key)
    bob.register(TinyModel(3), "m")
    refusal = r"runs code chosen by .*bob.*trusted=True"
    with pytest.raises(nbr.PolicyViolationError, match=refusal) as info:
        alice.load("m")
    assert info.value.rule == "untrusted_artifact"
    assert alice.load("m", trusted=True) == TinyModel(3)
    alice.set_policy({**alice.policy.source, "loading": {"trusted_registrants": ["bob"]}})
    assert alice.load("m") == TinyModel(3)  # bob's registration is signed with his key
    assert alice.as_of(datetime.now(UTC)).load("m") == TinyModel(3)  # a view without a loader


def _keypair() -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key, key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)


def _trusting(uri: str, user: str) -> nbr.Registry:
    admin = nbr.open_registry(uri, user="alice")
    admin.set_policy({**admin.policy.source, "loading": {"trusted_registrants": [user]}})
    return nbr.open_registry(uri, user="carol")


def test_trust_by_registrant_is_refused_without_enrolled_keys(registry_uri: str) -> None:
    """A process opened with user="bob" (by anyone) writes unsigned events in bob's name;
    with no key to check them against, the policy's trust in bob cannot apply."""
    nbr.open_registry(registry_uri, user="alice")
    claimed = nbr.open_registry(registry_uri, user="bob")  # whoever runs it
    claimed.register(TinyModel(666), "m")
    claimed.register(GradientBoostingClassifier(n_estimators=5).fit(X, Y), "gbm")
    carol = _trusting(registry_uri, "bob")
    for name in ("m", "gbm"):  # a pickle, and a skops artifact with types to review
        with pytest.raises(nbr.PolicyViolationError, match=r"bob had no enrolled signing key"
                           r".*register_key.*trusted=True") as info:
            carol.load(name)
        assert info.value.rule == "registrant_signature"
    assert carol.load("m", trusted=True) == TinyModel(666)  # after review


def test_a_register_event_forged_in_a_keyed_users_name_does_not_load(
        registry_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbregistry.registry import signing

    admin = nbr.open_registry(registry_uri, user="alice")
    bob_key, bob_pem = _keypair()
    admin.register_key(bob_pem, user="bob")
    nbr.open_registry(registry_uri, user="bob", signing_key=bob_key).register(TinyModel(1), "m")
    with monkeypatch.context() as patched:  # the attacker's copy of nbregistry never signs
        patched.setattr(signing, "signer", lambda *args: None)
        nbr.open_registry(registry_uri, user="bob").register(TinyModel(666), "m")
    carol = _trusting(registry_uri, "bob")
    assert carol.load("m", 1) == TinyModel(1)
    with pytest.raises(nbr.PolicyViolationError, match=r"event \d+ \(register by bob\) is "
                       "unsigned although bob had an enrolled key") as info:
        carol.load("m", 2)
    assert info.value.rule == "registrant_signature"
    assert not carol.verify().ok  # verify flags the same event


def test_a_key_slipped_in_by_an_unsigned_rotation_is_not_trusted(
        registry_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbregistry.registry import signing

    admin = nbr.open_registry(registry_uri, user="alice")
    bob_key, bob_pem = _keypair()
    admin.register_key(bob_pem, user="bob")
    nbr.open_registry(registry_uri, user="bob", signing_key=bob_key).register(TinyModel(1), "m")
    mallory_key, mallory_pem = _keypair()
    with monkeypatch.context() as patched:  # a "rotation" by bob, written without his key
        patched.setattr(signing, "signer", lambda *args: None)
        nbr.open_registry(registry_uri, user="bob").register_key(mallory_pem)
    forged = nbr.open_registry(registry_uri, user="bob", signing_key=mallory_key)
    forged.register(TinyModel(666), "m")  # validly signed, with the slipped-in key
    carol = _trusting(registry_uri, "bob")
    assert carol.load("m", 1) == TinyModel(1)  # signed with the key bob had then
    with pytest.raises(nbr.PolicyViolationError,
                       match=r"\(register_key by bob\) is unsigned") as info:
        carol.load("m", 2)
    assert info.value.rule == "registrant_signature"


def test_trust_by_registrant_reads_the_register_event_after_a_snapshot_open(
        registry_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbregistry.registry import snapshot

    monkeypatch.setattr(snapshot, "SNAPSHOT_EVERY", 10)
    admin = nbr.open_registry(registry_uri, user="alice")
    bob_key, bob_pem = _keypair()
    admin.register_key(bob_pem, user="bob")
    bob = nbr.open_registry(registry_uri, user="bob", signing_key=bob_key)
    for i in range(12):
        bob.register(TinyModel(i), "m")
    _trusting(registry_uri, "bob")
    carol = from_storage(registry_uri, user="carol")  # as a new process opens it
    assert carol.ledger.state.base_seq > 0  # opened from a state snapshot: events read on demand
    assert carol.load("m", 2) == TinyModel(1)


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
