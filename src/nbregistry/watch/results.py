"""What monitoring questions return: the Arrow table, the Delta versions it read, and a typed
summary, instead of JSON tucked into the table's schema metadata.

A result reads like its table (``.to_pylist()``, ``.to_pandas()``, ``.num_rows``,
``result["psi"]``, ``pa.table(result)``, ``pl.from_arrow(result.table)``), so code written
against the table keeps working.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class TableResult:
    """An answer as an Arrow table, with the Delta version of every table it read."""

    table: pa.Table
    tables: dict[str, int] = field(default_factory=dict)

    # -- the table's own reading surface -----------------------------------------------------
    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    @property
    def column_names(self) -> list[str]:
        return list(self.table.column_names)

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    def column(self, name: str | int) -> pa.ChunkedArray:
        return self.table.column(name)

    def select(self, columns: list[str]) -> pa.Table:
        return self.table.select(columns)

    def to_pylist(self) -> list[dict[str, Any]]:
        return list(self.table.to_pylist())

    def to_pandas(self, **options: Any) -> Any:
        return self.table.to_pandas(**options)

    def __getattr__(self, name: str) -> Any:
        # every other pa.Table method (filter, sort_by, slice, to_pydict, ...) as the table
        # has it, so code written against the table keeps working
        if name.startswith("_") or name == "table":
            raise AttributeError(name)
        return getattr(self.table, name)

    def __getitem__(self, key: str | int) -> pa.ChunkedArray:
        return self.table[key]

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.to_pylist())

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.table.__arrow_c_stream__(requested_schema)

    def _repr_html_(self) -> str:
        from ..domain.html import table_html

        rows = self.to_pylist()
        return table_html(self.column_names, [list(r.values()) for r in rows])

    def __repr__(self) -> str:
        read = ", ".join(f"{k.rsplit('/', 1)[-1]}@v{v}" for k, v in self.tables.items())
        return (f"<{type(self).__name__}: {self.num_rows} rows x {len(self.column_names)} "
                f"columns, read {read or 'nothing'}>")


@dataclass(frozen=True)
class BaselineInfo:
    """Which baseline a drift figure is measured from."""

    reference_sha256: str
    sha256: str | None            # the frozen baseline blob; None: computed in memory
    seq: int | None               # the event that froze it

    @property
    def frozen(self) -> bool:
        return self.sha256 is not None

    def describe(self) -> str:
        ref = self.reference_sha256[:12]
        if self.frozen:
            return f"frozen baseline (event {self.seq}) of reference data {ref}…"
        return (f"baseline computed in memory from reference data {ref}… (not frozen yet: "
                "mon.freeze_baseline() records it)")


@dataclass(frozen=True)
class DriftSummary:
    n: int
    n_features: int
    drifted: tuple[str, ...]
    share: float
    dataset_drift: bool
    score_drifted: bool | None
    alpha: float
    min_effect: float
    drift_share: float


@dataclass(frozen=True)
class DriftResult(TableResult):
    """``mon.drift()``: one row per feature and for the score (see ``monitoring.drift``)."""

    summary: DriftSummary | None = None
    baseline: BaselineInfo | None = None


@dataclass(frozen=True)
class PerformanceResult(TableResult):
    """``mon.performance()``: one row per window (one in all when ``window=None``)."""

    task: str = "classification"
    calibration_error: dict[str, Any] | None = None


@dataclass(frozen=True)
class FairnessSummary:
    group: str
    outcome: str
    favorable: Any
    reference: Any
    demographic_parity_ratio: float | None


@dataclass(frozen=True)
class FairnessResult(TableResult):
    """``mon.fairness()``: one row per group value."""

    summary: FairnessSummary | None = None


def metadata(table: pa.Table, key: bytes) -> Any:
    """The JSON the computation layer attached to ``table`` (read once, here)."""
    raw = (table.schema.metadata or {}).get(key)
    return None if raw is None else json.loads(raw)


def drift_summary(table: pa.Table, key: bytes) -> DriftSummary | None:
    found = metadata(table, key)
    if found is None:
        return None
    n = max(table.column("n").to_pylist() or [0])
    return DriftSummary(n=int(n or 0), n_features=int(found["n_features"]),
                        drifted=tuple(found["drifted_features"]), share=float(found["share"]),
                        dataset_drift=bool(found["dataset_drift"]),
                        score_drifted=found["score_drifted"], alpha=float(found["alpha"]),
                        min_effect=float(found["min_effect"]),
                        drift_share=float(found["drift_share"]))


def fairness_summary(table: pa.Table, key: bytes) -> FairnessSummary | None:
    found = metadata(table, key)
    if found is None:
        return None
    return FairnessSummary(group=found["group"], outcome=found["outcome"],
                           favorable=found["favorable"], reference=found["reference"],
                           demographic_parity_ratio=found["demographic_parity_ratio"])
