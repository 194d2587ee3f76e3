"""The SQL in docs/monitoring.md runs through the engine it names (DuckDB through
``mon.sql``, Spark on the Delta tables read by Spark through Spark Connect) and answers what
``mon.drift``, ``mon.performance`` and ``mon.fairness`` answer."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
from monitored import monitored

DOC = Path(__file__).parents[1] / "docs" / "monitoring.md"
BLOCK = re.compile(r"```sql (duckdb|spark)\n(.*?)```", re.S)


def queries(engine: str) -> list[str]:
    found = [text for name, text in BLOCK.findall(DOC.read_text()) if name == engine]
    assert len(found) == 3, f"docs/monitoring.md should show 3 {engine} queries"
    return found


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> nbr.Registry:
    return monitored(str(tmp_path_factory.mktemp("sqldocs") / "registry"), days=9,
                     rows_per_day=300)


def expected(reg: nbr.Registry) -> list[Any]:
    mon = reg.monitor("credit")
    newest = max(mon.rows()["ts"].to_pylist())
    day = {r["feature"]: r["psi"] for r in mon.drift(newest - timedelta(days=1),
                                                     newest + timedelta(microseconds=1))}
    weeks = [(r["n"], r["accuracy"], r["brier"]) for r in mon.performance("7d")]
    air = [(r["group"], r["n"], r["air"]) for r in
           mon.fairness("sex", 0, reference="M").to_pylist()]
    return [day["debt_ratio"], weeks, air]


def answers(rows: list[tuple[Any, ...]], index: int) -> Any:
    if index == 0:
        return rows[0][0]
    if index == 1:
        return [(n, accuracy, brier) for _, n, accuracy, brier in rows]
    return [(sex, n, air) for sex, n, _, air in rows]


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_the_duckdb_queries_answer_as_the_monitor_does(reg: nbr.Registry) -> None:
    mon = reg.monitor("credit")
    want = expected(reg)
    for i, query in enumerate(queries("duckdb")):
        table = mon.sql(query, bins=mon.bins("debt_ratio"))
        rows = [tuple(r.values()) for r in table.to_pylist()]
        assert close(answers(rows, i), want[i]), (i, rows)


@pytest.fixture(scope="module")
def spark(reg: nbr.Registry) -> Iterator[Any]:
    pytest.importorskip("pysail")
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    session = SparkSession.builder.remote(f"sc://{host}:{port}").getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    yield session
    session.stop()
    server.stop()


@pytest.mark.slow
def test_the_spark_queries_answer_as_the_monitor_does(reg: nbr.Registry, spark: Any) -> None:
    root = Path(reg.uri) / "monitoring" / "credit"
    for table in ("predictions", "outcomes"):
        spark.read.format("delta").load(str(root / table)).createOrReplaceTempView(table)
    bins = reg.monitor("credit").bins("debt_ratio").to_pandas()
    spark.createDataFrame(bins).createOrReplaceTempView("bins")
    want = expected(reg)
    for i, query in enumerate(queries("spark")):
        rows = [tuple(r) for r in spark.sql(query).collect()]
        assert close(answers(rows, i), want[i]), (i, rows)
