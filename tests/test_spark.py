"""The heavy pass on Spark through Spark Connect gives the figures DuckDB gives: every
question and a check, against a real Spark Connect server (Sail, started here)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from monitored import monitored

pytest.importorskip("pysail")
pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark_url() -> Iterator[str]:
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    url = f"sc://{host}:{port}"
    yield url
    from pyspark.sql import SparkSession

    SparkSession.builder.remote(url).getOrCreate().stop()  # before the server, or exit hangs
    server.stop()


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> nbr.Registry:
    return monitored(str(tmp_path_factory.mktemp("spark") / "registry"), days=5,
                     rows_per_day=500)


def close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative (each engine sums in its own order)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


QUESTIONS = {
    "drift": lambda m: m.drift().to_pylist(),
    "drift of a day": lambda m: m.drift(datetime.now(UTC) - timedelta(days=2),
                                        datetime.now(UTC) - timedelta(days=1)).to_pylist(),
    "drift_windows": lambda m: m.drift_windows("1d").to_pylist(),
    "drift_windows 12h": lambda m: m.drift_windows("12h").to_pylist(),
    "performance": lambda m: m.performance(None).to_pylist(),
    "performance by day": lambda m: m.performance("1d").to_pylist(),
    "performance by version": lambda m: m.performance("7d", by=["version"]).to_pylist(),
    "fairness": lambda m: m.fairness("sex", 0).to_pylist(),
    "rows": lambda m: m.rows(matured=True).to_pylist(),
}


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_spark_answers_as_duckdb_does(reg: nbr.Registry, spark_url: str, question: str
                                      ) -> None:
    ask = QUESTIONS[question]
    local = reg.monitor("credit")
    remote = reg.monitor("credit", engine=spark_url)
    assert remote.engine is not None
    assert close(ask(remote), ask(local))


def test_a_check_on_spark_measures_what_duckdb_measures(reg: nbr.Registry, spark_url: str
                                                        ) -> None:
    from nbregistry.watch import checks

    now = datetime.now(UTC)
    figures = {}
    for engine in (None, spark_url):
        mon = reg.monitor("credit", engine=engine)
        measured, _ = checks.measure(mon, 1, now - timedelta(days=7), now)
        figures[engine] = [(f.kind, f.feature, f.metric, f.value, f.status) for f in measured]
    assert close(figures[spark_url], figures[None])
    result = reg.monitor("credit", engine=spark_url).check(window="1d")
    assert result.seal is not None and any(e.payload["feature"] == "debt_ratio"
                                           for e in result.alerts)  # the shifted last day


def test_the_engine_is_named_by_url_session_or_environment(
        reg: nbr.Registry, spark_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(spark_url).getOrCreate()
    assert reg.monitor("credit", engine=session).engine is not None
    monkeypatch.setenv("NBREGISTRY_ENGINE", spark_url)
    assert reg.monitor("credit").engine is not None
    assert reg.monitor("credit", engine="duckdb").engine is None
    with pytest.raises(nbr.InvalidInputError, match="sc://"):
        reg.monitor("credit", engine="spark://nope")


def test_a_table_before_its_first_write_reads_empty(tmp_path: Path, spark_url: str) -> None:
    import pandas as pd

    reg = nbr.open_registry(str(tmp_path / "r"), user="alice", create=True)
    reg.register({"w": 1}, "m", reference_data=pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    mon = reg.monitor("m", engine=spark_url)
    assert mon.rows().num_rows == 0
    with pytest.raises(nbr.InvalidInputError, match="no predictions"):
        mon.drift()
