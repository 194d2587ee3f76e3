"""How model objects become bytes and back, and what loading them may run.

The sha256 check in ``load`` proves the bytes are the ones registered, not that they are
safe to deserialize. So:

- ``skops`` (scikit-learn models, the default when skops is installed) loads without running
  code from the artifact: its loader audits every type and refuses the ones not known to be
  safe; reviewed types can be allowed per call or in the policy (``[loading] trusted_types``).
- ``joblib`` (anything picklable, the fallback) runs code chosen by whoever registered the
  model. It loads only when the caller opts in (``trusted=True``) or the policy trusts the
  registrant (``[loading] trusted_registrants``) and the register event is signed with the
  registrant's enrolled key: the name on an event is only a claim.
- ``mlflow`` (a model directory imported from MLflow, see ``mlflow_model``) loads through
  MLflow's own loader, which unpickles: the same rule as ``joblib``.
- a flavor you register is treated like ``joblib`` unless it declares ``safe = True``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..domain.entities import ModelVersion
from ..domain.errors import InvalidInputError, NotFoundError, PolicyViolationError

if TYPE_CHECKING:  # the Flavor port stays free of the registry's internals at run time
    from .state import RegistryState
from .mlflow_model import MlflowFlavor


@runtime_checkable
class Flavor(Protocol):
    name: str

    def matches(self, model: Any) -> bool: ...

    def dump(self, model: Any) -> bytes: ...

    def load(self, data: bytes) -> Any: ...


class JoblibFlavor:
    name = "joblib"
    safe = False

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


class SkopsFlavor:
    """scikit-learn estimators via skops, whose loader audits types instead of unpickling."""

    name = "skops"
    safe = True

    def matches(self, model: Any) -> bool:
        module = type(model).__module__
        if not module.startswith("sklearn."):
            return False
        try:
            import skops.io  # noqa: F401
        except ImportError:
            return False
        return True

    def dump(self, model: Any) -> bytes:
        import skops.io

        return bytes(skops.io.dumps(model))

    def load(self, data: bytes, trusted: Sequence[str] = ()) -> Any:
        import skops.io

        return skops.io.loads(data, trusted=list(trusted) or None)

    def untrusted(self, data: bytes) -> list[str]:
        import skops.io

        return list(skops.io.get_untrusted_types(data=data))


_FLAVORS: list[Flavor] = [SkopsFlavor(), MlflowFlavor(), JoblibFlavor()]


def register_flavor(flavor: Flavor) -> None:
    """Add a flavor; it is tried before the ones already known (joblib is the fallback).
    Declare ``safe = True`` only if its ``load`` runs no code taken from the bytes."""
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
    """(flavor name, bytes): the named flavor, else the first that matches and can."""
    candidates = [by_name(flavor)] if flavor else [f for f in _FLAVORS if f.matches(model)]
    failure: Exception | None = None
    for chosen in candidates:
        try:
            return chosen.name, chosen.dump(model)
        except Exception as exc:
            failure = failure or exc
    raise InvalidInputError(
        f"cannot serialize the {type(model).__name__}: {type(failure).__name__}: {failure}. "
        "Remove unpicklable members (open files, locks, lambdas) or register a flavor with "
        "nbregistry.register_flavor(...).", field="model") from failure


def load(mv: ModelVersion, data: bytes, *, trusted: bool | Sequence[str],
         state: RegistryState) -> Any:
    """Deserialize ``data`` (already hash-checked) only as far as the caller trusts it."""
    flavor = by_name(mv.flavor)
    policy = state.policy
    if isinstance(flavor, SkopsFlavor):
        found = flavor.untrusted(data)
        allowed = set(policy.loading.trusted_types) | (
            set(trusted) if not isinstance(trusted, bool) else set())
        refused = [t for t in found if t not in allowed]
        if refused and trusted is not True and not _registrant_trusted(mv, state):
            raise PolicyViolationError(
                f"{mv.name} v{mv.version} contains types the safe loader does not trust: "
                f"{', '.join(refused)}. Review them, then pass trusted={refused!r} to load "
                "(or list them in the policy's [loading] trusted_types)",
                rule="untrusted_artifact")
        return flavor.load(data, trusted=found)
    if trusted is True or getattr(flavor, "safe", False) or _registrant_trusted(mv, state):
        return flavor.load(data)
    raise PolicyViolationError(
        f"{mv.name} v{mv.version} is a {mv.flavor} artifact: loading it runs code chosen by "
        f"whoever registered it ({mv.created_by}). Load it only if you trust them: "
        "reg.load(..., trusted=True), or list them in the policy's [loading] "
        "trusted_registrants (their registrations must be signed)", rule="untrusted_artifact")


def _registrant_trusted(mv: ModelVersion, state: RegistryState) -> bool:
    """The policy trusts the registrant and the log proves the registrant registered ``mv``
    (a signature by their enrolled key); a trusted name on an unproven event is refused."""
    from .signing import registration_problem

    if mv.created_by not in state.policy.loading.trusted_registrants:
        return False
    problem = registration_problem(state, mv)
    if problem is not None:
        raise PolicyViolationError(
            f"the policy trusts {mv.created_by}'s artifacts, but {problem}. Enrol "
            f"{mv.created_by}'s key (an admin: reg.register_key(pem, user="
            f"{mv.created_by!r})) so their registrations are signed, or review "
            f"{mv.name} v{mv.version} and load it with trusted=True",
            rule="registrant_signature")
    return True
