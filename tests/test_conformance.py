"""Independent Delta readers see exactly what nbregistry wrote, in every table it writes.

The event log's commits are written by hand (store/commits.py); the monitoring tables
(predictions, outcomes, metrics) by deltalake's writer. Here deltalake (pyarrow and
DataFusion paths), DuckDB's ``delta`` extension, Polars and Spark (Spark Connect on a Sail
server) read each of them after merges, compactions, checkpoints and a schema merge from a
second model version, in full and with predicates pushed down (a reader that skips a file on
a wrong statistic loses rows), on a local disk and on S3 (the moto server). A protocol
feature a reader cannot handle fails its test. See tests/delta_readers.py for the readers
and the venv DuckDB's extensions run in.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from delta_readers import READERS, Where, normalise, read_many, read_rows, sort_rows
from nbregistry.store import eventlog
from nbregistry.store.eventlog import EventLog
from nbregistry.store.location import Location
from s3server import BUCKET, s3_client

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


# -- the monitoring tables: predictions, outcomes, metrics --------------------------------
TABLES = ("predictions", "outcomes", "metrics")
ORDER = {"predictions": ["prediction_id"], "outcomes": ["prediction_id"],
         "metrics": ["computed_at", "kind", "feature", "metric"]}
START = datetime(2026, 11, 20, 22, tzinfo=UTC)


def monitored(uri: str, options: dict[str, str] | None, *, appends: int,
              checks: int) -> dict[str, Any]:
    """A registry at ``uri`` whose three monitoring tables each went through compactions
    and checkpoints (every 10th version): credit v1 logs ``appends`` batches of 15 rows over
    days (day partitions), their outcomes arrive in batches of 30, ``checks`` checks append
    metrics, then v2 adds a feature (a schema merge: older files lack the column)."""
    from sklearn.linear_model import LogisticRegression

    from nbregistry.demo import credit_data
    from nbregistry.store import monitoring

    data = credit_data(4000, seed=5)
    data["tenure_months"] = (data["history_years"] * 12).astype("int64")
    train, live = data.iloc[:1000], data.iloc[1000:].reset_index(drop=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(monitoring, "COMPACT_EVERY", 10)
        reg = nbr.open_registry(uri, user="alice", storage_options=options, create=True)
        reg.set_policy({**reg.policy.source, "monitoring": {
            "window": "1d", "min_rows": 20, "maturity_days": 0, "fairness_group": "sex",
            "fairness_favorable": 0}})
        model = LogisticRegression(max_iter=500).fit(train[FEATURES], train["default"])
        reg.register(model, "credit", reference_data=train[FEATURES],
                     reference_target=train["default"])
        mon = reg.monitor("credit")
        ids: list[str] = []
        for i in range(appends):  # 7 minutes apart: ~1.7 days per 15 appends
            batch = live.iloc[i * 15:(i + 1) * 15]
            ts = [START + timedelta(minutes=7 * (i * 15 + j), microseconds=123457 * j)
                  for j in range(len(batch))]
            receipt = mon.log_predictions(batch, model.predict_proba(batch[FEATURES]), ts=ts,
                                          attributes=["sex"])
            ids += receipt.ids.to_pylist()
        resolved = list(ids)
        actuals = live["default"].iloc[:len(resolved)].tolist()
        for k, chunk in enumerate(range(0, len(resolved), 30)):
            mon.log_outcomes(resolved[chunk:chunk + 30], actuals[chunk:chunk + 30],
                             ts=START + timedelta(days=1, hours=k, microseconds=7 * k + 1))
        span = timedelta(minutes=7 * 15 * appends)
        for k in range(checks):
            mon.check(now=START + timedelta(days=1) + span * k / checks)
        wider = [*FEATURES, "tenure_months"]
        v2 = LogisticRegression(max_iter=500).fit(train[wider], train["default"])
        reg.register(v2, "credit", reference_data=train[wider],
                     reference_target=train["default"])
        later = live.iloc[2000:2040]
        ids += mon.log_predictions(later, v2.predict_proba(later[wider]), version=2,
                                   ts=[START + timedelta(days=9)] * len(later),
                                   attributes=["sex"]).ids.to_pylist()
    tables = {kind: getattr(mon.tables, kind) for kind in TABLES}
    rows: dict[str, list[dict[str, Any]]] = {}
    for kind, table in tables.items():
        ours = table.read().to_pylist()
        if kind != "metrics":
            for row in ours:  # the partition column, by definition the UTC date of ts
                row["day"] = row["ts"].date()
        rows[kind] = sort_rows(normalise(ours), ORDER[kind])
    return {"uris": {kind: table.uri for kind, table in tables.items()}, "rows": rows,
            "ids": sorted(ids), "appends": appends}


def predicates(kind: str, rows: list[dict[str, Any]]) -> list[Where]:
    """Exact-microsecond bounds (the ts statistics are milliseconds), strings, numbers, and
    for predictions a column only the newest files have."""
    middle = rows[len(rows) // 2]
    if kind == "predictions":
        ts = datetime.fromisoformat(middle["ts"])
        return [("ts", ">=", ts), ("ts", "=", ts), ("ts", "<", ts), ("sex", "=", "F"),
                ("version", "=", 2), ("tenure_months", ">", 40)]
    if kind == "outcomes":
        ts = datetime.fromisoformat(middle["ts"])
        return [("ts", ">=", ts), ("ts", "=", ts), ("actual", "=", 1.0),
                ("prediction_id", "<", middle["prediction_id"])]
    at = datetime.fromisoformat(middle["computed_at"])
    return [("computed_at", ">=", at), ("kind", "=", "drift"), ("value", ">", 0.1),
            ("window_end", "<=", datetime.fromisoformat(middle["window_end"])),
            ("status", "=", "ok")]


def compare(world: dict[str, Any], reader: str, kind: str, *,
            env: dict[str, str] | None = None) -> None:
    ours = world["rows"][kind]
    wheres = predicates(kind, ours)
    everything, *results = read_many(reader, world["uris"][kind], order_by=ORDER[kind],
                                     queries=[None, *wheres], env=env)
    assert everything == ours
    for where, found in zip(wheres, results, strict=True):
        expected = _filtered(ours, where)
        assert expected, where
        assert found == expected, where


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("conformance") / "registry"
    return monitored(str(root), None, appends=110, checks=24)


def test_the_monitoring_tables_went_through_what_readers_must_replay(
        tables: dict[str, Any]) -> None:
    ours = tables["rows"]
    assert [r["prediction_id"] for r in ours["predictions"]] == tables["ids"]
    assert sum(r["tenure_months"] is None for r in ours["predictions"]) == 110 * 15
    assert len(ours["outcomes"]) == 110 * 15 and len({r["day"] for r in ours["outcomes"]}) > 1
    assert {r["kind"] for r in ours["metrics"]} >= {"drift", "performance", "fairness"}
    for kind in TABLES:
        log = Path(tables["uris"][kind]) / "_delta_log"
        commits = [json.loads(c.read_text().splitlines()[0]).get("commitInfo", {})
                   for c in sorted(log.glob("*.json"))]
        assert sum(c.get("operation") == "OPTIMIZE" for c in commits) >= 2, kind
        assert len(list(log.glob("*.checkpoint.parquet"))) >= 2, kind


@pytest.mark.parametrize("kind", TABLES)
@pytest.mark.parametrize("reader", READERS)
def test_readers_agree_on_every_monitoring_table(tables: dict[str, Any], reader: str,
                                                 kind: str) -> None:
    compare(tables, reader, kind)


# -- the same tables on S3 ----------------------------------------------------------------
@pytest.fixture(scope="module")
def on_s3(s3_server: dict[str, str]) -> dict[str, Any]:
    uri = f"s3://{BUCKET}/conformance-{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eventlog, "FANOUT", 3)
        patch.setattr(eventlog, "CHECKPOINT_EVERY", 10)
        world = monitored(uri, dict(s3_server), appends=30, checks=12)
        reg = nbr.open_registry(uri, user="alice", storage_options=s3_server)
        for i in range(20):
            reg.comment("credit", 1, f"note {i}")
        reg.ledger.log.vacuum(grace=timedelta(0))
    world["uris"]["events"] = EventLog(Location(uri, dict(s3_server))).uri
    world["rows"]["events"] = normalise(reg.history().to_pylist())
    return world


def test_the_s3_tables_have_checkpoints_and_merges(on_s3: dict[str, Any],
                                                   s3_server: dict[str, str]) -> None:
    client = s3_client(s3_server)
    for kind, uri in on_s3["uris"].items():
        prefix = uri.removeprefix(f"s3://{BUCKET}/") + "/_delta_log/"
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        assert any(k.endswith(".checkpoint.parquet") for k in keys), kind
        merges = [k for k in keys if k.endswith(".json") and b'"OPTIMIZE"' in client.get_object(
            Bucket=BUCKET, Key=k)["Body"].read()]
        assert merges, kind


@pytest.mark.parametrize("reader", READERS)
def test_readers_agree_on_every_table_on_s3(on_s3: dict[str, Any], s3_server: dict[str, str],
                                            reader: str) -> None:
    """Each reader takes the endpoint and credentials from the usual AWS variables."""
    events = read_rows(reader, on_s3["uris"]["events"], order_by=["seq"], env=s3_server)
    assert [{c: r[c] for c in HISTORY} for r in events] == on_s3["rows"]["events"]
    for kind in TABLES:
        compare(on_s3, reader, kind, env=s3_server)
