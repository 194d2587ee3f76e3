"""Independent Delta readers see exactly what nbregistry wrote.

The event log's commits are written by hand (store/commits.py); the monitoring tables by
deltalake's writer. Here deltalake (pyarrow and DataFusion paths), DuckDB's ``delta``
extension and Polars read them after several compactions and checkpoints, in full and with
predicates pushed down (a reader that skips a file on a wrong statistic loses rows). See
tests/delta_readers.py for the readers and the venv DuckDB's extension runs in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from delta_readers import READERS, Where, normalise, read_many, read_rows
from nbregistry.store import eventlog
from nbregistry.store.eventlog import EventLog
from nbregistry.store.location import Location

pytestmark = pytest.mark.slow

HISTORY = ["seq", "ts", "actor", "action", "model", "version", "payload", "hash"]
FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
ROUNDS = 70  # 3 registrations + 1-2 alias moves a round: ~320 events, 6 compactions


def _filtered(rows: list[dict[str, Any]], where: Where) -> list[dict[str, Any]]:
    column, op, value = where
    if isinstance(value, datetime):
        value = normalise(value)
        key = datetime.fromisoformat
    else:
        def key(v: Any) -> Any:
            return v
    compare = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
               ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]
    return [r for r in rows if r[column] is not None
            and compare(key(r[column]), key(value))]


# -- the event log ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("conformance") / "registry"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eventlog, "CHECKPOINT_EVERY", 100)  # several, of which two are kept
        patch.setattr(eventlog, "FANOUT", 5)  # merges of merges of merges
        reg = nbr.open_registry(str(root), user="alice", create=True)
        for i in range(ROUNDS):
            for name in ("alpha", "beta", "gamma"):
                reg.register({"round": i, "name": name}, name,
                             metrics={"auc": 0.5 + i / 1000}, tags={"round": str(i)})
            reg.set_alias("alpha", "champion", i + 1)
            if i % 2:
                reg.set_alias("beta", "challenger", i)
        deleted = reg.ledger.log.vacuum(grace=timedelta(0))  # the clean-up an hour later
    history = normalise(reg.history().to_pylist())
    log = EventLog(Location(str(root)))
    return {"uri": log.uri, "history": history, "log": Path(log.uri) / "_delta_log",
            "deleted": deleted,
            "levels": {eventlog.level(e) for e in reg.ledger.log.files().values()}}


def test_the_log_has_compactions_checkpoints_and_a_hand_written_tail(
        events: dict[str, Any]) -> None:
    # What makes the comparison worth having: readers must replay checkpoints, compaction
    # commits (remove + add, dataChange false) and the hand-written commits after them.
    log: Path = events["log"]
    assert len(events["history"]) > 250
    checkpoints = sorted(log.glob("*.checkpoint.parquet"))
    assert len(checkpoints) == eventlog.KEEP_CHECKPOINTS  # older ones were pruned
    last = json.loads((log / "_last_checkpoint").read_text())["version"]
    commits = sorted(log.glob("*.json"))
    operations = [json.loads(c.read_text().splitlines()[0])["commitInfo"]
                  for c in commits]
    assert sum(o.get("operation") == "OPTIMIZE" for o in operations) >= 5
    assert len(events["deleted"]) > 200 and max(events["levels"]) >= 2  # cleaned up, merged
    tail = [c for c in commits if int(c.stem) > last]
    assert tail and any(b"nbregistry.seq" in c.read_bytes() for c in tail)


@pytest.mark.parametrize("reader", READERS)
def test_readers_return_exactly_the_rows_history_returns(
        events: dict[str, Any], reader: str) -> None:
    rows = read_rows(reader, events["uri"], order_by=["seq"])
    assert list(rows[0]) == eventlog.SCHEMA.names
    assert [{c: r[c] for c in HISTORY} for r in rows] == events["history"]
    # The columns history() leaves out are the ones nbregistry itself reads.
    assert rows == read_rows("deltalake", events["uri"], order_by=["seq"])


@pytest.mark.parametrize("reader", READERS)
def test_pushed_down_predicates_lose_no_rows(events: dict[str, Any], reader: str) -> None:
    # Statistics of hand-written commits keep ts to the millisecond (as Delta does) while
    # the data has microseconds: an exact-microsecond bound on the newest event (its file
    # is not compacted yet, so its stats are ours) and on an old one (deltalake's stats)
    # would lose the row in a reader that trusted the truncated max.
    history = events["history"]
    newest, old = history[-1], history[100]
    predicates: list[Where] = [
        ("ts", ">=", datetime.fromisoformat(newest["ts"])),
        ("ts", "=", datetime.fromisoformat(newest["ts"])),
        ("ts", "=", datetime.fromisoformat(old["ts"])),
        ("ts", "<=", datetime.fromisoformat(old["ts"])),
        ("seq", ">", newest["seq"] - 7),
        ("model", "=", "beta"),
        ("action", "=", "set_alias"),
        ("version", "<=", 3),
    ]
    results = read_many(reader, events["uri"], order_by=["seq"], queries=predicates)
    for where, found in zip(predicates, results, strict=True):
        expected = _filtered(history, where)
        assert expected, where
        assert [{c: r[c] for c in HISTORY} for r in found] == expected, where


# -- a monitoring predictions table -------------------------------------------------------
@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from nbregistry.demo import credit_data

    data = credit_data(4000, seed=5)
    data["tenure_months"] = (data["history_years"] * 12).astype("int64")
    train, live = data.iloc[:1000], data.iloc[1000:].reset_index(drop=True)
    root = tmp_path_factory.mktemp("conformance") / "registry"
    reg = nbr.open_registry(str(root), user="alice", create=True)
    model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["default"])
    reg.register(model, "credit", reference_data=train[FEATURES],
                 reference_target=train["default"])
    mon = reg.monitor("credit")
    start = datetime(2026, 11, 20, 22, tzinfo=UTC)
    ids: list[str] = []
    for i in range(110):  # 110 appends over ~8 days: 2 compactions, day partitions
        batch = live.iloc[i * 15:(i + 1) * 15]
        ts = [start + timedelta(minutes=7 * (i * 15 + j), microseconds=123457 * j)
              for j in range(len(batch))]
        receipt = mon.log_predictions(batch, model.predict_proba(batch[FEATURES]), ts=ts,
                                      attributes=["sex"])
        ids += receipt.ids.to_pylist()
    # A later version adds a feature: older files lack the column (schema merge).
    wider = [*FEATURES, "tenure_months"]
    v2 = LogisticRegression(max_iter=500).fit(train[wider], train["default"])
    reg.register(v2, "credit", reference_data=train[wider],
                 reference_target=train["default"])
    later = live.iloc[2000:2040]
    ids += mon.log_predictions(later, v2.predict_proba(later[wider]), version=2,
                               ts=[start + timedelta(days=9)] * len(later),
                               attributes=["sex"]).ids.to_pylist()
    table = mon.tables.predictions
    ours = table.read().to_pylist()
    for row in ours:  # the partition column, by definition the UTC date of ts
        row["day"] = row["ts"].date()
    return {"uri": table.uri, "rows": sorted(normalise(ours), key=lambda r: r["prediction_id"]),
            "ids": sorted(ids), "log": Path(table.uri) / "_delta_log"}


@pytest.mark.parametrize("reader", READERS)
def test_readers_agree_on_a_predictions_table(predictions: dict[str, Any],
                                              reader: str) -> None:
    assert len(list(predictions["log"].glob("*.checkpoint.parquet"))) >= 2
    ours = predictions["rows"]
    assert [r["prediction_id"] for r in ours] == predictions["ids"]
    assert sum(r["tenure_months"] is None for r in ours) == 110 * 15
    # Exact-microsecond bounds (the ts statistics are milliseconds), a string and a column
    # only the newest files have.
    middle = datetime.fromisoformat(ours[700]["ts"])
    predicates: list[Where] = [
        ("ts", ">=", middle), ("ts", "=", middle), ("ts", "<", middle), ("sex", "=", "F"),
        ("version", "=", 2), ("tenure_months", ">", 40)]
    rows, *results = read_many(reader, predictions["uri"], order_by=["prediction_id"],
                               queries=[None, *predicates])
    assert rows == ours
    for where, found in zip(predicates, results, strict=True):
        expected = _filtered(ours, where)
        assert expected, where
        assert found == expected, where
