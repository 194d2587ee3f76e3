"""Per-file sketches give exactly the raw-row figures, cost only the new files, are derived
data (deleted, they are rebuilt; wrong, they are found), and are never written by a read."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from monitored import monitored
from nbregistry.watch.sketches import dumps


def close(a: Any, b: Any) -> bool:
    import math

    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.fixture
def reg(tmp_path: Path) -> nbr.Registry:
    return monitored(str(tmp_path / "registry"), days=4, rows_per_day=300)


def _windows() -> list[tuple[datetime | None, datetime | None]]:
    now = datetime.now(UTC)
    return [(None, None), (now - timedelta(days=2), now),
            (now - timedelta(days=3, hours=7), now - timedelta(hours=30)),  # cuts days
            (now - timedelta(days=1, hours=1), now - timedelta(hours=20))]


def test_sketched_drift_equals_raw_drift_on_every_window(reg: nbr.Registry) -> None:
    mon = reg.monitor("credit")
    raw = [mon.drift(a, b).to_pylist() for a, b in _windows()]
    files = len(mon.tables.predictions.snapshot().entries)
    outcome_files = len(mon.tables.outcomes.snapshot().entries)
    assert mon.sketch() == files + outcome_files  # each data file sketched or counted once
    assert mon.sketch() == 0  # nothing new
    sketched = [mon.drift(a, b).to_pylist() for a, b in _windows()]
    assert all(close(x, y) for x, y in zip(raw, sketched, strict=True))
    assert mon.verify_sketches() == []


def test_a_question_writes_no_sketch_and_check_keeps_them(reg: nbr.Registry) -> None:
    mon = reg.monitor("credit")
    mon.drift()
    assert not mon.sketches.table.exists()
    mon.check()
    assert mon.sketches.table.exists() and mon.sketch() == 0


def test_sketches_are_derived_data(reg: nbr.Registry) -> None:
    mon = reg.monitor("credit")
    mon.sketch()
    before = mon.drift().to_pylist()
    shutil.rmtree(Path(reg.uri) / "monitoring" / "credit" / "sketches")
    again = reg.monitor("credit")
    assert close(again.drift().to_pylist(), before)
    assert again.sketch() > 0
    assert reg.verify().ok  # never evidence: the audit log names none


def test_a_wrong_sketch_is_found(reg: nbr.Registry) -> None:
    mon = reg.monitor("credit")
    mon.sketch()
    key, counts = next(iter(mon.sketches._known.items()))
    counts.features["debt_ratio"].valid += 7  # what a bug or a tampered table would do
    assert mon.verify_sketches() == [key[0]]
    assert dumps(counts)


def test_compacted_files_with_two_versions_are_sketched_per_version(reg: nbr.Registry
                                                                     ) -> None:
    from sklearn.linear_model import LogisticRegression

    from monitored import FEATURES
    from nbregistry.demo import credit_data

    data = credit_data(1500, seed=8)
    model = LogisticRegression(max_iter=300).fit(data[FEATURES], data["default"])
    reg.register(model, "credit", reference_data=data[FEATURES],
                 reference_target=data["default"])
    mon = reg.monitor("credit")
    now = datetime.now(UTC)
    mon.log_predictions(data.iloc[:400], model.predict_proba(data[FEATURES].iloc[:400]),
                        version=2, attributes=["sex"],
                        ts=[now - timedelta(hours=5, seconds=i) for i in range(400)])
    mon.tables.predictions.compact()  # files holding both versions now
    for version in (1, 2):
        raw = mon.drift(version=version).to_pylist()
        mon.sketch(version)
        assert close(mon.drift(version=version).to_pylist(), raw)
        assert mon.verify_sketches(version) == []


def test_a_sketch_reads_back_as_written_in_either_format() -> None:
    import json

    from nbregistry.monitoring.counts import Counts, FeatureCounts
    from nbregistry.watch.sketches import dumps, loads, same

    counts = Counts(rows=7, features={
        "x": FeatureCounts({0: 2, 17: 4, 1023: 1}, 7, (0.5, 1.25)),
        "c": FeatureCounts({"a": 3, "b'\"": 2}, 5, (0.0, 0.0))})
    assert same(loads(dumps(counts), 7), counts)
    earlier = json.dumps({name: [sorted(c.histogram.items(), key=lambda kv: str(kv[0])),
                                 c.valid, *c.far_sum] for name, c in counts.features.items()})
    assert same(loads(earlier, 7, 1), counts)   # sketches kept by an earlier release


def test_a_sliding_window_adds_and_takes_away_files_and_equals_raw(reg: nbr.Registry) -> None:
    from monitored import FEATURES
    from nbregistry.demo import credit_data

    mon = reg.monitor("credit")
    model = reg.load("credit", 1, trusted=True)
    now = datetime.now(UTC)
    for i in range(12):   # twelve small files, ten minutes apart
        rows = credit_data(40, seed=100 + i)
        mon.log_predictions(rows, model.predict_proba(rows[FEATURES]), attributes=["sex"],
                            ts=[now - timedelta(minutes=130 - 10 * i, seconds=-j)
                                for j in range(40)])
    starts = [now - timedelta(minutes=130 - 10 * i, seconds=1) for i in range(12)]
    windows = [(starts[i], starts[i + 6]) for i in range(6)]
    raw = [mon.drift(a, b).to_pylist() for a, b in windows]
    mon.sketch()
    sketched = [mon.drift(a, b).to_pylist() for a, b in windows]
    assert all(close(x, y) for x, y in zip(raw, sketched, strict=True))
    kept = next(iter(mon.sketches._totals.values()))
    assert max(steps for *_, steps in kept) >= 4   # each slid from the one before


@pytest.mark.parametrize("window, shift", [("1d", 0), ("12h", 0), ("6h", 3)],
                         ids=["days", "half-days", "six-hours-through-the-files"])
def test_sketched_drift_windows_equal_raw_drift_windows(
        reg: nbr.Registry, window: str, shift: int, monkeypatch: pytest.MonkeyPatch) -> None:
    mon = reg.monitor("credit")
    first = min(e.first for e in mon.tables.predictions.snapshot().entries)
    start = first - timedelta(minutes=1, hours=shift)   # shift 0: no file crosses a window
    end = start + timedelta(days=5)
    raw = mon.drift_windows(window, start=start, end=end).to_pylist()
    mon.sketch()
    from nbregistry.watch import sketches

    scanned: list[int] = []
    counts = sketches.feature_counts

    def spy(con: Any, source: str, *args: Any, **kwargs: Any) -> Any:
        scanned.append(source.count(".parquet") - 1)   # less the schema file
        return counts(con, source, *args, **kwargs)

    monkeypatch.setattr(sketches, "feature_counts", spy)
    sketched = mon.drift_windows(window, start=start, end=end).to_pylist()
    assert len(raw) > 4 and close(raw, sketched)
    files = len(mon.tables.predictions.snapshot().entries)
    if not shift:   # the files wholly inside a window were not read
        assert sum(scanned) < files


def _forge_drift_sketches(mon: Any, factor: int) -> None:
    """An attacker with write access to the bucket rewrites the sketches' data files: the
    first cell of debt_ratio counted ``factor`` times over."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    for uri in DeltaTable(mon.sketches.table.uri).file_uris():
        rows = pq.read_table(uri).to_pylist()
        for row in rows:
            if row["format"] == 2:
                counts = json.loads(row["counts"])
                keys, cells = counts["debt_ratio"][0], counts["debt_ratio"][1]
                counts["debt_ratio"][1] = [n * factor if k == keys[0] else n
                                           for k, n in zip(keys, cells, strict=True)]
                row["counts"] = json.dumps(counts)
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(uri)), uri)


