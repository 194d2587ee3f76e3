"""Read-only use-cases over one registry state: get, load, search, history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ..domain import validate
from ..domain.entities import ModelVersion
from ..domain.errors import NotFoundError, ReadOnlyError
from ..store import BlobStore, Location
from . import flavors, search
from .queries import GovernanceQueries
from .state import RegistryState

WRITES = frozenset({"register", "set_alias", "delete_alias", "request_promotion", "approve",
                    "reject", "withdraw", "rollback", "grant_role", "revoke_role", "set_policy",
                    "set_card", "flag_data", "comment", "register_key"})


class RegistryView(GovernanceQueries):
    """A registry as of one point of its log. ``as_of`` returns one of these; ``Registry``
    extends it with writes and keeps its state fresh."""

    def __init__(self, location: Location, state: RegistryState, user: str) -> None:
        self._location = location
        self._state = state
        self._blobs = BlobStore(location)
        self.user = user

    def __getattr__(self, attr: str) -> Any:
        if attr in WRITES:
            raise ReadOnlyError(f"{attr}() is not available on a read-only view of the past; "
                                "call it on the registry from open_registry()")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    @property
    def uri(self) -> str:
        return self._location.uri

    def _current(self) -> RegistryState:
        return self._state

    def __repr__(self) -> str:
        state = self._current()
        return (f"<{type(self).__name__} {self.uri} user={self.user!r} "
                f"models={len(state.models)} events={state.seq}>")

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last event: write it down to detect a truncated log later."""
        state = self._current()
        return state.seq, state.head_hash

    def models(self) -> list[str]:
        return sorted(self._current().models)

    def get(self, name: str, version: int | str | None = None, *,
            stage: str | None = None) -> ModelVersion:
        """``get("m", 3)``, ``get("m@champion")``, ``get("m", stage="production")``;
        ``get("m")`` is the latest version."""
        state = self._current()
        if isinstance(name, str) and "@" in name:
            model_name, alias = name.split("@", 1)
            model = state.model(validate.model_name(model_name))
            validate.alias_name(alias)
            if alias not in model.aliases:
                known = sorted(model.aliases)
                listed = ", ".join(known[:10]) + (f" … ({len(known)} in all)"
                                                  if len(known) > 10 else "")
                raise NotFoundError(
                    f"model {model_name!r} has no alias {alias!r} (aliases: "
                    f"{listed or 'none'}); set it with "
                    f"reg.set_alias({model_name!r}, {alias!r}, version)", model=model_name,
                    ref=alias)
            return model.view(model.aliases[alias])
        model = state.model(validate.model_name(name))
        if stage is not None:
            held = model.holder(stage)
            if held is None:
                raise NotFoundError(f"no version of {name!r} is in stage {stage!r}",
                                    model=name, ref=stage)
            return model.view(held)
        number = model.latest if version is None else validate.version_number(version)
        if number not in model.versions:
            raise NotFoundError(f"model {name!r} has no version {number} (versions 1.."
                                f"{model.latest})", model=name, ref=str(number))
        return model.view(number)

    def load(self, name: str, version: int | str | None = None, *,
             stage: str | None = None) -> Any:
        """The model object, after checking its bytes against the sha256 in the audit log."""
        mv = self.get(name, version, stage=stage)
        data = self._blobs.get(mv.sha256)
        return flavors.by_name(mv.flavor).load(data)

    def search(self, name: str | None = None, *, tags: Mapping[str, str] | None = None,
               stage: str | None = None, alias: str | None = None,
               min_metrics: Mapping[str, float] | None = None,
               max_metrics: Mapping[str, float] | None = None, created_by: str | None = None,
               status: str | None = None, metric: str | None = None, ascending: bool = False,
               limit: int | None = None) -> pa.Table:
        """Versions as an Arrow table, one row each, with ``metrics.*`` and ``params.*``
        columns. ``metric`` orders by that metric (best first unless ``ascending``);
        ``status="revalidation_required"`` finds versions trained on recalled data."""
        state = self._current()
        models = [state.model(validate.model_name(name))] if name else state.models.values()
        found = [mv for model in models for v in model.versions
                 if search.matches(mv := model.view(v), tags=tags, stage=stage, alias=alias,
                                   min_metrics=min_metrics, max_metrics=max_metrics,
                                   created_by=created_by, status=status)]
        ordered = search.order(found, metric, ascending)
        return search.versions_table(ordered[:limit] if limit is not None else ordered)

    def history(self, name: str | None = None, *, version: int | None = None) -> pa.Table:
        """Events, oldest first; for one model (and version) when given."""
        state = self._current()
        events = state.events
        if name is not None:
            state.model(validate.model_name(name))
            events = [e for e in events if e.model == name
                      and (version is None or e.version == version)]
        return search.events_table(events)
