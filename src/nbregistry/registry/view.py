"""The read side of a registry: one class shared by the live registry and ``as_of`` views."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa

from ..domain import validate
from ..domain.canonical import is_finite_number
from ..domain.entities import Event, GateResult, ModelVersion, PromotionRequest
from ..domain.errors import InvalidInputError, NotFoundError
from ..domain.policy import Policy
from ..store import BlobStore, Location
from . import flavors, gates, queries, search
from .state import RegistryState

RequestFilter = Literal["open", "promoted", "rejected", "withdrawn", "stale", "all"]
STATUSES: tuple[RequestFilter, ...] = ("open", "promoted", "rejected", "withdrawn", "stale",
                                       "all")


class RegistryView:
    """A registry as of one point of its log: every read, no write. ``as_of`` returns one;
    :class:`~nbregistry.Registry` extends it with the writes and keeps its state fresh."""

    def __init__(self, location: Location,
                 state: RegistryState | Callable[[], RegistryState], user: str, *,
                 blobs: BlobStore | None = None) -> None:
        self._location = location
        # A fixed state (a view of the past) or where the live registry keeps its own.
        self._current: Callable[[], RegistryState] = (
            state if callable(state) else lambda: state)
        self._blobs = blobs or BlobStore(location)
        self.user = user

    @property
    def uri(self) -> str:
        """Where the registry lives (a folder path or an object-store URI)."""
        return self._location.uri

    def __repr__(self) -> str:
        state = self._current()
        return (f"<{type(self).__name__} {self.uri} user={self.user!r} "
                f"models={len(state.models)} events={state.seq}>")

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last event: write it down to detect a truncated log later."""
        state = self._current()
        return state.seq, state.head_hash

    @property
    def policy(self) -> Policy:
        """The policy in force (at this view's point in time)."""
        return self._current().policy

    def models(self) -> list[str]:
        """Names of the registered models, sorted."""
        return sorted(self._current().models)

    def get(self, name: str, version: int | str | None = None, *,
            stage: str | None = None) -> ModelVersion:
        """One model version.

        Parameters
        ----------
        name : str
            The model name, or ``"name@alias"`` to resolve an alias.
        version : int, optional
            The version number; the latest when omitted (and no ``stage``).
        stage : str, optional
            The version that holds this stage, e.g. ``"production"``.

        Examples
        --------
        ``get("m", 3)``, ``get("m@champion")``, ``get("m", stage="production")``.
        """
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
        model.require(number)
        return model.view(number)

    def load(self, name: str, version: int | str | None = None, *,
             stage: str | None = None, trusted: bool | Sequence[str] = False) -> Any:
        """The model object, after checking its bytes against the sha256 in the audit log.

        Parameters
        ----------
        name, version, stage
            As for :meth:`get`.
        trusted : bool or list of str
            scikit-learn models (the ``skops`` flavor) load without running code from the
            artifact; a list names extra types you reviewed (e.g.
            ``["sklearn.tree._tree.Tree"]``). Pickle-based flavors (``joblib``) run code
            chosen by the registrant and load only with ``trusted=True`` or when the policy
            trusts the registrant (``[loading]`` section).
        """
        mv = self.get(name, version, stage=stage)
        data = self._blobs.get(mv.sha256)
        return flavors.load(mv, data, trusted=trusted, state=self._current())

    def search(self, name: str | None = None, *, tags: Mapping[str, str] | None = None,
               stage: str | None = None, alias: str | None = None,
               min_metrics: Mapping[str, float] | None = None,
               max_metrics: Mapping[str, float] | None = None, created_by: str | None = None,
               status: str | None = None, metric: str | None = None, ascending: bool = False,
               limit: int | None = None) -> pa.Table:
        """Versions as an Arrow table, one row each, with ``metrics.*`` and ``params.*``
        columns (``.to_pandas()`` for pandas).

        Parameters
        ----------
        name : str, optional
            Only this model's versions.
        tags, stage, alias, created_by : optional
            Exact filters.
        min_metrics, max_metrics : dict, optional
            Bounds such as ``{"auc": 0.75}``; a version without the metric is excluded.
        status : str, optional
            ``"revalidation_required"`` finds versions trained on recalled data.
        metric : str, optional
            Order by this metric, best (highest) first unless ``ascending``.
        limit : int, optional
            At most this many rows.
        """
        state = self._current()
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise InvalidInputError(f"limit must be an integer >= 0, got {limit!r}",
                                    field="limit", value=limit)
        bounds = {**(min_metrics or {}), **(max_metrics or {})}
        if not all(is_finite_number(v) for v in bounds.values()):
            raise InvalidInputError("metric bounds must be finite numbers", field="metrics")
        models = [state.model(validate.model_name(name))] if name else state.models.values()
        return search.find(models, tags=tags, stage=stage, alias=alias, min_metrics=min_metrics,
                           max_metrics=max_metrics, created_by=created_by, status=status,
                           metric=metric, ascending=ascending, limit=limit)

    def artifact(self, sha256: str) -> bytes:
        """The bytes of an artifact (a model, frozen reference data, a baseline, a report
        output), checked against its sha256 before they are returned."""
        return self._blobs.get(validate.sha256(sha256))

    def event(self, seq: int) -> Event:
        """The event at ``seq`` (1 is the registry's creation)."""
        events = self._current().all_events()
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= len(events):
            raise NotFoundError(f"{self.uri} has no event {seq!r} (events 1..{len(events)})",
                                ref=str(seq))
        return events[seq - 1]

    def events(self, name: str | None = None) -> list[Event]:
        """The events up to this view's head as ``Event`` objects, oldest first (of one
        model when given); ``history`` gives them as a table."""
        events = self._current().all_events()
        return list(events) if name is None else [e for e in events if e.model == name]

    def alerts(self, name: str | None = None) -> list[Event]:
        """Monitoring ``alert`` events, oldest first (of one model when given)."""
        return [e for e in self._current().alerts if name is None or e.model == name]

    def last_check(self, name: str) -> Event | None:
        """The ``seal`` event of the model's latest recorded ``check()``, if any."""
        return self._current().checks.get(name)

    def frozen_baseline(self, name: str, version: int) -> dict[str, Any] | None:
        """The recorded baseline of a version (``sha256`` of its blob, ``source``, ``seq``),
        or None while none was frozen."""
        found = self._current().baselines.get((name, version))
        return None if found is None else dict(found)

    def history(self, name: str | None = None, *, version: int | None = None) -> pa.Table:
        """Events as an Arrow table (seq, ts, actor, action, model, version, payload, hash),
        oldest first; for one model (and version) when given."""
        state = self._current()
        events = state.all_events()
        if name is not None:
            state.model(validate.model_name(name))
            events = [e for e in events if e.model == name
                      and (version is None or e.version == version)]
        return search.events_table(events)

    # -- governance questions -------------------------------------------------------------
    def roles(self) -> dict[str, list[str]]:
        """Who holds which roles."""
        return {u: sorted(r) for u, r in sorted(self._current().roles.items()) if r}

    def check_gates(self, name: str, version: int | str, to: str) -> list[GateResult]:
        """Every gate of stage ``to`` evaluated for this version, pass or fail, with evidence."""
        state = self._current()
        model = state.model(validate.model_name(name))
        number = validate.version_number(version)
        state.policy.check_stage(to)
        model.require(number)
        return gates.evaluate(state, model, number, to)

    def requirements(self, name: str, version: int | str, to: str) -> list[GateResult]:
        """The gates plus the approval quorum (who still has to sign off): the whole
        checklist a reviewer sees."""
        number = validate.version_number(version)
        return [*self.check_gates(name, number, to),
                queries.approvals(self._current(), name, number, to)]

    def requests(self, name: str | None = None, *, status: RequestFilter = "open"
                 ) -> list[PromotionRequest]:
        """Promotion requests, oldest first; ``status="all"`` for every one."""
        if status not in STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(STATUSES)}",
                                    field="status", value=status)
        state = self._current()
        if name is not None:
            state.model(validate.model_name(name))
        return [r for r in state.requests.values()
                if (name is None or r.model == name) and status in ("all", r.status)]

    def stages(self, name: str) -> dict[str, list[int]]:
        """Which versions are in each stage (exclusive stages hold at most one)."""
        model = self._current().model(validate.model_name(name))
        out: dict[str, list[int]] = {}
        for version in sorted(model.versions):
            out.setdefault(model.view(version).stage, []).append(version)
        return out

    def overdue(self, *, now: datetime | str | None = None) -> pa.Table:
        """Versions whose approval has expired (approval_ttl_days) or whose emergency
        promotion was not ratified within its window (as of ``now``, default: now)."""
        return queries.overdue(self._current(), now)

    def deployments(self, name: str | None = None) -> pa.Table:
        """Recorded deployments (``record_deployment``), oldest first."""
        state = self._current()
        if name is not None:
            state.model(validate.model_name(name))
        return search.events_table([e for e in state.deployments
                                    if name is None or e.model == name])