def test_a_rewritten_sketch_cannot_vouch_for_itself_with_sketches_off(
        reg: nbr.Registry) -> None:
    import os

    from nbregistry.reports.execute import kernel_env
    from nbregistry.watch.sketching import SKETCHES_ENV

    mon = reg.monitor("credit")
    raw = mon.drift().to_pylist()
    mon.sketch()
    _forge_drift_sketches(mon, 3)
    fooled = nbr.open_registry(reg.uri, create=False).monitor("credit")
    assert not close(fooled.drift().to_pylist(), raw)   # sketches summed: the forged counts
    assert fooled.verify_sketches()                      # ... which verify names
    with kernel_env(user="val", storage_options=None, sketches=False):
        assert os.environ[SKETCHES_ENV] == "off"   # what reverify's kernel inherits
        fresh = nbr.open_registry(reg.uri, create=False).monitor("credit")
        assert close(fresh.drift().to_pylist(), raw)     # from the rows alone
    assert SKETCHES_ENV not in os.environ


def test_a_rewritten_sketch_can_neither_raise_an_alert_nor_act(reg: nbr.Registry) -> None:
    from nbregistry.watch.watcher import Watcher

    reg.set_policy({**reg.policy.source, "monitoring": {
        **reg.policy.source["monitoring"], "on_alert": "retrain"}})
    mon = reg.monitor("credit")
    last = max(e.first for e in mon.tables.predictions.snapshot().entries)
    now = last - timedelta(minutes=1)   # the policy's window holds the three quiet days
    mon.sketch()
    _forge_drift_sketches(mon, 1000)
    fooled = nbr.open_registry(reg.uri, create=False).monitor("credit")
    forged = {r["feature"]: r for r in fooled.drift(now - timedelta(days=7), now).to_pylist()}
    assert forged["debt_ratio"]["drifted"]   # what the sketches alone would say
    tick = Watcher(fooled).tick(now=now)
    assert tick.opened == [] and tick.actions == []
    result = fooled.check(now=now)
    assert result.alerts == [] and result.actions == []
    assert reg.refresh().alerts("credit") == []
