"""What monitoring needs from the rest of nbregistry, and nothing more.

Monitoring (``nbregistry.watch``) depends on these protocols, not on ``Registry``: the reads
it makes (a ``Catalog``: versions, policy, artifacts, frozen baselines, alerts), the writes
it makes (``MonitoringWrites``: each one a decision the registry takes against its freshest
state), and where its tables come from (a ``TableSource`` that hands out Delta snapshots).
A live registry provides all three; a report passes a view pinned to one head, no writes,
and a pinned source. This module imports nothing else from the package but the domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..domain.entities import Event, ModelVersion
from ..domain.policy import Policy

if TYPE_CHECKING:
    import pyarrow as pa

    from ..domain.monitoring_policy import MonitoringPolicy
    from ..store import Snapshot
    from .results import DriftResult, FairnessResult, PerformanceResult

TableKind = Literal["predictions", "outcomes", "metrics"]


class Catalog(Protocol):
    """The registry reads monitoring makes (a live ``Registry`` or a ``RegistryView``)."""

    user: str

    @property
    def uri(self) -> str: ...

    @property
    def policy(self) -> Policy: ...

    def get(self, name: str, version: int | str | None = None, *,
            stage: str | None = None) -> ModelVersion: ...

    def load(self, name: str, version: int | str | None = None, *, stage: str | None = None,
             trusted: bool | Sequence[str] = False) -> Any: ...

    def artifact(self, sha256: str) -> bytes: ...

    def frozen_baseline(self, name: str, version: int) -> dict[str, Any] | None: ...

    def alerts(self, name: str | None = None) -> list[Event]: ...

    def last_check(self, name: str) -> Event | None: ...


class MonitoringWrites(Protocol):
    """The events monitoring records. Each is decided against the freshest state inside the
    commit, so two processes racing cannot both act (the log's compare-and-swap decides)."""

    user: str

    def put_artifact(self, data: bytes) -> str: ...

    def freeze_baseline(self, name: str, version: int, sha256: str,
                        source: dict[str, Any]) -> Event | None: ...

    def seal(self, name: str, payload: dict[str, Any]) -> Event: ...

    def alert(self, name: str, version: int, payload: dict[str, Any]) -> Event: ...

    def open_alert(self, name: str, version: int, payload: dict[str, Any]
                   ) -> Event | None: ...

    def close_alert(self, name: str, version: int, payload: dict[str, Any]
                    ) -> Event | None: ...

    def request_retraining(self, name: str, version: int, *, reason: str,
                           alert_seq: int | None) -> Event: ...

    def roll_back(self, name: str, *, from_version: int, reason: str,
                  alert_seq: int) -> Event: ...


class Reads(Protocol):
    """The snapshots one question read: the first read of a table fixes its Delta version
    for the rest of the question, and ``versions`` says which were read."""

    versions: dict[str, int]

    def snapshot(self, kind: TableKind, start: datetime | None = None,
                 end: datetime | None = None) -> Snapshot: ...


class TableSource(Protocol):
    """Where a model's monitoring tables are read: ``reads()`` starts one question
    (``fetch=False``: an engine that reads the store itself needs no local copies)."""

    def reads(self, *, fetch: bool = True) -> Reads: ...

    def exists(self, kind: TableKind) -> bool: ...


class Questions(Protocol):
    """The questions a check and a replay ask of one model's monitoring (a ``Monitor``)."""

    name: str
    catalog: Catalog
    source: TableSource

    @property
    def policy(self) -> MonitoringPolicy: ...

    def version(self, version: int | str | None = None) -> ModelVersion: ...

    def connection(self) -> Any: ...

    def task(self, version: int | str | None = None) -> Literal["classification",
                                                                "regression"]: ...

    def baseline(self, version: int | str | None = None) -> dict[str, Any]: ...

    def rows(self, start: Any = None, end: Any = None, *, version: int | str | None = None,
             matured: bool = False, limit: int | None = None) -> pa.Table: ...

    def last_read(self) -> dict[str, int]: ...

    def drift(self, start: Any = None, end: Any = None,
              version: int | str | None = None) -> DriftResult: ...

    def performance(self, window: str | None = "1d", *, by: Sequence[str] | None = None,
                    start: Any = None, end: Any = None,
                    version: int | str | None = None) -> PerformanceResult: ...

    def fairness(self, group: str, favorable: Any = 1, *, reference: Any = None,
                 start: Any = None, end: Any = None, version: int | str | None = None,
                 outcome: str = "label", error_rates: bool = True) -> FairnessResult: ...

    def sketched_performance(self, start: datetime, end: datetime, *, version: int
                             ) -> tuple[dict[str, Any], float] | None: ...


class MonitorParts:
    """What the halves of ``Monitor`` (``Capturing``, ``Sketching``) need of it: declared
    once here, defined by ``Monitor``."""

    def version(self, version: int | str | None = None) -> ModelVersion:
        raise NotImplementedError

    def _writer(self, what: str) -> MonitoringWrites:
        raise NotImplementedError

    def _freeze_quietly(self, mv: ModelVersion) -> None:
        raise NotImplementedError
