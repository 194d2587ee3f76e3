"""The events monitoring records (``watch.ports.MonitoringWrites``), each decided against the
freshest state inside the ledger's commit: a race between two checks is settled by the log,
not by whoever read first."""

from __future__ import annotations

from typing import Any

from ..domain.entities import Event
from . import governance
from .ledger import Decision, Ledger
from .state import RegistryState


class MonitoringEvents:
    """Monitoring's writes through the registry's ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.user = ledger.user

    def put_artifact(self, data: bytes) -> str:
        return self.ledger.blobs.put(data)

    def freeze_baseline(self, name: str, version: int, sha256: str,
                        source: dict[str, Any]) -> Event | None:
        """Record the version's baseline; None when another process froze it first (the
        baseline is deterministic, so theirs has the same bytes)."""
        def build(state: RegistryState) -> Decision | None:
            state.model(name).require(version)
            if (name, version) in state.baselines:
                return None
            return version, {"sha256": sha256, "source": source}

        return self.ledger.commit("set_baseline", name, build)

    def seal(self, name: str, payload: dict[str, Any]) -> Event:
        return self.ledger.record("seal", name, lambda state: (None, payload))

    def alert(self, name: str, version: int, payload: dict[str, Any]) -> Event:
        def build(state: RegistryState) -> Decision:
            state.model(name).require(version)
            return version, payload

        return self.ledger.record("alert", name, build)

    def open_alert(self, name: str, version: int, payload: dict[str, Any]) -> Event | None:
        """An alert episode opens, unless it is open already (another watcher, or this
        one before a restart, recorded it): decided in the commit, so never twice."""
        def build(state: RegistryState) -> Decision | None:
            state.model(name).require(version)
            return None if _is_open(state, name, payload) else (version, payload)

        return self.ledger.commit("alert", name, build)

    def close_alert(self, name: str, version: int, payload: dict[str, Any]) -> Event | None:
        """An open alert episode closes (its figure left the alert band); None when it was
        not open."""
        def build(state: RegistryState) -> Decision | None:
            state.model(name).require(version)
            return (version, payload) if _is_open(state, name, payload) else None

        return self.ledger.commit("alert", name, build)

    def request_retraining(self, name: str, version: int, *, reason: str,
                           alert_seq: int | None) -> Event:
        def build(state: RegistryState) -> Decision:
            state.model(name).require(version)
            return version, {"reason": reason, "alert_seq": alert_seq}

        return self.ledger.record("retrain_requested", name, build)

    def roll_back(self, name: str, *, from_version: int, reason: str,
                  alert_seq: int) -> Event:
        """Production back to its previous holder, refused unless production still holds
        ``from_version`` (a second check racing this one finds it already rolled back)."""
        def build(state: RegistryState) -> Decision:
            number, payload = governance.rollback(state, self.user, name=name,
                                                  stage="production", reason=reason,
                                                  automatic=True, from_version=from_version)
            return number, {**payload, "automatic": True, "alert_seq": alert_seq}

        return self.ledger.record("rollback", name, build)


def _is_open(state: RegistryState, name: str, payload: dict[str, Any]) -> bool:
    """Whether the newest alert about this figure (metric and feature) is still open."""
    for event in reversed(state.alerts):
        p = event.payload
        if event.model == name and (p.get("metric"), p.get("feature")) == (
                payload.get("metric"), payload.get("feature")):
            return bool(p.get("status") == "alert")
    return False
