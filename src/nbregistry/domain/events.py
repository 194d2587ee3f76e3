"""The declared shape of every event's payload, shared by the writers and the fold.

A registry is evidence kept for years and opened by older and newer versions of nbregistry
than the one that wrote it. So writes are strict (:func:`check_payload`: every required key,
no unknown key, the declared types) while reads are lenient (:func:`read_problem`: an extra
field is ignored, an unknown action is kept and reported as written by a newer nbregistry,
a malformed payload is skipped and reported, and none of them stops a registry opening).
"""

# No `from __future__ import annotations`: TypedDict reads NotRequired[...] at runtime.
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, NotRequired, TypedDict

from .errors import InvalidInputError

# Version of the event format (hash rule, column set, payload conventions), recorded in the
# genesis event. A reader seeing a higher number reports it and reads what it understands.
FORMAT_VERSION = 1

RequestStatus = Literal["open", "promoted", "rejected", "withdrawn", "stale"]


class CreateRegistry(TypedDict):
    format: int
    creator: str


class ReferenceRef(TypedDict):
    sha256: str
    rows: int
    has_target: bool
    has_score: NotRequired[bool]  # the model's scores on the rows, for score drift
    baseline: NotRequired[str]    # the monitoring baseline built from them, frozen at register


class Register(TypedDict):
    sha256: str
    size: int
    flavor: str
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    description: str
    card: dict[str, Any]
    lineage: dict[str, Any]
    features: list[dict[str, str]]
    reference: NotRequired[ReferenceRef]


class SetAlias(TypedDict):
    alias: str
    previous: int | None


class DeleteAlias(TypedDict):
    alias: str


class SetPolicy(TypedDict):
    policy: dict[str, Any]


class RoleChange(TypedDict):
    user: str
    role: str


class RegisterKey(TypedDict):
    public_key: str
    fingerprint: str
    user: NotRequired[str]             # whose key (enrolled by an admin); default: the actor


class GateRecord(TypedDict):
    gate: str
    passed: bool
    detail: str
    evidence: dict[str, Any]


class Promotion(TypedDict):
    replaces: int | None
    gates: list[GateRecord]


RequestPromotion = TypedDict("RequestPromotion", {
    "request_id": str, "to": str, "from": str, "comment": str, "replaces": int | None,
    "emergency": bool, "required": int, "promotion": NotRequired[Promotion]})


class Approve(TypedDict):
    request_id: str
    comment: str
    ratified: NotRequired[bool]
    promotion: NotRequired[Promotion]


class CloseRequest(TypedDict):
    request_id: str
    comment: str


class Comment(TypedDict):
    text: str
    ratifies: NotRequired[int]         # the seq of an automatic action a person ratifies


class Provenance(TypedDict):
    """Who ran a report, when, with what: shown in the report and recorded in its event."""

    by: str
    started: str                       # when the run started (UTC, ISO 8601)
    nbregistry: str                    # the version that ran it
    template: str
    template_sha256: str               # of the .ipynb that ran (a shipped or registered one)
    baseline: NotRequired[dict[str, Any] | None]  # the version's frozen monitoring baseline


class Rollback(TypedDict):
    stage: str
    from_version: int
    to_version: int
    reason: str
    automatic: NotRequired[bool]       # applied by monitoring policy, not by a person
    alert_seq: NotRequired[int]
    gates: NotRequired[list[GateRecord]]


class SetCard(TypedDict):
    card: dict[str, Any]


class FlagData(TypedDict):
    uri: str
    data_version: int
    reason: str
    affected: list[list[Any]]


class Report(TypedDict):
    template: str
    parameters: dict[str, Any]
    tables: dict[str, int]
    head: list[Any]
    outputs: dict[str, str]
    sha256: str
    output_dir: str
    # Recorded since reports are provenance-checked (older events lack them and do not
    # count as evidence): the template's sha256, who/when/which nbregistry, the rendering.
    template_sha256: NotRequired[str]
    provenance: NotRequired[Provenance]
    show_code: NotRequired[bool]


