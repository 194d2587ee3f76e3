"""``nbregistry demo``: the whole product on a synthetic credit book, in one folder.

Register two models with lineage, promote the better one under a bank's policy (a validation
report by model risk before a signed approval by a validator who is neither registrant nor
requester), record its deployment by a deployer who took no part in the change, monitor a
week of production traffic (the last days drift), let the policy's check raise alerts and
request retraining (ratified by the validator), file the four compliance reports, and verify
the audit trail against the heads published to a witness folder.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .domain.errors import NbRegistryError
from .registry import open_registry
from .store import write_table

FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
BASELINE = ["income", "debt_ratio"]
MONITORING_POLICY = {"window": "2d", "maturity_days": 1, "min_rows": 200,
                     "on_alert": "retrain", "fairness_group": "sex", "fairness_favorable": 0}


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


def run(path: str | Path = "nbregistry-demo", *, fresh: bool = True, reports: bool = True,
        say: Any = print) -> dict[str, Any]:
    root = Path(path).resolve()
    if fresh and root.exists():
        shutil.rmtree(root)
    data = credit_data(9000)
    train, test, live = data.iloc[:3000], data.iloc[3000:4000], data.iloc[4000:]
    table_uri = str(root / "data" / "credit_applications")
    data_version = write_table(table_uri, pd.concat([train.assign(split="train"),
                                                     test.assign(split="test")],
                                                    ignore_index=True))
    say(f"1. wrote {len(train) + len(test)} credit applications (train and hold-out test) to "
        f"the Delta table {table_uri} (version {data_version})")
    uri, witness = root / "registry", root / "witness"
    bob_key = _setup(uri, witness, say)
    reg = open_registry(uri, user="ds-alice", witness=witness)
    versions = _register(reg, train, test, table_uri, say)
    champion = max(versions, key=lambda mv: mv.metrics["auc"])
    _promote(uri, witness, champion.version, bob_key, root / "reports" / "pre-approval",
             say=say, reports=reports)
    deployer = open_registry(uri, user="ml-dave", witness=witness)
    event = deployer.record_deployment("credit_risk", champion.version, "scoring-eu-1")
    say(f"4. ml-dave's deployment pipeline recorded v{champion.version} on scoring-eu-1 "
        f"(deployed sha256 matches the approved one: {event.payload['matches']})")
    check = _monitor(reg, live, champion.version, say)
    _ratify(uri, witness, check, bob_key, say)
    pack = _reports(uri, champion.version, root / "reports", say) if reports else None
    report = reg.verify(witness=witness, trusted_keys=json.loads(
        (root / "pinned-keys.json").read_text()))
    say(f"\n7. audit check of the whole trail (chain, signatures against the pinned key, "
        f"snapshots, seals, witness):\n{report!r}")
    say(f"\nproduction: v{reg.get('credit_risk', stage='production').version}; "
        f"head {reg.head[0]}:{reg.head[1][:16]}… (also published to {witness})")
    say(f"audit it again any time: nbregistry verify {uri} --witness {witness} "
        f"--trusted-keys {root / 'pinned-keys.json'}")
    if pack is not None:
        say(f"open {pack.index} for the compliance pack")
    return {"registry": reg, "versions": versions, "champion": champion, "check": check,
            "pack": pack, "verify": report}


def _setup(uri: Path, witness: Path, say: Any) -> Any:
    """The admin creates the registry, grants roles, enrols the validator's signing key and
    adds the monitoring section to the policy."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    admin = open_registry(uri, user="risk-admin", create=True, witness=witness)
    source = admin.policy.source
    production = {**source["stages"]["production"], "deployer_roles": ["deployer"],
                  "reports": ["validation"]}  # validated before it is approved
    admin.set_policy({**source, "roles": [*source["roles"], "deployer"],
                      "stages": {**source["stages"], "production": production},
                      "reports": {"roles": ["validator", "risk_officer", "admin"]},
                      "monitoring": MONITORING_POLICY,
                      "loading": {"trusted_types": ["sklearn.tree._tree.Tree"]}})
    admin.grant_role("val-bob", "validator")
    admin.grant_role("mrm-carol", "risk_officer")
    admin.grant_role("ml-dave", "deployer")
    bob_key = Ed25519PrivateKey.generate()
    public = bob_key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    admin.register_key(public, user="val-bob")
    # what an auditor keeps outside the registry, to check signatures against
    (uri.parent / "pinned-keys.json").write_text(json.dumps({"val-bob": public.decode()}))
    say("2. risk-admin created the registry, set the policy (production needs a validation "
        "report before approval and is deployed by a deployer; monitoring), made val-bob a "
        "validator, mrm-carol a risk officer and ml-dave a deployer, and enrolled val-bob's "
        "signing key (its public half is also kept outside the registry, in "
        "pinned-keys.json, for auditors)")
    return bob_key


