"""Challenger replay: score the served version's logged traffic with another version and
compare both on the same matured outcomes, with a significance test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError
from ..domain.extras import require
from ..domain.html import FONT, esc, table_html
from ..monitoring import reference

if TYPE_CHECKING:
    from .ports import Questions

MAX_ROWS = 2_000_000  # replay loads the rows to score them: a bound a notebook survives
RESAMPLES = 500       # paired bootstrap resamples: p-values resolve down to 2 / 501


@dataclass(frozen=True)
class ReplayResult:
    """The challenger against the served version on the same rows and outcomes."""

    model: str
    served: int
    challenger: int
    n: int
    task: str
    metrics: dict[str, tuple[float, float]]          # metric -> (served, challenger)
    p_values: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        return "roc_auc" if self.task == "classification" else "rmse"

    @property
    def diff(self) -> float:
        """Challenger minus served on the primary metric (AUC, or RMSE for regressors)."""
        served, challenger = self.metrics[self.primary]
        return challenger - served

    def __repr__(self) -> str:
        served, challenger = self.metrics[self.primary]
        return (f"<ReplayResult {self.model} v{self.challenger} vs served v{self.served} on "
                f"{self.n} rows: {self.primary} {challenger:.4f} vs {served:.4f} "
                f"(p={self.p_values.get(self.primary, float('nan')):.3g})>")

    def _repr_html_(self) -> str:
        rows = []
        for m, (a, b) in self.metrics.items():
            low, high = self.intervals.get(m, (None, None))
            rows.append([m, a, b, b - a, None if low is None else f"[{low:+.4f}, {high:+.4f}]",
                         self.p_values.get(m)])
        return (f"<div style='{FONT}'><b>Replay</b> {esc(self.model)} v{self.challenger} "
                f"(challenger) vs v{self.served} (served) on {self.n:,} logged rows with "
                "matured outcomes" + table_html(
                    ["metric", f"v{self.served}", f"v{self.challenger}", "difference",
                     "95% interval of the difference", "p-value"], rows) + "</div>")


def replay(mon: Questions, version: int | str, start: Any, end: Any, *,
           served: int | str | None, trusted: bool | Sequence[str]) -> ReplayResult:
    require("monitoring", "pandas")
    challenger = mon.catalog.get(mon.name, version)
    served_mv = mon.version(served)
    if served_mv.version == challenger.version:
        raise InvalidInputError(f"v{challenger.version} is the served version itself: name a "
                                "challenger", field="version")
    rows = mon.rows(start, end, version=served_mv.version, matured=True, limit=MAX_ROWS)
    if rows.num_rows == 0:
        raise InvalidInputError(f"no logged prediction of v{served_mv.version} in the period "
                                "has a matured outcome yet: nothing to replay on", field="start")
    names = [f["name"] for f in challenger.features]
    lacking = [n for n in names if n not in rows.column_names]
    if lacking:
        raise InvalidInputError(f"v{challenger.version} needs features the traffic of "
                                f"v{served_mv.version} did not log: {lacking}", field="version")
    model = mon.catalog.load(mon.name, challenger.version, trusted=trusted)
    scores = reference.model_scores(model, rows.select(names).to_pandas())
    if scores is None:
        raise InvalidInputError(f"v{challenger.version} could not score the logged rows "
                                "(a binary classifier or a regressor is needed)", field="version")
    task = mon.task(served_mv.version)
    return _compare(mon.name, served_mv.version, challenger.version, task,
                    rows["actual"].to_numpy(), rows["score"].to_numpy(), scores.to_numpy(),
                    mon.last_read())


def _compare(name: str, served: int, challenger: int, task: str, y: Any, a: Any, b: Any,
             tables: dict[str, int]) -> ReplayResult:
    from ..monitoring.significance import delong, paired_bootstrap

    metrics: dict[str, tuple[float, float]] = {}
    p_values: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    if task == "classification":
        auc = delong(y, a, b)
        metrics["roc_auc"], p_values["roc_auc"] = (auc.auc_a, auc.auc_b), auc.p_value
        intervals["roc_auc"] = auc.interval()   # DeLong's Wald interval of the difference
        extra = ("accuracy", "brier", "log_loss")
    else:
        extra = ("rmse", "mae", "r2")
    for metric in extra:
        boot = paired_bootstrap(y, a, b, metric=metric, n_resamples=RESAMPLES)
        metrics[metric] = (boot.value_a, boot.value_b)
        p_values[metric], intervals[metric] = boot.p_value, (boot.ci_low, boot.ci_high)
    return ReplayResult(name, served, challenger, len(y), task, metrics, p_values, intervals,
                        tables)
