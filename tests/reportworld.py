"""Registries the report tests build: a governed lifecycle (SOX) and a monitored credit
model with its training table, prediction log and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import nbregistry as nbr
from nbregistry.demo import credit_data
from nbregistry.store import write_table

FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
CARD = {"intended_use": "retail credit decisions", "limitations": "synthetic data"}
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def users(uri: str) -> dict[str, nbr.Registry]:
    alice = nbr.open_registry(uri, user="alice", create=True)  # admin, data scientist
    alice.grant_role("bob", "validator")
    alice.grant_role("carol", "risk_officer")
    return {"alice": alice, "bob": nbr.open_registry(uri, user="bob"),
            "carol": nbr.open_registry(uri, user="carol")}


def deployers(admin: nbr.Registry, *roles: str) -> None:
    """A ``deployer`` role in the policy, the only one that may deploy to production."""
    source = admin.policy.source
    production = {**source["stages"]["production"], "deployer_roles": ["deployer"]}
    admin.set_policy({**source, "roles": [*source["roles"], "deployer"],
                      "stages": {**source["stages"], "production": production}})


def governed(uri: str) -> dict[str, Any]:
    """v1 promoted with bob's approval and deployed twice by dave, the deployer (the second
    time with a hash that is not the approved artifact's); v2 promoted in an emergency and
    never ratified; v3 promoted in an emergency and ratified; then a rollback."""
    from conftest import TinyModel

    people = users(uri)
    alice, bob = people["alice"], people["bob"]
    deployers(alice)
    alice.grant_role("dave", "deployer")
    dave = nbr.open_registry(uri, user="dave")
    for weight in (1.0, 2.0, 3.0):
        alice.register(TinyModel(weight), "credit", card=CARD)
    alice.request_promotion("credit", 1, to="staging")
    alice.request_promotion("credit", 1, to="production")
    bob.approve("credit", 1, comment="validated")
    dave.record_deployment("credit", 1, "scoring-eu")
    bad = dave.record_deployment("credit", 1, "scoring-us", sha256="ab" * 32)
    alice.request_promotion("credit", 2, to="staging")
    alice.request_promotion("credit", 2, to="production", emergency=True, comment="incident")
    alice.request_promotion("credit", 3, to="staging")
    alice.request_promotion("credit", 3, to="production", emergency=True, comment="incident 2")
    bob.approve("credit", 3, comment="reviewed after the fact")
    alice.rollback("credit", stage="production", reason="back to v2")
    alice.revoke_role("carol", "risk_officer")
    return {**people, "dave": dave, "bad_deploy": bad}


def monitored(uri: str, data_dir: Path, *, card: dict[str, Any] = CARD,
              comment: str = "validated, see report", groups: dict[str, str] | None = None,
              **register: Any) -> dict[str, Any]:
    """credit v1 (trained on a Delta table) in production with a week of logged traffic and
    outcomes; v2 a challenger in staging. ``groups`` renames logged ``sex`` values;
    ``register`` adds to v1's registration (description, tags, params)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = credit_data(6000, seed=3)
    data["sex"] = data["sex"].replace(groups or {})
    table = str(data_dir / "applications")
    frame = data.iloc[:3000].assign(split=np.where(np.arange(3000) < 2100, "train", "test"))
    write_table(table, frame)
    train = frame[frame.split == "train"]
    people = users(uri)
    alice, bob = people["alice"], people["bob"]
    alice.set_policy({**alice.policy.source, "monitoring": {  # outcomes known at once
        "window": "7d", "maturity_days": 0, "min_rows": 100, "fairness_group": "sex",
        "fairness_favorable": 0}})
    model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["default"])
    alice.register(model, "credit", training_data=table, reference_data=train[FEATURES],
                   reference_target=train["default"], card=card, metrics={"auc": 0.7},
                   **register)
    challenger = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(
        train[FEATURES], train["default"])
    alice.register(challenger, "credit", training_data=table, reference_data=train[FEATURES],
                   reference_target=train["default"], card=CARD, metrics={"auc": 0.7})
    alice.request_promotion("credit", 1, to="staging")
    alice.request_promotion("credit", 1, to="production")
    bob.approve("credit", 1, comment=comment)
    alice.request_promotion("credit", 2, to="staging")
    live = data.iloc[3000:].reset_index(drop=True)
    mon = alice.monitor("credit")
    start = NOW - timedelta(days=7)
    ts = [start + timedelta(seconds=200 * i) for i in range(len(live))]
    receipt = mon.log_predictions(live, model.predict_proba(live[FEATURES]), ts=ts,
                                  attributes=["sex"], version=1)
    ids = list(receipt.ids.to_pylist())
    mon.log_outcomes(ids, live["default"], ts=NOW)
    return {**people, "model": model, "challenger": challenger, "table": table,
            "live": live, "train": train, "frame": frame, "mon": mon,
            "start": start, "end": NOW}


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# What an attacker with write access to the registry might plant in any text a report or a
# notebook shows: each would run script or load from outside if shown as markup.
PAYLOADS = [
    "<span style='x'><img src=x onerror=\"document.title='pwned'\"></span>",
    "<script>document.title='pwned'</script>",
    "<span style='x'><a href=\"javascript:void(document.title='pwned')\">open me</a></span>",
    "<img srcset='http://attacker.invalid/srcset.png 1x'>",
    "<span style='x'><video poster='http://attacker.invalid/poster.png'></video></span>",
    "<span style=\"background:url(http://attacker.invalid/css.png)\">styled</span>",
    "<svg onload=\"document.title='pwned'\"></svg>",
]


def hostile(uri: str, data_dir: Path) -> dict[str, Any]:
    """``monitored`` with a payload in every card field, the description, tags, params, the
    approval's comment, a logged attribute's values, a user's name (who deploys and is
    granted a role), a deployment target, a comment, and a model name written past the
    writer's checks (a patched nbregistry), promoted in an emergency."""
    import pytest

    from nbregistry.domain import validate

    card = {"intended_use": PAYLOADS[0], "limitations": PAYLOADS[2],
            "assumptions": PAYLOADS[5], **{f"note_{i}": p for i, p in enumerate(PAYLOADS)}}
    world = monitored(uri, data_dir, card=card, comment=PAYLOADS[1],
                      groups={"F": PAYLOADS[0]}, description=PAYLOADS[6],
                      tags={"team": PAYLOADS[3]}, params={"note": PAYLOADS[4]})
    alice = world["alice"]
    mallory = PAYLOADS[3]
    alice.grant_role(mallory, "admin")
    nbr.open_registry(uri, user=mallory).record_deployment("credit", 1, PAYLOADS[4])
    alice.comment("credit", 1, PAYLOADS[5])
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(validate, "model_name", lambda name, **kw: name)
        forged = PAYLOADS[0]
        alice.register({"w": 1}, forged, card=CARD)
        alice.request_promotion(forged, 1, to="staging")
        alice.request_promotion(forged, 1, to="production", emergency=True,
                                comment=PAYLOADS[2])
    return world