class Deploy(TypedDict):
    target: str
    stage: str
    sha256: str
    approved_sha256: str
    matches: bool
    request_id: str | None
    comment: str


class SetBaseline(TypedDict):
    sha256: str
    source: dict[str, Any]


class Alert(TypedDict):
    kind: str        # drift | performance | concept_drift | fairness | data_quality
    metric: str
    feature: str | None
    value: float
    status: str
    band: dict[str, Any]
    window: list[str]
    action: str | None
    more: NotRequired[int]             # breaches of the same check not recorded as events
    episode: NotRequired[str]          # the watcher's: "open" (status alert), "close" (ok)


class CheckSummary(TypedDict):
    window: list[str]
    version: int | None
    metrics: int
    alerts: int


class Seal(TypedDict):
    tables: dict[str, dict[str, Any]]
    check: NotRequired[CheckSummary]  # the check() that sealed, when one did


class Snapshot(TypedDict):
    sha256: str         # the blob (compressed canonical JSON of the folded state)
    state_sha256: str   # the canonical JSON itself: what verify recomputes from the fold
    seq: int            # the state is the fold of events 1..seq
    hash: str           # and event seq's hash


class TamperAlarm(TypedDict):
    key: str            # the witness record that was taken
    seq: int            # the seq it claims
    hash: str           # the hash it claims
    actor: str | None   # who it claims published it
    ours: str           # the hash of event seq in this log


class RetrainRequested(TypedDict):
    reason: str
    alert_seq: int | None


SHAPES: dict[str, type] = {
    "create_registry": CreateRegistry,
    "register": Register,
    "set_alias": SetAlias,
    "delete_alias": DeleteAlias,
    "set_policy": SetPolicy,
    "grant_role": RoleChange,
    "revoke_role": RoleChange,
    "register_key": RegisterKey,
    "request_promotion": RequestPromotion,
    "approve": Approve,
    "reject": CloseRequest,
    "withdraw": CloseRequest,
    "comment": Comment,
    "rollback": Rollback,
    "set_card": SetCard,
    "flag_data": FlagData,
    "report": Report,
    "deploy": Deploy,
    "set_baseline": SetBaseline,
    "alert": Alert,
    "seal": Seal,
    "retrain_requested": RetrainRequested,
    "snapshot": Snapshot,
    "tamper_alarm": TamperAlarm,
}


def check_payload(action: str, payload: dict[str, Any]) -> None:
    """Strict check for writers: the declared keys, no others, the declared types. Any event
    may also carry its actor's ``signature`` and ``key_fingerprint``."""
    shape = SHAPES.get(action)
    if shape is None:
        raise InvalidInputError(f"unknown event action {action!r}; declare its payload shape "
                                "in nbregistry.domain.events.SHAPES", field="action")
    unsigned = {k: v for k, v in payload.items() if k not in ("signature", "key_fingerprint")}
    problems = _problems(shape, unsigned, "payload", strict=True)
    if problems:
        raise InvalidInputError(f"the {action!r} event payload does not match its declared "
                                "shape: " + "; ".join(problems), field="payload")


def read_problem(action: str, payload: Any) -> str | None:
    """Lenient check for readers: None when the fold can apply it (extra keys are fine)."""
    shape = SHAPES.get(action)
    if shape is None:
        return None
    passes = _PASSES.get(shape) or _PASSES.setdefault(shape, _build_pass(shape))
    if passes(payload):
        return None  # the common case, without building a single message
    problems = _problems(shape, payload, "payload", strict=False)
    return "; ".join(problems) or None


Checker = Callable[[Any, str, bool], list[str]]
_COMPILED: dict[Any, Checker] = {}


def _problems(shape: type, value: Any, where: str, *, strict: bool) -> list[str]:
    return _compile(shape)(value, where, strict)


