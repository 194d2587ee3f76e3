"""Reads never write: a question, a gate check, a view of the past or a panel refresh leaves
the audit log exactly as it was. Baselines are frozen by writes that write anyway."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from monitored import monitored


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> nbr.Registry:
    registry = monitored(str(tmp_path_factory.mktemp("reads") / "registry"))
    registry.set_policy({**registry.policy.source, "stages": {
        **registry.policy.source.get("stages", {}),
        "staging": {"monitoring": ["no_drift_alert", "fairness", "replay"]}}})
    return registry


READS: dict[str, Callable[[nbr.Registry], Any]] = {
    "drift": lambda r: r.monitor("credit").drift(),
    "drift_windows": lambda r: r.monitor("credit").drift_windows(progress=False),
    "performance": lambda r: r.monitor("credit").performance(),
    "fairness": lambda r: r.monitor("credit").fairness("sex", 0),
    "rows": lambda r: r.monitor("credit").rows(),
    "baseline": lambda r: r.monitor("credit").baseline(),
    "importance": lambda r: r.monitor("credit").importance(),
    "task": lambda r: r.monitor("credit").task(),
    "check_gates": lambda r: r.check_gates("credit", 1, "staging"),
    "requirements": lambda r: r.requirements("credit", 1, "staging"),
    "search": lambda r: r.search("credit"),
    "history": lambda r: r.history("credit"),
    "as_of": lambda r: r.as_of(datetime.now(UTC)).models(),
    "at": lambda r: r.at(r.head).models(),
    "verify": lambda r: r.verify(),
    "alerts": lambda r: r.alerts("credit"),
    "gather": lambda r: _gather(r),
}


def _gather(reg: nbr.Registry) -> Any:
    from nbregistry.notebook.monitoring import gather

    return gather(reg.monitor("credit"))


@pytest.mark.parametrize("read", sorted(READS))
def test_a_read_leaves_the_log_unchanged(reg: nbr.Registry, read: str) -> None:
    head = reg.refresh().head
    READS[read](reg)
    assert nbr.open_registry(reg.uri, create=False).head == head


def test_the_dashboard_refresh_writes_nothing(reg: nbr.Registry) -> None:
    pytest.importorskip("ipywidgets")
    from nbregistry.notebook.panels import MonitoringDashboard

    head = reg.refresh().head
    panel = MonitoringDashboard(reg, "credit")
    panel.refresh_button.click()
    assert nbr.open_registry(reg.uri, create=False).head == head


def test_register_with_reference_data_freezes_the_baseline_in_the_same_event(
        reg: nbr.Registry) -> None:
    event = reg.history("credit", version=1).to_pylist()[0]
    assert event["action"] == "register"
    frozen = reg.frozen_baseline("credit", 1)
    assert frozen is not None and frozen["seq"] == event["seq"]
    assert "set_baseline" not in set(reg.history("credit").column("action").to_pylist())
    drift = reg.monitor("credit").drift()
    assert drift.baseline is not None and drift.baseline.frozen
    assert drift.baseline.seq == event["seq"]


def _registered_without_duckdb(tmp_path: Path) -> str:
    """A registry whose model v1 (with reference data) was registered by a process with the
    core install only: no DuckDB, so no baseline could be frozen then."""
    import subprocess
    import sys

    uri = str(tmp_path / "registry")
    code = (
        "import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'duckdb':\n"
        "            raise ImportError('blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pandas as pd, nbregistry as nbr\n"
        f"reg = nbr.open_registry({uri!r}, user='alice', create=True)\n"
        "X = pd.DataFrame({'x': [float(i % 7) for i in range(300)]})\n"
        "reg.register({'w': 1}, 'm', reference_data=X)\n"
        "assert reg.frozen_baseline('m', 1) is None\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    return uri


def test_without_a_frozen_baseline_questions_compute_one_and_say_so(tmp_path: Path) -> None:
    """A version registered by a core-only process (no DuckDB: nothing frozen) is asked
    about: the answer says its baseline was computed in memory, and nothing is recorded
    until a write freezes it."""
    uri = _registered_without_duckdb(tmp_path)
    reg = nbr.open_registry(uri, create=False)
    mon = reg.monitor("m")
    head = reg.head
    import pandas as pd

    frame = pd.DataFrame({"x": [float(i % 5) for i in range(300)]})
    from nbregistry.monitoring.capture import log_predictions
    from nbregistry.store import monitoring_tables

    # rows logged by another writer (a serving process with the core only): no freeze
    log_predictions(monitoring_tables(reg.ledger.location, "m").predictions, frame,
                    [0.5] * 300, schema=reg.get("m", 1).features, version=1)
    drift = mon.drift()
    assert drift.baseline is not None and not drift.baseline.frozen
    assert "computed in memory" in drift.baseline.describe()
    assert reg.refresh().head == head  # the question recorded nothing
    event = mon.freeze_baseline()
    assert event is not None and event.action == "set_baseline"
    assert mon.freeze_baseline() is None  # once
    assert mon.drift().baseline.frozen  # type: ignore[union-attr]
    assert reg.verify().ok


def test_the_first_logged_predictions_freeze_a_missing_baseline(tmp_path: Path) -> None:
    uri = _registered_without_duckdb(tmp_path)
    reg = nbr.open_registry(uri, create=False)
    import pandas as pd

    reg.monitor("m").log_predictions(pd.DataFrame({"x": [1.0, 2.0]}), [0.1, 0.9],
                                     ts=[datetime.now(UTC) - timedelta(minutes=1)] * 2)
    assert reg.frozen_baseline("m", 1) is not None
    assert reg.history("m").column("action").to_pylist()[-1] == "set_baseline"


def test_no_module_reaches_into_another_modules_private_members() -> None:
    """The ledger seam: a module uses ``._record``, ``._commit``, ``._current``,
    ``._blobs`` or ``._location`` only where it defines that name itself."""
    import re

    src = Path(nbr.__file__).parent
    names = r"_(?:record|commit|current|blobs|location)"
    used = re.compile(rf"\.({names})\b")
    defined = re.compile(rf"(?:def ({names})\(|self\.({names})\s*[:=,])")
    found = []
    for path in src.rglob("*.py"):
        text = path.read_text()
        own = {n for m in defined.finditer(text) for n in m.groups() if n}
        own |= {n for line in text.splitlines() if line.lstrip().startswith("self._")
                for n in re.findall(rf"self\.({names})\b", line.split("=")[0])}
        found += [f"{path.relative_to(src)}:{n}: {line.strip()}"
                  for n, line in enumerate(text.splitlines(), 1)
                  for m in used.finditer(line) if m.group(1) not in own]
    assert found == []
