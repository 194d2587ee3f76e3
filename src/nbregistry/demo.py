"""``nbregistry demo``: the model lifecycle on a synthetic credit data set, in one folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .domain.errors import NbRegistryError
from .registry import open_registry
from .store import write_table


def credit_data(n: int = 4000, seed: int = 7) -> pd.DataFrame:
    """A synthetic retail-credit book: income, debt ratio, history, utilisation → default."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.8, 0.45, n)
    debt_ratio = rng.beta(2, 5, n)
    history_years = rng.gamma(3.0, 3.0, n)
    utilisation = rng.beta(2, 3, n)
    late_payments = rng.poisson(0.6, n)
    logit = (-2.2 + 3.1 * debt_ratio + 2.4 * utilisation + 0.55 * late_payments
             - 0.09 * history_years - 0.35 * (np.log(income) - 10.8))
    default = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"income": income.round(2), "debt_ratio": debt_ratio.round(4),
                         "history_years": history_years.round(2),
                         "utilisation": utilisation.round(4), "late_payments": late_payments,
                         "sex": rng.choice(["F", "M"], n), "default": default.astype(int)})


def _fit_and_score(model: Any, train: pd.DataFrame, test: pd.DataFrame,
                   features: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, roc_auc_score

    model.fit(train[features], train["default"])
    proba = model.predict_proba(test[features])[:, 1]
    return {"auc": round(float(roc_auc_score(test["default"], proba)), 4),
            "accuracy": round(float(accuracy_score(test["default"], proba > 0.5)), 4)}


def run(path: str | Path = "nbregistry-demo", *, fresh: bool = True,
        say: Any = print) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root = Path(path).resolve()
    if fresh and root.exists():
        shutil.rmtree(root)
    data = credit_data()
    table_uri = str(root / "data" / "credit_applications")
    data_version = write_table(table_uri, data)
    say(f"wrote {len(data)} synthetic credit applications to the Delta table {table_uri} "
        f"(version {data_version})")
    features = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
    baseline_features = ["income", "debt_ratio"]
    train, test = data.iloc[:3000], data.iloc[3000:]
    admin = open_registry(root / "registry", user="risk-admin", create=True)  # the creator is admin
    admin.grant_role("val-bob", "validator")
    reg = open_registry(root / "registry", user="ds-alice")
    candidates = [
        ("logistic regression", make_pipeline(StandardScaler(), LogisticRegression()),
         {"model": "logistic_regression", "C": 1.0}, baseline_features),
        ("gradient boosting", GradientBoostingClassifier(n_estimators=60, max_depth=2,
                                                         random_state=0),
         {"model": "gradient_boosting", "n_estimators": 60, "max_depth": 2}, features),
    ]
    versions = []
    for label, model, params, used in candidates:
        metrics = _fit_and_score(model, train, test, used)
        mv = reg.register(model, "credit_risk", params=params, metrics=metrics,
                          tags={"team": "retail-credit"}, training_data=table_uri,
                          reference_data=train[used], reference_target=train["default"],
                          description=f"{label} on {len(used)} bureau features",
                          card={"intended_use": "retail credit default scoring",
                                "limitations": "synthetic data; demo only"})
        versions.append(mv)
        say(f"registered credit_risk v{mv.version} ({label}): auc={metrics['auc']}, "
            f"sha256={mv.sha256[:12]}…, trained on {table_uri}@v{data_version}")
    reg.set_alias("credit_risk", "champion", versions[0].version)
    say(f"champion alias -> v{versions[0].version} (the baseline)")
    best = max(versions, key=lambda mv: mv.metrics["auc"])
    champion = reg.set_alias("credit_risk", "champion", best.version)
    say(f"champion alias now -> v{champion.version} (best auc {champion.metrics['auc']})")
    _promote(root / "registry", champion.version, say)
    history = reg.history("credit_risk").to_pandas()
    say("\nhistory of credit_risk:")
    say(history[["seq", "ts", "actor", "action", "version"]].to_string(index=False))
    report = reg.verify()
    say(f"production: v{reg.get('credit_risk', stage='production').version}; head of the log "
        f"(record it elsewhere to detect truncation): {reg.head[0]}:{reg.head[1][:16]}…")
    say(f"\naudit check: {report!r}")
    return {"registry": reg, "versions": versions, "champion": champion, "verify": report}


def _promote(uri: Path, version: int, say: Any) -> None:
    """The default policy: staging needs nothing; production needs a validator who is
    neither the registrant nor the requester, and a model card."""
    scientist = open_registry(uri, user="ds-alice")
    scientist.request_promotion("credit_risk", version, to="staging", comment="candidate")
    request = scientist.request_promotion("credit_risk", version, to="production",
                                          comment="beats the baseline on AUC")
    say(f"ds-alice requested production: {request!r}")
    try:
        scientist.approve("credit_risk", version)
    except NbRegistryError as refusal:
        say(f"ds-alice tried to approve her own request: refused ({refusal})")
    validator = open_registry(uri, user="val-bob")
    done = validator.approve("credit_risk", version, comment="validation evidence reviewed")
    say(f"val-bob approved: {done!r}")
    for gate in done.gates:
        say(f"  gate {gate.gate}: {'PASS' if gate.passed else 'FAIL'} ({gate.detail})")
