"""Hostile or absurd input gets a typed NbRegistryError naming the fix, never a raw
OverflowError, OSError or JSON error, and writes nothing; a damaged event log is reported by
verify() rather than crashing it. Real registries and Delta tables on disk."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import nbregistry as nbr
from nbregistry.domain.errors import IntegrityError, InvalidInputError
from nbregistry.store import commits, eventlog

Y9999 = datetime(9999, 12, 31, 12, tzinfo=UTC)


@pytest.fixture
def reg(registry_uri: str) -> nbr.Registry:
    registry = nbr.open_registry(registry_uri, user="alice", create=True)
    registry.register({"w": 1}, "m")
    return registry


# -- numbers and text ----------------------------------------------------------------------

@pytest.mark.parametrize("digits", [400, 5000], ids=["1e400", "1e5000-too-long-to-print"])
def test_a_metric_beyond_a_float_is_invalid_input(reg: nbr.Registry, digits: int) -> None:
    with pytest.raises(InvalidInputError, match=r"'auc' = an integer of about .* digits is "
                       "not a finite number"):
        reg.register({"w": 2}, "m", metrics={"auc": 10 ** digits})
    assert reg.get("m").version == 1  # nothing written


def test_a_long_one_line_policy_is_policy_text_not_a_file_name(reg: nbr.Registry) -> None:
    seq = reg.history().num_rows
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        reg.set_policy("x" * 1000)  # the OS refuses it as a file name: ENAMETOOLONG
    assert reg.history().num_rows == seq


@pytest.mark.parametrize("section, key, value, message", [
    ("monitoring", "maturity_days", 10 ** 400, "must be a finite number"),
    ("monitoring", "maturity_days", 1e300, "at most 36,500"),
    ("monitoring", "thresholds", {"psi": {"warn": 0.1, "alert": 10 ** 400}},
     "warn and alert must be finite"),
    ("production", "approval_ttl_days", 10 ** 400, "approval_ttl_days must be"),
    ("production", "approval_ttl_days", 1e300, "approval_ttl_days must be"),
    ("production", "emergency_window_hours", 10 ** 400, "emergency_window_hours must be"),
], ids=["maturity-1e400", "maturity-1e300", "threshold-1e400", "ttl-1e400", "ttl-1e300",
        "emergency-window-1e400"])
def test_policy_numbers_beyond_any_meaning_are_invalid_input(
        reg: nbr.Registry, section: str, key: str, value: Any, message: str) -> None:
    source = reg.policy.source
    stages = source["stages"]
    policy = {**source, "monitoring": {key: value}} if section == "monitoring" else {
        **source, "stages": {**stages, section: {**stages.get(section, {}), key: value}}}
    seq = reg.history().num_rows
    with pytest.raises(InvalidInputError, match=message):
        reg.set_policy(policy)
    assert reg.history().num_rows == seq


# -- the event log ------------------------------------------------------------------------

def hand_written_event(uri: str, change: dict[str, Any], types: dict[str, pa.DataType],
                       drop: tuple[str, ...] = ()) -> None:
    """Append an event as a parquet file plus a Delta commit, the way an attacker with write
    access to the folder could, with the given columns altered."""
    log = Path(uri, eventlog.TABLE, "_delta_log")
    last = max(int(p.name[:20]) for p in log.glob("*.json"))
    row: dict[str, Any] = {"seq": last + 2, "event_id": "e" * 32, "ts": datetime.now(UTC),
                           "actor": "mallory", "action": "set_alias", "model": "m",
                           "version": 1, "payload": "{}", "prev_hash": "0" * 64,
                           "hash": "1" * 64, **change}
    schema = {f.name: f.type for f in eventlog.SCHEMA} | types
    table = pa.table({k: pa.array([v], schema[k]) for k, v in row.items() if k not in drop})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    name = commits.file_name(last + 2, last + 2)
    Path(uri, eventlog.TABLE, name).write_bytes(buffer.getvalue())
    add = {"path": name, "size": buffer.tell(), "partitionValues": {}, "modificationTime": 0,
           "dataChange": True, "stats": json.dumps({"numRecords": 1})}
    (log / f"{last + 1:020d}.json").write_text(
        json.dumps({"commitInfo": {"timestamp": 0, "operation": "WRITE"}}) + "\n"
        + json.dumps({"add": add}) + "\n")


FAR = 300_000_000_000_000_000  # microseconds since 1970: the year 11476


@pytest.mark.parametrize("change, types, drop, reported", [
    ({"ts": FAR}, {"ts": pa.timestamp("us", tz="UTC")}, (), "outside years 1-9999"),
    ({"ts": -FAR}, {"ts": pa.timestamp("us", tz="UTC")}, (), "outside years 1-9999"),
    ({"payload": "not json"}, {}, (), "cannot be read"),
    ({"payload": "[1, 2]"}, {}, (), "not a JSON object"),
    ({"payload": 7}, {"payload": pa.int64()}, (), "not a JSON object"),
    ({"actor": None}, {}, (), "missing or unreadable"),
    ({}, {}, ("hash",), "missing or unreadable"),
], ids=["ts-year-11476", "ts-before-year-1", "payload-not-json", "payload-a-list",
        "payload-an-int", "null-actor", "a-column-missing"])
def test_a_hand_written_event_of_the_wrong_types_is_reported_not_a_crash(
        reg: nbr.Registry, change: dict[str, Any], types: dict[str, pa.DataType],
        drop: tuple[str, ...], reported: str) -> None:
    hand_written_event(reg.uri, change, types, drop)
    with pytest.raises(IntegrityError):
        nbr.open_registry(reg.uri, user="bob")
    with pytest.raises(IntegrityError):
        reg.set_alias("m", "champion", 1)  # a writer reading the new commit
    report = nbr.verify(reg.uri)
    assert not report.ok
    assert any(reported in p.message for p in report.problems), report.problems


# -- year 9999 in monitoring --------------------------------------------------------------

@pytest.fixture
def monitored(reg: nbr.Registry) -> Any:
    rng = np.random.default_rng(2)
    reg.register({"w": 2}, "scored", reference_data=pa.table({"x": rng.normal(0, 1, 500)}))
    monitor = reg.monitor("scored")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    receipt = monitor.log_predictions(pa.table({"x": rng.normal(0, 1, 200)}), rng.random(200),
                                      ts=[start + timedelta(minutes=i) for i in range(200)])
    monitor.log_outcomes(receipt.ids, rng.integers(0, 2, 200), ts=start)
    return monitor


def test_a_year_9999_time_is_refused_at_capture(monitored: Any) -> None:
    before = monitored.tables.predictions.version()
    rows = pa.table({"x": [0.5, 0.7]})
    new_york = timezone(timedelta(hours=-5))
    for ts in (Y9999, [Y9999, Y9999], datetime(9999, 12, 31, 20, tzinfo=new_york)):
        with pytest.raises(InvalidInputError, match="after 9998"):
            monitored.log_predictions(rows, [0.1, 0.2], ts=ts)
    with pytest.raises(InvalidInputError, match="after 9998"):
        monitored.log_outcomes(["a"], [1], ts=Y9999)
    with monitored.logger() as logger, pytest.raises(InvalidInputError, match="after 9998"):
        logger.log({"x": 0.5}, 0.3, ts=Y9999)  # refused in log(), not at the flush
    assert monitored.tables.predictions.version() == before


@pytest.mark.parametrize("when", [Y9999, datetime.max.replace(tzinfo=UTC), FAR])
def test_windows_over_rows_dated_at_the_calendars_edge_are_invalid_input(
        monitored: Any, when: datetime | int) -> None:
    """Rows another writer put in the table (capture refuses them) fail with a typed error
    that names the way out, and end= leaves them out."""
    table = monitored.tables.predictions.read().slice(0, 20)
    ts = pa.array([when] * 20, pa.int64() if isinstance(when, int) else pa.timestamp(
        "us", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
    table = table.set_column(table.column_names.index("ts"), "ts", ts)
    monitored.tables.predictions.append(table)
    outcomes = monitored.tables.outcomes.read().slice(0, 20)
    ids = table["prediction_id"]
    monitored.tables.outcomes.append(outcomes.set_column(0, "prediction_id", ids).set_column(
        1, "ts", ts))
    with pytest.raises(InvalidInputError, match=r"start/end|end="):
        monitored.performance(window="1d")
    # the heatmap's default period ends now, not at a row dated in the future
    heatmap = monitored.drift_windows("1d", progress=False)
    assert heatmap.num_rows and max(heatmap["window_start"].to_pylist()) < datetime.now(UTC)
    assert monitored.performance(window="1d", end="9000-01-01").num_rows == 1
