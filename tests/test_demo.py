"""The demo's compliance pack stays verifiable while the model keeps scoring: every report
re-runs to the same figures after new traffic and new outcomes were logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import nbregistry as nbr
from nbregistry import demo


@pytest.mark.slow
def test_every_demo_report_reverifies_after_new_traffic(tmp_path: Path) -> None:
    world = demo.run(tmp_path / "demo", say=lambda *_: None)
    reg: nbr.Registry = world["registry"]
    champion = world["champion"].version
    mon = reg.monitor("credit_risk")
    model = reg.load("credit_risk", champion)
    fresh = demo.credit_data(600, seed=99)
    now = datetime.now(UTC)
    # inside the reports' period (the last week) and after it; with outcomes for old rows too
    ts = [now - timedelta(days=3, seconds=60 * i) for i in range(300)] + \
         [now + timedelta(seconds=i) for i in range(300)]
    names = [f["name"] for f in reg.get("credit_risk", champion).features]
    receipt = mon.log_predictions(fresh, model.predict_proba(fresh[names]),
                                  attributes=["sex"], ts=ts)
    mon.log_outcomes(receipt.ids, fresh["default"])
    old = mon.rows().to_pandas()
    unresolved = old[old["actual"].isna()].head(200)
    mon.log_outcomes(list(unresolved["prediction_id"]), [1] * len(unresolved))
    reports = world["pack"].reports
    assert set(reports) == {"validation", "monitoring", "fair_lending", "sox_change"}
    for name, report in reports.items():
        result = nbr.reverify(report, progress=False)
        assert result.ok, f"{name}: {result!r}"
