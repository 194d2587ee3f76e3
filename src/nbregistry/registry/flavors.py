"""How model objects become bytes and back. joblib handles anything picklable; plug in more.

Loading a pickle runs code: nbregistry verifies the blob's sha256 against the audit log before
any flavor sees the bytes, so only content that was registered is ever unpickled.
"""

from __future__ import annotations

import io
from typing import Any, Protocol, runtime_checkable

from ..domain.errors import InvalidInputError, NotFoundError


@runtime_checkable
class Flavor(Protocol):
    name: str

    def matches(self, model: Any) -> bool: ...

    def dump(self, model: Any) -> bytes: ...

    def load(self, data: bytes) -> Any: ...


class JoblibFlavor:
    name = "joblib"

    def matches(self, model: Any) -> bool:
        return True

    def dump(self, model: Any) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()

    def load(self, data: bytes) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))


_FLAVORS: list[Flavor] = [JoblibFlavor()]


def register_flavor(flavor: Flavor) -> None:
    """Add a flavor; it is tried before the ones already known (joblib is the fallback)."""
    if not isinstance(flavor, Flavor):
        raise InvalidInputError("a flavor needs a name and matches/dump/load methods")
    _FLAVORS[:] = [f for f in _FLAVORS if f.name != flavor.name]
    _FLAVORS.insert(0, flavor)


def by_name(name: str) -> Flavor:
    for flavor in _FLAVORS:
        if flavor.name == name:
            return flavor
    raise NotFoundError(f"no flavor named {name!r} is registered in this process; "
                        f"call nbregistry.register_flavor(...) first (known: "
                        f"{', '.join(f.name for f in _FLAVORS)})")


def dump(model: Any, flavor: str | None = None) -> tuple[str, bytes]:
    chosen = by_name(flavor) if flavor else next(f for f in _FLAVORS if f.matches(model))
    try:
        return chosen.name, chosen.dump(model)
    except Exception as exc:
        raise InvalidInputError(
            f"cannot serialize the {type(model).__name__} with the {chosen.name!r} flavor: "
            f"{type(exc).__name__}: {exc}. Remove unpicklable members (open files, locks, "
            "lambdas) or register a flavor with nbregistry.register_flavor(...).",
            field="model") from exc