def _compile(hint: Any) -> Checker:
    """A checker for ``hint``, built once: the fold checks every event of the log on open,
    so walking typing's introspection per event would dominate opening a registry."""
    found = _COMPILED.get(hint)
    if found is None:
        found = _COMPILED[hint] = _build_checker(hint)
    return found


def _ok(value: Any, where: str, strict: bool) -> list[str]:
    return []


def _build_checker(hint: Any) -> Checker:
    if hint is Any:
        return _ok
    if isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__"):
        return _typed_dict(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_compile(o) for o in args]

        def union(value: Any, where: str, strict: bool) -> list[str]:
            if any(not option(value, where, strict) for option in options):
                return []
            return [f"{where} has type {type(value).__name__}, expected {_name(hint)}"]
        return union
    if hint is type(None):
        return lambda v, w, s: [] if v is None else [f"{w} must be null"]
    base = origin or hint
    accepts: Callable[[Any], bool] = {
        float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool)}.get(
        base, lambda v: isinstance(v, base))
    item = _compile(args[-1]) if args and args[-1] is not Any else None

    def simple(value: Any, where: str, strict: bool) -> list[str]:
        if not accepts(value):
            return [f"{where} has type {type(value).__name__}, expected {_name(hint)}"]
        if item is None:
            return []
        if base is list:
            return [p for i, v in enumerate(value) for p in item(v, f"{where}[{i}]", strict)]
        return [p for k, v in value.items() for p in item(v, f"{where}.{k}", strict)]
    return simple


def _typed_dict(shape: type) -> Checker:
    fields = {k: _compile(_strip_required(v)) for k, v in typing.get_type_hints(shape).items()}
    required: frozenset[str] = getattr(shape, "__required_keys__", frozenset())

    def check(value: Any, where: str, strict: bool) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where} must be an object, got {type(value).__name__}"]
        problems = [f"{where}.{key} is missing" for key in required if key not in value]
        if strict:
            problems += [f"{where}.{key} is not a declared field" for key in value
                         if key not in fields]
        for key, field_check in fields.items():
            if key in value:
                problems += field_check(value[key], f"{where}.{key}", strict)
        return problems
    return check


_PASSES: dict[Any, Callable[[Any], bool]] = {}


def _build_pass(hint: Any) -> Callable[[Any], bool]:
    """The lenient check as a yes/no, for reading many events: the checkers above build a
    path string per field, which was a third of what verify spent per event."""
    if hint is Any:
        return lambda value: True
    if isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__"):
        fields = {k: _build_pass(_strip_required(v))
                  for k, v in typing.get_type_hints(hint).items()}
        required = tuple(getattr(hint, "__required_keys__", frozenset()))

        def record(value: Any) -> bool:  # loops, not all(...): verify runs this per event
            if not isinstance(value, dict):
                return False
            for key in required:
                if key not in value:
                    return False
            for key, item in value.items():
                ok = fields.get(key)
                if ok is not None and not ok(item):
                    return False
            return True
        return record
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_build_pass(o) for o in args]

        if len(options) == 2:  # X | None, nearly always: no generator per call
            first, second = options
            return lambda value: first(value) or second(value)
        return lambda value: any(option(value) for option in options)
    if hint is type(None):
        return lambda value: value is None
    base = origin or hint
    if base is float:
        return lambda value: isinstance(value, int | float) and not isinstance(value, bool)
    if base is int:
        return lambda value: isinstance(value, int) and not isinstance(value, bool)
    if not args or args[-1] is Any:
        return lambda value: isinstance(value, base)
    item = _build_pass(args[-1])
    if base is list:
        return lambda value: isinstance(value, list) and all(item(v) for v in value)
    return lambda value: isinstance(value, base) and all(item(v) for v in value.values())


def _strip_required(hint: Any) -> Any:
    while typing.get_origin(hint) in (NotRequired, typing.Required):
        hint = typing.get_args(hint)[0]
    return hint


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