def _register(reg: Any, train: pd.DataFrame, test: pd.DataFrame, table_uri: str,
              say: Any) -> list[Any]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    candidates = [
        ("logistic regression", make_pipeline(StandardScaler(), LogisticRegression()),
         {"model": "logistic_regression", "C": 1.0}, BASELINE),
        ("gradient boosting", GradientBoostingClassifier(n_estimators=60, max_depth=2,
                                                         random_state=0),
         {"model": "gradient_boosting", "n_estimators": 60, "max_depth": 2}, FEATURES)]
    versions = []
    for label, model, params, used in candidates:
        model.fit(train[used], train["default"])
        auc = round(float(roc_auc_score(test["default"],
                                        model.predict_proba(test[used])[:, 1])), 4)
        mv = reg.register(model, "credit_risk", params=params, metrics={"auc": auc},
                          tags={"team": "retail-credit"}, training_data=table_uri,
                          reference_data=train[used], reference_target=train["default"],
                          description=f"{label} on {len(used)} bureau features",
                          card={"intended_use": "retail credit default scoring",
                                "limitations": "synthetic data; demo only"})
        versions.append(mv)
        say(f"   registered credit_risk v{mv.version} ({label}): auc={auc}, flavor "
            f"{mv.flavor}, sha256={mv.sha256[:12]}…")
    best = max(versions, key=lambda mv: mv.metrics["auc"])
    reg.set_alias("credit_risk", "champion", best.version)
    say(f"   champion alias -> v{best.version}")
    return versions


def _promote(uri: Path, witness: Path, version: int, bob_key: Any, folder: Path, *,
             say: Any, reports: bool) -> None:
    """The policy: staging needs nothing; production needs a validation report (filed by
    model risk before the sign-off), a validator who is neither the registrant nor the
    requester, and a model card."""
    alice = open_registry(uri, user="ds-alice", witness=witness)
    alice.request_promotion("credit_risk", version, to="staging", comment="candidate")
    if reports:
        from .reports import run_report

        report = run_report("validation", output_dir=folder, uri=uri, user="mrm-carol",
                            model="credit_risk", version=version, progress=False)
        say(f"3. mrm-carol filed the validation report of v{version} (event "
            f"{report.event.seq if report.event else '-'}): {report.files['html']}")
    else:  # without reports the policy's validation gate cannot pass
        admin = open_registry(uri, user="risk-admin", witness=witness)
        source = admin.policy.source
        production = {**source["stages"]["production"], "reports": []}
        admin.set_policy({**source, "stages": {**source["stages"], "production": production}})
        say("3. (no reports: risk-admin dropped the validation-report gate)")
    request = alice.request_promotion("credit_risk", version, to="production",
                                      comment="beats the baseline on AUC")
    say(f"   ds-alice requested production: {request!r}")
    try:
        alice.approve("credit_risk", version)
    except NbRegistryError as refusal:
        say(f"   ds-alice tried to approve her own request: refused ({refusal})")
    bob = open_registry(uri, user="val-bob", witness=witness, signing_key=bob_key)
    done = bob.approve("credit_risk", version, comment="validation report reviewed")
    say(f"   val-bob approved (signed with his key): {done!r}")
    for gate in done.gates:
        say(f"     gate {gate.gate}: {'PASS' if gate.passed else 'FAIL'} ({gate.detail})")


def _ratify(uri: Path, witness: Path, check: Any, bob_key: Any, say: Any) -> None:
    """Automatic actions are changes nobody approved: the validator ratifies them."""
    bob = open_registry(uri, user="val-bob", witness=witness, signing_key=bob_key)
    for action in check.actions:
        bob.ratify("credit_risk", action.seq, comment="drift confirmed: retraining agreed")
        say(f"   val-bob ratified the automatic {action.action} (event {action.seq})")


def _monitor(reg: Any, live: pd.DataFrame, version: int, say: Any) -> Any:
    """A week of production traffic, 700 applications a day; from day 6 applicants carry
    more debt. Outcomes arrive a day later (the policy's maturity): those of the first six
    days have."""
    mon = reg.monitor("credit_risk")
    model = reg.load("credit_risk", version)
    now = datetime.now(UTC).replace(microsecond=0)
    logged = 0
    for day in range(7):
        frame = live.iloc[day * 700:(day + 1) * 700]
        if day >= 5:
            frame = frame.assign(debt_ratio=(frame["debt_ratio"] + 0.25).clip(upper=1.0))
        start = now - timedelta(days=7 - day)
        receipt = mon.log_predictions(
            frame, model.predict_proba(frame[FEATURES]), attributes=["sex"],
            ts=[start + timedelta(seconds=100 * i) for i in range(len(frame))])
        logged += len(frame)
        if day < 6:
            mon.log_outcomes(receipt.ids, frame["default"], ts=start + timedelta(days=1))
    say(f"5. logged {logged:,} production predictions over 7 days (and 6 days of "
        "outcomes) in the Delta tables under registry/monitoring/credit_risk")
    perf = mon.performance(window=None).column("roc_auc")[0].as_py()
    air = min(mon.fairness("sex", favorable=0).column("air").to_pylist())
    check = mon.check()
    drifted = sorted({e.payload["feature"] for e in check.alerts if e.payload["feature"]})
    say(f"   realized AUC {perf:.3f}, lowest adverse impact ratio by sex {air:.3f}; the "
        f"policy's check raised {len(check.alerts)} alert(s) on {', '.join(drifted) or '-'} "
        f"and recorded: {', '.join(e.action for e in check.actions) or 'nothing'}")
    return check


def _reports(uri: Path, version: int, folder: Path, say: Any) -> Any:
    from .reports import run_pack

    say("6. filing the compliance pack (validation, monitoring, fair lending, SOX change "
        "evidence); each report is recorded in the audit log")
    pack = run_pack("credit_risk", version, output_dir=folder, uri=uri, user="mrm-carol",
                    progress=False)
    for name, report in pack.reports.items():
        say(f"   {name}: {report.files.get('html')} ({report.seconds:.1f} s)")
    return pack
