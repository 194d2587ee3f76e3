"""One owner per rule: window lengths mean the same to the policy, check(), the questions and
DuckDB, and a hostile one is a typed error."""

from __future__ import annotations

from datetime import timedelta

import pytest

import nbregistry as nbr
from nbregistry.domain.monitoring_policy import parse_monitoring
from nbregistry.domain.timefmt import parse_window
from nbregistry.monitoring import duck


@pytest.mark.parametrize("text, length", [("30m", timedelta(minutes=30)),
                                          ("12h", timedelta(hours=12)),
                                          ("7d", timedelta(days=7)), ("2w", timedelta(days=14))])
def test_every_reader_agrees_on_a_window(text: str, length: timedelta) -> None:
    assert parse_window(text) == length
    errors: list[str] = []
    assert parse_monitoring({"window": text}, errors, []).window == text and errors == []
    count, unit = duck.interval(text).split("'")[1].split()
    assert timedelta(**{unit: int(count)}) == length


@pytest.mark.parametrize("text", ["99999999w", "0d", "7", "d", "1y", "-1d", 7, None, "1 w x"])
def test_a_bad_window_is_refused_the_same_way_everywhere(text: object) -> None:
    with pytest.raises(nbr.InvalidInputError, match="window"):
        parse_window(text)
    errors: list[str] = []
    parse_monitoring({"window": text}, errors, [])
    assert errors and "monitoring.window" in errors[0]
