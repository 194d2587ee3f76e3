"""Versions and events as Arrow tables (``.to_pandas()`` works on both)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from ..domain.entities import Event, ModelVersion
from ..domain.errors import InvalidInputError
from .state import ModelState

BASE_COLUMNS = ("name", "version", "stage", "aliases", "created_at", "created_by",
                "description", "sha256", "flavor", "tags")


def find(models: Iterable[ModelState], *, tags: Mapping[str, str] | None, stage: str | None,
         alias: str | None, min_metrics: Mapping[str, float] | None,
         max_metrics: Mapping[str, float] | None, created_by: str | None,
         status: str | None, metric: str | None, ascending: bool, limit: int | None
         ) -> pa.Table:
    """The matching versions as a table, by name and version unless ordered by ``metric``.
    Unfiltered, it is each model's own table (kept by the model until one of its versions
    changes) or their concatenation: nothing is done per version."""
    if not (tags or min_metrics or max_metrics or metric is not None
            or any(x is not None for x in (stage, alias, created_by, status))):
        table = combined([m.table(versions_table) for m in sorted(models, key=by_name)])
        return table if limit is None else table.slice(0, limit)
    found = [mv for model in models for v in model.versions
             if matches(mv := model.view(v), tags=tags, stage=stage, alias=alias,
                        min_metrics=min_metrics, max_metrics=max_metrics,
                        created_by=created_by, status=status)]
    ordered = order(found, metric, ascending)
    return versions_table(ordered[:limit] if limit is not None else ordered)


def by_name(model: ModelState) -> str:
    return model.name


def combined(tables: list[pa.Table]) -> pa.Table:
    """Models' tables as one, columns ordered as ``versions_table`` orders them (a metric
    or param one model lacks is null in its rows). The last answer is kept with the tables
    it was made of: the same tables (unchanged models) give it again."""
    tables = [t for t in tables if t.num_rows]
    if len(tables) <= 1:
        return tables[0] if tables else versions_table([])
    parts, found = _last
    if len(parts) == len(tables) and all(a is b for a, b in zip(parts, tables, strict=True)):
        return found
    table = pa.concat_tables(tables, promote_options="default")
    base = [c for c in table.column_names if not c.startswith(("metrics.", "params."))]
    table = table.select([*base, *sorted(c for c in table.column_names if c.startswith(
        "metrics.")), *sorted(c for c in table.column_names if c.startswith("params."))])
    _last[:] = [tables, table]
    return table


_last: list[Any] = [[], None]  # the tables combined last, and the result


def matches(mv: ModelVersion, *, tags: Mapping[str, str] | None, stage: str | None,
            alias: str | None, min_metrics: Mapping[str, float] | None,
            max_metrics: Mapping[str, float] | None, created_by: str | None,
            status: str | None = None) -> bool:
    if status is not None and not mv.status.get(status):
        return False
    if stage is not None and mv.stage != stage:
        return False
    if alias is not None and alias not in mv.aliases:
        return False
    if created_by is not None and mv.created_by != created_by:
        return False
    if tags and any(mv.tags.get(k) != str(v) for k, v in tags.items()):
        return False
    if min_metrics and any(mv.metrics.get(k, float("-inf")) < v for k, v in min_metrics.items()):
        return False
    return not (max_metrics and any(mv.metrics.get(k, float("inf")) > v
                                    for k, v in max_metrics.items()))


def order(versions: list[ModelVersion], metric: str | None, ascending: bool
          ) -> list[ModelVersion]:
    if metric is None:
        return sorted(versions, key=lambda mv: (mv.name, mv.version))
    present = [mv for mv in versions if metric in mv.metrics]
    if not present and versions:
        raise InvalidInputError(f"no matching version has a metric named {metric!r}; "
                                f"known metrics: {', '.join(known_metrics(versions)) or 'none'}",
                                field="metric", value=metric)
    return sorted(present, key=lambda mv: mv.metrics[metric], reverse=not ascending)


def known_metrics(versions: Iterable[ModelVersion]) -> list[str]:
    return sorted({k for mv in versions for k in mv.metrics})


def versions_table(versions: Sequence[ModelVersion]) -> pa.Table:
    metric_names = known_metrics(versions)
    param_names = sorted({k for mv in versions for k in mv.params})
    columns: dict[str, pa.Array | list[object]] = {
        "name": [mv.name for mv in versions],
        "version": pa.array([mv.version for mv in versions], pa.int64()),
        "stage": [mv.stage for mv in versions],
        "aliases": pa.array([list(mv.aliases) for mv in versions], pa.list_(pa.string())),
        "created_at": pa.array([mv.created_at for mv in versions], pa.timestamp("us", "UTC")),
        "created_by": [mv.created_by for mv in versions],
        "description": [mv.description for mv in versions],
        "sha256": [mv.sha256 for mv in versions],
        "flavor": [mv.flavor for mv in versions],
        "tags": pa.array([sorted(mv.tags.items()) for mv in versions],
                         pa.map_(pa.string(), pa.string())),
        "revalidation_required": pa.array(
            [mv.status.get("revalidation_required") for mv in versions], pa.string()),
    }
    for name in metric_names:
        columns[f"metrics.{name}"] = pa.array([mv.metrics.get(name) for mv in versions],
                                              pa.float64())
    for name in param_names:
        columns[f"params.{name}"] = pa.array(
            [None if name not in mv.params else _param_text(mv.params[name]) for mv in versions],
            pa.string())
    if not versions:
        return pa.table({c: pa.array([], pa.string()) for c in BASE_COLUMNS})
    return pa.table(columns)


def _param_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def events_table(events: Sequence[Event]) -> pa.Table:
    return pa.table({
        "seq": pa.array([e.seq for e in events], pa.int64()),
        "ts": pa.array([e.ts for e in events], pa.timestamp("us", "UTC")),
        "actor": pa.array([e.actor for e in events], pa.string()),
        "action": pa.array([e.action for e in events], pa.string()),
        "model": pa.array([e.model for e in events], pa.string()),
        "version": pa.array([e.version for e in events], pa.int64()),
        "payload": pa.array([e.payload_json for e in events], pa.string()),
        "hash": pa.array([e.hash for e in events], pa.string()),
    })
