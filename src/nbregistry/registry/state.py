"""Registry state as a fold over the event log, checked link by link as it is folded."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..domain.canonical import GENESIS_HASH
from ..domain.entities import Event, ModelVersion, Problem, PromotionRequest
from ..domain.errors import NotFoundError
from ..domain.policy import DEFAULT_POLICY_TOML, Policy, parse_policy

DEFAULT_STAGE = "development"
Loader = Callable[[list[int]], dict[int, Event]]  # register events by seq


class Versions(MutableMapping[int, ModelVersion]):
    """A model's versions. After opening from a state snapshot only each version's
    register-event seq is known; its record is read from the log on first use (a batch per
    call), so resolving an alias does not load 100,000 versions."""

    def __init__(self, name: str, loader: Loader | None = None) -> None:
        self.name, self.loader = name, loader
        self.seqs: dict[int, int] = {}                      # version -> register seq
        self.cards: dict[int, dict[str, Any]] = {}          # version -> set_card fields
        self._loaded: dict[int, ModelVersion] = {}

    def __getitem__(self, number: int) -> ModelVersion:
        found = self._loaded.get(number)
        if found is None:
            if number not in self.seqs:
                raise KeyError(number)
            self._load([number])
            found = self._loaded[number]
        return found

    def __setitem__(self, number: int, mv: ModelVersion) -> None:
        self._loaded[number] = mv

    def __delitem__(self, number: int) -> None:
        raise TypeError("versions are never deleted")

    def __contains__(self, number: object) -> bool:
        return number in self.seqs

    def __iter__(self) -> Iterator[int]:
        return iter(self.seqs)

    def __len__(self) -> int:
        return len(self.seqs)

    def loaded(self) -> dict[int, ModelVersion]:
        """The records read so far (immutable: another state of the same log may share
        them)."""
        return dict(self._loaded)

    def preload(self, records: dict[int, ModelVersion]) -> None:
        self._loaded.update(records)

    def values(self) -> Any:
        self._load([v for v in self.seqs if v not in self._loaded])
        return [self._loaded[v] for v in self.seqs]

    def items(self) -> Any:
        return list(zip(self.seqs, self.values(), strict=True))

    def _load(self, numbers: list[int]) -> None:
        if not numbers:
            return
        if self.loader is None:
            raise KeyError(numbers[0])
        events = self.loader([self.seqs[v] for v in numbers])
        for number in numbers:
            self._loaded[number] = record(events[self.seqs[number]], self.cards.get(number))


def record(event: Event, card: dict[str, Any] | None = None) -> ModelVersion:
    """A version as its register event recorded it (plus later model-card fields)."""
    assert event.model is not None and event.version is not None
    p = event.payload
    return ModelVersion(
        name=event.model, version=event.version, sha256=p["sha256"], size=p["size"],
        flavor=p["flavor"], created_at=event.ts, created_by=event.actor,
        description=p["description"], params=p["params"], metrics=p["metrics"],
        tags=p["tags"], lineage=p["lineage"], card={**p["card"], **(card or {})},
        features=tuple(p["features"]), reference=p.get("reference"))


@dataclass
class ModelState:
    name: str
    created_at: datetime
    created_by: str
    versions: Versions = field(default_factory=lambda: Versions(""))
    latest: int = 0
    aliases: dict[str, int] = field(default_factory=dict)
    stage_of: dict[int, str] = field(default_factory=dict)
    status_of: dict[int, dict[str, Any]] = field(default_factory=dict)
    stage_stack: dict[str, list[int]] = field(default_factory=dict)
    _aliases_of: dict[int, set[str]] = field(default_factory=dict, repr=False)
    _views: dict[int, ModelVersion] = field(default_factory=dict, repr=False)
    _table: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.versions.name = self.name

    def view(self, version: int) -> ModelVersion:
        """The version with its current stage, aliases and status (cached until they change)."""
        cached = self._views.get(version)
        if cached is None:
            cached = self._views[version] = dataclasses.replace(
                self.versions[version], stage=self.stage_of.get(version, DEFAULT_STAGE),
                aliases=tuple(sorted(self._aliases_of.get(version, ()))),
                status=dict(self.status_of.get(version, {})))
        return cached

    def changed(self, *versions: int | None) -> None:
        self._table = None
        for version in versions:
            if version is not None:
                self._views.pop(version, None)

    def table(self, build: Callable[[list[ModelVersion]], Any]) -> Any:
        """Every version (as ``view`` gives it, in version order) made into a table by
        ``build``, kept until a version changes or is added (``changed``)."""
        if self._table is None:
            self._table = build([self.view(v) for v in sorted(self.versions)])
        return self._table

    def set_alias(self, alias: str, version: int) -> None:
        previous = self.aliases.get(alias)
        if previous is not None:
            self._aliases_of[previous].discard(alias)
        self.aliases[alias] = version
        self._aliases_of.setdefault(version, set()).add(alias)
        self.changed(previous, version)

    def delete_alias(self, alias: str) -> None:
        previous = self.aliases.pop(alias, None)
        if previous is not None:
            self._aliases_of[previous].discard(alias)
            self.changed(previous)

    def require(self, number: int) -> ModelVersion:
        """The version as registered, or the one "no such version" error."""
        if number not in self.versions:
            span = f"versions 1..{self.latest}" if self.versions else "no versions yet"
            raise NotFoundError(f"model {self.name!r} has no version {number} ({span})",
                                model=self.name, ref=str(number))
        return self.versions[number]

    def holder(self, stage: str) -> int | None:
        held = [v for v, s in self.stage_of.items() if s == stage]
        return max(held) if held else None


@functools.cache
def default_policy() -> Policy:
    import tomllib

    return parse_policy(tomllib.loads(DEFAULT_POLICY_TOML))


@dataclass
class RegistryState:
    seq: int = 0
    head_hash: str = GENESIS_HASH
    delta_version: int = -1
    creator: str | None = None
    models: dict[str, ModelState] = field(default_factory=dict)
    # The events folded by this process: all of them, or those after the state snapshot it
    # opened from (``history`` reads the log for the rest).
    events: list[Event] = field(default_factory=list)
    # verify's fold keeps neither the events nor the version records (only what a state
    # snapshot holds): memory bounded by the state, not the log, and a third faster
    lean: bool = False
    base_seq: int = 0
    registry_id: str = ""
    last_ts: datetime | None = None
    checks: dict[str, Event] = field(default_factory=dict)  # model -> its latest check's seal
    snapshots: list[Event] = field(default_factory=list)
    loader: Loader | None = None
    history: Callable[[], list[Event]] | None = None
    # Odd while an event is being applied: a copy taken meanwhile is refused (registry/warm)
    mutations: int = 0
    _before: list[Event] | None = field(default=None, repr=False)

    def all_events(self) -> list[Event]:
        """Every event up to this state's seq. Opened from a snapshot, the events before it
        are read from the log once (they never change) and kept."""
        if self.base_seq == 0 or self.history is None:
            return self.events
        if self._before is None:
            self._before = [e for e in self.history() if e.seq <= self.base_seq]
        return [*self._before, *self.events]
    roles: dict[str, set[str]] = field(default_factory=dict)
    policy: Policy = field(default_factory=default_policy)
    requests: dict[str, PromotionRequest] = field(default_factory=dict)
    keys: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    flagged_data: dict[tuple[str, int], str] = field(default_factory=dict)
    reports: dict[tuple[str, int], dict[str, dict[str, Any]]] = field(default_factory=dict)
    deployments: list[Event] = field(default_factory=list)
    alerts: list[Event] = field(default_factory=list)
    seals: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # table: seq, seal
    baselines: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    format: int = 0
    # What the fold could not use: events of a newer writer (notices) and malformed ones.
    notices: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)

    def has_role(self, user: str, roles: Iterable[str]) -> bool:
        return bool(self.roles.get(user, set()) & set(roles))

    def model(self, name: str) -> ModelState:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)[:10]) or "none yet"
            raise NotFoundError(f"no model named {name!r} (registered models: {known}); "
                                "register it first with reg.register(model, name=...)",
                                model=name) from None

    def next_version(self, name: str) -> int:
        state = self.models.get(name)
        return 1 if state is None else state.latest + 1
