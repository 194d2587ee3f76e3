"""Several versions side by side: what ``%compare`` returns and the comparison panel shows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..domain.entities import ModelVersion
from ..domain.html import FONT, esc, fmt, section, table_html
from ..domain.html import muted as _muted
from .display import _text_table, flatten

MISSING = object()
Diff = list[tuple[str, list[Any]]]


def diff(mappings: Sequence[Mapping[str, Any]]) -> Diff:
    """Keys whose values are not the same in every mapping; a missing key is a difference."""
    keys = sorted({k for m in mappings for k in m})
    rows = [(k, [m.get(k, MISSING) for m in mappings]) for k in keys]
    return [(k, vs) for k, vs in rows if any(v != vs[0] for v in vs[1:])]


class Comparison:
    """2+ versions compared: metrics, params diff, feature-schema diff, card and lineage diffs.

    Only differences are listed (with a count of what is identical), because a reviewer wants
    to see what changed between v3 and v4, not 40 identical package versions."""

    def __init__(self, versions: Sequence[ModelVersion], *, chart: bool = True,
                 importance: Sequence[Mapping[str, float]] = ()) -> None:
        self.versions = list(versions)
        self.chart = chart
        self.importance = list(importance)
        self._svg: str | None = None

    @property
    def labels(self) -> list[str]:
        multi = len({mv.name for mv in self.versions}) > 1
        return [f"{mv.name} v{mv.version}" if multi else f"v{mv.version}"
                for mv in self.versions]

    def metrics(self) -> list[tuple[str, list[Any]]]:
        names = sorted({k for mv in self.versions for k in mv.metrics})
        return [(m, [mv.metrics.get(m) for mv in self.versions]) for m in names]

    def params_diff(self) -> Diff:
        return diff([mv.params for mv in self.versions])

    def features_diff(self) -> Diff:
        return diff([{f["name"]: f.get("dtype") for f in mv.features} for mv in self.versions])

    def card_diff(self) -> Diff:
        return diff([mv.card for mv in self.versions])

    def lineage_diff(self) -> Diff:
        return diff([flatten(mv.lineage) for mv in self.versions])

    def stage_row(self) -> list[str]:
        return [mv.stage + "".join(f" @{a}" for a in mv.aliases) for mv in self.versions]

    def importance_rows(self) -> Diff:
        """Feature importance per version, the most important (anywhere) first."""
        if not any(self.importance):
            return []
        names = sorted({k for m in self.importance for k in m},
                       key=lambda k: -max(m.get(k, 0.0) for m in self.importance))
        return [(k, [m.get(k, MISSING) for m in self.importance]) for k in names]

    def sections(self) -> list[tuple[str, Callable[[], Diff]]]:
        found = [("Parameters", self.params_diff), ("Features", self.features_diff),
                 ("Model card", self.card_diff), ("Lineage", self.lineage_diff)]
        return [("Feature importance", self.importance_rows), *found] if any(
            self.importance) else found

    def svg(self) -> str:
        """The metrics chart as inline SVG (rendered once; vl-convert starts in ≈1 s)."""
        if self._svg is None:
            from .. import charts

            rows = charts.metric_rows(self.versions)
            self._svg = charts.to_svg(charts.compare_metrics(self.versions)) if rows else ""
        return self._svg

    def __repr__(self) -> str:
        lines = [f"<Comparison {', '.join(self.labels)}>"]
        lines.append(_text_table(["metric", *self.labels],
                                 [["stage", *self.stage_row()],
                                  *([m, *vs] for m, vs in self.metrics())]))
        for title, get in self.sections():
            found = get()
            lines.append(f"{title}: " + ("identical" if not found else f"{len(found)} differ"))
            lines += [f"  {k}: " + " | ".join(_cell(v) for v in vs) for k, vs in found[:20]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.html(chart=self.chart)

    def html(self, *, chart: bool = True) -> str:
        head = (f"<div style='{FONT}'><b>Comparing {esc(', '.join(self.labels))}</b></div>")
        parts = [head, section("Metrics", self.metrics_html(chart=chart))]
        parts += [section(title, self.diff_html(get())) for title, get in self.sections()]
        return "".join(parts)

    def metrics_html(self, *, chart: bool = True) -> str:
        rows = [("stage", self.stage_row()), *self.metrics()]
        out = table_html(["", *self.labels], [[k, *vs] for k, vs in rows])
        if chart and self.svg():
            out += f"<div style='margin-top:6px'>{self.svg()}</div>"
        return out

    def diff_html(self, found: Diff) -> str:
        if not found:
            return _muted("identical in every version")
        return table_html(["", *self.labels], [[k, *(_cell(v) for v in vs)] for k, vs in found])


def _cell(value: Any) -> str:
    return "(absent)" if value is MISSING else fmt(value)
