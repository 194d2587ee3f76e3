"""A registry with a monitored scikit-learn model and a few days of logged traffic (the last
day's debt ratio shifted), for notebook and browser tests. Times are relative to now, as the
dashboards look back from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import nbregistry as nbr
from nbregistry.demo import credit_data

FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]


def monitored(uri: str, *, days: int = 4, rows_per_day: int = 400, user: str = "alice",
              policy: dict[str, Any] | None = None) -> nbr.Registry:
    from sklearn.linear_model import LogisticRegression

    data = credit_data(3000 + days * rows_per_day, seed=5)
    train = data.iloc[:3000]
    reg = nbr.open_registry(uri, user=user, create=True)
    model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["default"])
    reg.register(model, "credit", reference_data=train[FEATURES],
                 reference_target=train["default"], metrics={"auc": 0.7},
                 card={"intended_use": "retail credit", "limitations": "synthetic"})
    reg.set_policy({**reg.policy.source, "monitoring": {
        "min_rows": 100, "fairness_group": "sex", "fairness_favorable": 0,
        **(policy or {})}})
    mon = reg.monitor("credit")
    now = datetime.now(UTC).replace(microsecond=0)
    for day in range(days):
        frame = data.iloc[3000 + day * rows_per_day:3000 + (day + 1) * rows_per_day]
        if day == days - 1:
            frame = frame.assign(debt_ratio=frame["debt_ratio"] + 0.3)
        start = now - timedelta(days=days - day)
        ts = [start + timedelta(seconds=60 * i) for i in range(len(frame))]
        receipt = mon.log_predictions(frame, model.predict_proba(frame[FEATURES]), ts=ts,
                                      attributes=["sex"])
        mon.log_outcomes(receipt.ids, frame["default"], ts=now)
    return reg
