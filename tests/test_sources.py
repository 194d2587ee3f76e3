"""Pinned by construction: every monitoring question reads its tables through a source, so a
report's answers do not move when traffic and outcomes keep arriving after its pin; and the
report context records exactly the Delta versions each question read."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from nbregistry.reports.context import open_report
from nbregistry.reports.reverify import same
from reportworld import FEATURES, NOW, monitored


# DuckDB sums in parallel, in no fixed order: the last bits of a float sum may move, which
# is why reverify compares figures to a relative 1e-9.
def close(a: Any, b: Any) -> bool:
    return bool(same(_plain(a), _plain(b)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    return value.isoformat() if hasattr(value, "isoformat") else value

KEYS = {"predictions": "monitoring/credit/predictions", "outcomes": "monitoring/credit/outcomes"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pinned")
    return monitored(str(root / "registry"), root)


def _more_traffic(world: dict[str, Any]) -> None:
    """New rows inside the same period (and outcomes for them, and late outcomes for old
    rows): what a live scoring service does after a report ran."""
    mon, model, live = world["mon"], world["model"], world["live"]
    frame = live.iloc[:300].assign(debt_ratio=live["debt_ratio"].iloc[:300] + 2.0)
    ts = [world["start"] + timedelta(hours=1, seconds=i) for i in range(len(frame))]
    receipt = mon.log_predictions(frame, model.predict_proba(frame[FEATURES]), ts=ts,
                                  attributes=["sex"], version=1)
    mon.log_outcomes(receipt.ids, 1 - frame["default"], ts=NOW)


QUESTIONS = {
    "rows": lambda m, w: m.rows(w["start"], w["end"], version=1).num_rows,
    "drift": lambda m, w: m.drift(w["start"], w["end"], version=1).to_pylist(),
    "drift_windows": lambda m, w: m.drift_windows("1d", start=w["start"], end=w["end"],
                                                  version=1, progress=False).to_pylist(),
    "performance": lambda m, w: m.performance("1d", start=w["start"], end=w["end"],
                                              version=1).to_pylist(),
    "fairness": lambda m, w: m.fairness("sex", 0, start=w["start"], end=w["end"],
                                        version=1).to_pylist(),
    "replay": lambda m, w: m.replay(2, w["start"], w["end"], served=1).metrics,
}
READS = {"rows": {"predictions", "outcomes"}, "drift": {"predictions"},
         "drift_windows": {"predictions"}, "performance": {"predictions", "outcomes"},
         "fairness": {"predictions", "outcomes"}, "replay": {"predictions", "outcomes"}}


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_a_pinned_answer_does_not_move_when_data_arrives(world: dict[str, Any],
                                                         question: str) -> None:
    ask = QUESTIONS[question]
    context = open_report(world["alice"].uri)
    mon = context.monitor("credit")
    before = ask(mon, world)
    read = {k: v for k, v in context.tables.items()}
    assert set(read) == {KEYS[t] for t in READS[question]}  # exactly what it read
    _more_traffic(world)
    assert close(ask(mon, world), before)  # the same source, asked again: pinned
    again = open_report(world["alice"].uri, {"head": list(context.head), "tables": read})
    assert close(ask(again.monitor("credit"), world), before)  # a re-run from the pins
    assert again.tables == read
    live = ask(world["alice"].monitor("credit"), world)
    assert not close(live, before)  # while the live monitor sees the new rows


def test_a_check_on_pinned_data_is_refused_and_figures_are_pinned(world: dict[str, Any]
                                                                  ) -> None:
    context = open_report(world["alice"].uri)
    mon = context.monitor("credit")
    with pytest.raises(nbr.ReadOnlyError, match="pinned"):
        mon.check()
    with pytest.raises(nbr.ReadOnlyError):
        mon.log_predictions(world["live"].iloc[:2], [0.1, 0.2])
    from nbregistry.watch import checks

    first = checks.measure(mon, 1, world["start"], world["end"])
    _more_traffic(world)
    assert close(checks.measure(mon, 1, world["start"], world["end"]), first)


def test_one_question_reads_one_version_of_each_table(world: dict[str, Any]) -> None:
    mon = world["alice"].monitor("credit")
    reads = mon.source.reads()
    first = reads.snapshot("predictions")
    _more_traffic(world)
    assert reads.snapshot("predictions", world["start"], world["end"]).version == first.version
    assert mon.source.reads().snapshot("predictions").version > first.version


def test_reverify_passes_after_new_traffic_and_outcomes(world: dict[str, Any],
                                                        tmp_path: Path) -> None:
    report = nbr.run_report("monitoring", model="credit", version=1,
                            start=world["start"].isoformat(), end=world["end"].isoformat(),
                            uri=world["alice"].uri, output_dir=tmp_path / "out",
                            progress=False, pdf=False)
    _more_traffic(world)
    result = nbr.reverify(report, progress=False)
    assert result.ok, result
