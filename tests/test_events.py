"""The declared event payloads: the yes/no pass readers use agrees with the full check."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest

from nbregistry.domain import events


def sample(hint: Any) -> Any:
    """A value of the declared type (a TypedDict with every field)."""
    hint = events._strip_required(hint)
    if hint is Any:
        return "anything"
    if isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__"):
        return {k: sample(v) for k, v in typing.get_type_hints(hint).items()}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return sample(args[0])
    if hint is type(None):
        return None
    base = origin or hint
    if base is list:
        return [sample(args[0])] if args else []
    if base is dict:
        return {"k": sample(args[-1])} if args else {}
    return {str: "s", int: 3, float: 0.5, bool: True}[base]


def variants(value: dict[str, Any]) -> list[Any]:
    """The payload, and each field dropped or given a value of every other kind."""
    out: list[Any] = [value, [], "text", None]
    for key in value:
        out.append({k: v for k, v in value.items() if k != key})
        for odd in (None, 1, 1.5, True, "x", [], {}, [1], {"k": 1}):
            out.append({**value, key: odd})
    return out


@pytest.mark.parametrize("action", sorted(events.SHAPES))
def test_the_quick_pass_agrees_with_the_full_check(action: str) -> None:
    shape = events.SHAPES[action]
    quick = events._build_pass(shape)
    for payload in variants(sample(shape)):
        full = events._problems(shape, payload, "payload", strict=False)
        assert quick(payload) == (not full), (action, payload, full)
        assert (events.read_problem(action, payload) is None) == (not full)
