"""The configured DuckDB connection and the SQL helpers the monitoring modules share."""

from __future__ import annotations

import pytest

from nbregistry import InvalidInputError
from nbregistry.monitoring import duck


def test_connect_is_utc_bounded_and_offline() -> None:
    con = duck.connect(threads=1, memory_limit="256MB")
    settings = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('TimeZone', 'threads', "
        "'autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
    assert settings == {"TimeZone": "UTC", "threads": "1",
                        "autoinstall_known_extensions": "false",
                        "autoload_known_extensions": "false"}
    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.startswith("244.1") or limit.startswith("256")
    with pytest.raises(InvalidInputError, match="memory_limit"):
        duck.connect(memory_limit="lots")


@pytest.mark.parametrize("window, sql", [
    ("1d", "INTERVAL '1 days'"), ("12h", "INTERVAL '12 hours'"),
    ("30m", "INTERVAL '30 minutes'"), ("2w", "INTERVAL '14 days'")])
def test_windows(window: str, sql: str) -> None:
    assert duck.interval(window) == sql


@pytest.mark.parametrize("window", ["0d", "1y", "d", "-1d"])
def test_bad_windows(window: str) -> None:
    with pytest.raises(InvalidInputError, match="positive length"):
        duck.interval(window)


def test_identifiers_and_numbers_are_safe() -> None:
    con = duck.connect(threads=1)
    name = 'we"ird col'
    assert con.execute(f"SELECT 1 AS {duck.quote(name)}").description[0][0] == name
    assert con.execute(f"SELECT {duck.number(-0.1)} + 1").fetchall()[0][0] == pytest.approx(0.9)
    with pytest.raises(InvalidInputError, match="non-finite"):
        duck.number(float("nan"))
