"""The watcher: alerts as episodes (one when a figure enters its band, one when it leaves),
never repeated by a restart or a second watcher, concept drift from the outcome stream, and
a process that stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import nbregistry as nbr
from nbregistry.demo import credit_data
from nbregistry.watch.watcher import Watcher

FEATURES = ["income", "debt_ratio", "history_years", "utilisation", "late_payments"]
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def world(registry_uri: str) -> dict[str, Any]:
    data = credit_data(8000, seed=12)
    train = data.iloc[:3000]
    reg = nbr.open_registry(registry_uri, user="alice", create=True)
    model = LogisticRegression(max_iter=400).fit(train[FEATURES], train["default"])
    reg.register(model, "credit", reference_data=train[FEATURES],
                 reference_target=train["default"])
    reg.set_policy({**reg.policy.source, "monitoring": {
        "window": "10m", "short_window": "10m", "tick": "1s", "min_rows": 100,
        "on_alert": "retrain"}})
    return {"reg": reg, "model": model, "live": data.iloc[3000:].reset_index(drop=True)}


def _log(world: dict[str, Any], rows: slice, start: datetime, *, shift: float = 0.0,
         spacing: float = 1.0) -> list[str]:
    frame = world["live"].iloc[rows]
    frame = frame.assign(debt_ratio=frame["debt_ratio"] + shift)
    ts = [start + timedelta(seconds=spacing * i) for i in range(len(frame))]
    receipt = world["reg"].monitor("credit").log_predictions(
        frame, world["model"].predict_proba(frame[FEATURES]), ts=ts, attributes=["sex"])
    return list(receipt.ids.to_pylist())


def _alerts(reg: nbr.Registry) -> list[nbr.Event]:
    return reg.refresh().alerts("credit")


def test_an_episode_opens_once_and_closes_once(world: dict[str, Any]) -> None:
    reg = world["reg"]
    _log(world, slice(0, 500), BASE - timedelta(minutes=9), shift=0.4)
    tick = Watcher(reg.monitor("credit")).tick(now=BASE)
    assert {e.payload["feature"] for e in tick.opened} >= {"debt_ratio"}
    assert all(e.payload["episode"] == "open" for e in tick.opened)
    assert [e.action for e in tick.actions] == ["retrain_requested"]
    assert Watcher(reg.monitor("credit")).tick(now=BASE).opened == []  # still open
    restarted = Watcher(nbr.open_registry(reg.uri, create=False).monitor("credit"))
    assert restarted.tick(now=BASE).opened == []  # a restart does not repeat it
    _log(world, slice(500, 1100), BASE + timedelta(seconds=1))  # the feed is back to normal
    later = restarted.tick(now=BASE + timedelta(minutes=10, seconds=2))
    assert {e.payload["feature"] for e in later.closed} >= {"debt_ratio"}
    assert all(e.payload["status"] == "ok" for e in later.closed)
    actions = reg.history("credit").column("action").to_pylist()
    assert actions.count("retrain_requested") == 1
    assert reg.verify().ok


def test_two_watchers_record_an_episode_once(world: dict[str, Any]) -> None:
    reg = world["reg"]
    _log(world, slice(0, 500), BASE - timedelta(minutes=9), shift=0.4)
    watchers = [Watcher(nbr.open_registry(reg.uri, create=False).monitor("credit"))
                for _ in range(2)]
    done: list[Any] = []
    threads = [threading.Thread(target=lambda w=w: done.append(w.tick(now=BASE)))
               for w in watchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    opened = [e.payload["feature"] for t in done for e in t.opened]
    assert opened.count("debt_ratio") == 1
    keys = [(e.payload["metric"], e.payload["feature"]) for e in _alerts(reg)]
    assert len(keys) == len(set(keys))


def test_concept_drift_in_the_outcome_stream_opens_an_episode(world: dict[str, Any]) -> None:
    reg = world["reg"]
    ids = _log(world, slice(0, 3000), BASE - timedelta(hours=1), spacing=1.0)
    scores = world["model"].predict_proba(world["live"].iloc[:3000][FEATURES])[:, 1]
    right = (scores >= 0.5).astype(float)
    actual = np.concatenate([right[:2400], 1 - right[2400:]])  # the relation flips
    mon = reg.monitor("credit")
    for start in range(0, 3000, 500):
        mon.log_outcomes(ids[start:start + 500], actual[start:start + 500],
                         ts=[BASE - timedelta(minutes=9) + timedelta(seconds=(start + i) / 10)
                             for i in range(min(500, 3000 - start))])
    tick = Watcher(mon).tick(now=BASE)
    opened = {e.payload["metric"] for e in tick.opened if e.payload["kind"] == "concept_drift"}
    assert opened == {"page_hinkley", "adwin"}


def test_a_fall_of_the_error_is_no_concept_drift(world: dict[str, Any]) -> None:
    reg = world["reg"]
    ids = _log(world, slice(0, 3000), BASE - timedelta(hours=1), spacing=1.0)
    scores = world["model"].predict_proba(world["live"].iloc[:3000][FEATURES])[:, 1]
    right = (scores >= 0.5).astype(float)
    actual = np.concatenate([1 - right[:2400], right[2400:]])  # the model got better
    mon = reg.monitor("credit")
    mon.log_outcomes(ids, actual, ts=[BASE - timedelta(minutes=9) + timedelta(seconds=i / 10)
                                      for i in range(3000)])
    tick = Watcher(mon).tick(now=BASE)
    assert not [e for e in tick.opened if e.payload["kind"] == "concept_drift"]


def test_the_watch_command_stops_cleanly_on_sigterm(world: dict[str, Any],
                                                    tmp_path: Path) -> None:
    _log(world, slice(0, 200), datetime.now(UTC) - timedelta(minutes=5))
    process = subprocess.Popen(
        [sys.executable, "-m", "nbregistry.cli", "watch", "credit", "--uri",
         world["reg"].uri, "--every", "1s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while "sketched" not in process.stdout.readline():  # a first tick happened
        assert time.monotonic() < deadline and process.poll() is None
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_a_tick_sketches_only_the_new_files(world: dict[str, Any]) -> None:
    mon = world["reg"].monitor("credit")
    _log(world, slice(0, 300), BASE - timedelta(minutes=8))
    watcher = Watcher(mon)
    assert watcher.tick(now=BASE).sketched == 1
    assert watcher.tick(now=BASE).sketched == 0
    _log(world, slice(300, 600), BASE - timedelta(minutes=3))
    assert watcher.tick(now=BASE).sketched == 1


def _stream_by_hand(mon: Any, limit: int) -> list[tuple[Any, ...]]:
    """The detectors' stream by its definition: every matured prediction, newest outcome
    first, the newest ``limit``, in outcome order."""
    found = mon.sql("SELECT o.ts, p.score, o.actual FROM {outcomes} AS o JOIN {predictions} "
                    "AS p ON p.prediction_id = o.prediction_id ORDER BY o.ts DESC "
                    f"LIMIT {limit}").to_pylist()
    return sorted((r["ts"], r["score"], r["actual"]) for r in found)


def test_the_outcome_stream_is_read_once_per_outcomes_version(world: dict[str, Any]) -> None:
    mon = world["reg"].monitor("credit")
    ids = _log(world, slice(0, 400), BASE - timedelta(minutes=30))
    mon.log_outcomes(ids[:300], [1.0] * 150 + [0.0] * 150,
                     ts=[BASE - timedelta(minutes=20, seconds=-i) for i in range(300)])
    first = mon.errors(limit=200)
    assert sorted(zip(*(first[c].to_pylist() for c in ("outcome_ts", "score", "actual")),
                      strict=True)) == _stream_by_hand(mon, 200)
    _log(world, slice(400, 600), BASE - timedelta(minutes=5))  # predictions only
    assert mon.errors(limit=200) is first   # no new outcome: nothing read again
    mon.log_outcomes(ids[300:], [1.0] * 100,
                     ts=[BASE - timedelta(minutes=10, seconds=-i) for i in range(100)])
    second = mon.errors(limit=200)
    assert second is not first and second.num_rows == 200
    assert second["outcome_ts"].to_pylist()[-1] == BASE - timedelta(minutes=10, seconds=-99)


def test_an_outcome_before_its_prediction_joins_the_stream_when_it_lands(
        world: dict[str, Any]) -> None:
    mon = world["reg"].monitor("credit")
    ids = _log(world, slice(0, 50), BASE - timedelta(minutes=30))
    mon.log_outcomes(ids, [0.0] * 50,
                     ts=[BASE - timedelta(minutes=20, seconds=-i) for i in range(50)])
    early = mon.log_outcomes(["late-1"], [1.0], ts=[BASE - timedelta(minutes=1)])
    assert early.unknown == 1
    assert mon.errors(limit=40).num_rows == 40   # the unknown id is not in the stream
    frame = world["live"].iloc[50:51]
    mon.log_predictions(frame, world["model"].predict_proba(frame[FEATURES]),
                        ids=["late-1"], ts=[BASE - timedelta(minutes=2)])
    newest = mon.errors(limit=40)
    assert newest["actual"].to_pylist()[-1] == 1.0   # its prediction landed: it counts now
    assert sorted(zip(*(newest[c].to_pylist() for c in ("outcome_ts", "score", "actual")),
                      strict=True)) == _stream_by_hand(mon, 40)
