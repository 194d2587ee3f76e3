"""The heavy pass of drift: per feature, how many of a window's rows fall in each cell of the
frozen baseline's grid (numeric) or carry each level (categorical), in one scan.

Everything drift reports is finished from these counts (``drift.py``), so this is the only
part that reads rows, and it is written once for every engine: a ``UNION ALL`` of one narrow
select per feature under a single ``GROUP BY``, with nothing DuckDB and Spark do not both
have (``spark.py`` transpiles it). Counts of disjoint sets of rows add up: grouping by more
keys (a time bucket, a data file) gives per-window or per-file counts from the same scan, and
per-file counts are the sketches continuous monitoring keeps.

Per feature and group the pass returns the rows in each cell or level, how many of them are
valid (finite numbers, non-null levels), and for numeric features the summed distance of the
finite values beyond the grid's outermost edges (the tail area Wasserstein needs). Nulls,
NaN and +-inf fall in the far cells by construction (``sketch.cell_sql``) and are told apart
from finite values there by the valid count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import duck
from .baseline import level_sql
from .sketch import cell_sql, far_edges

Key = tuple[Any, ...]
UNSEEN = "__nbregistry_unseen_level__"  # a level no reference has
MAX_LISTED = 10_000      # reference levels listed in the query; beyond, levels come as is


@dataclass
class FeatureCounts:
    """One feature's counts over some rows: finite values (or non-null levels) per cell
    (or level), all valid values, and the summed distances beyond the far edges."""

    histogram: dict[Any, int] = field(default_factory=dict)
    valid: int = 0
    far_sum: tuple[float, float] = (0.0, 0.0)

    def add(self, other: FeatureCounts, sign: int = 1) -> None:
        """Add ``other`` (``sign=-1``: take it away; a cell that falls to 0 is dropped)."""
        for key, n in other.histogram.items():
            left = self.histogram.get(key, 0) + sign * n
            if left:
                self.histogram[key] = left
            else:
                del self.histogram[key]
        self.valid += sign * other.valid
        self.far_sum = (self.far_sum[0] + sign * other.far_sum[0],
                        self.far_sum[1] + sign * other.far_sum[1])

    def copy(self) -> FeatureCounts:
        return FeatureCounts(dict(self.histogram), self.valid, self.far_sum)

    @property
    def far_area(self) -> tuple[float, float]:
        """The mean distance beyond each far edge, per valid value."""
        if not self.valid:
            return 0.0, 0.0
        return self.far_sum[0] / self.valid, self.far_sum[1] / self.valid


@dataclass
class Counts:
    """A group's rows and each feature's counts."""

    rows: int = 0
    features: dict[str, FeatureCounts] = field(default_factory=dict)

    def add(self, other: Counts, sign: int = 1) -> None:
        self.rows += sign * other.rows
        for name, counts in other.features.items():
            mine = self.features.get(name)
            if mine is None:
                mine = self.features[name] = FeatureCounts()
            mine.add(counts, sign)

    def copy(self) -> Counts:
        return Counts(self.rows, {name: c.copy() for name, c in self.features.items()})


def feature_counts(con: Any, source: str, where: str | None, specs: dict[str, Any],
                   types: dict[str, str], *, keys: Sequence[tuple[str, str]] = ()
                   ) -> dict[Key, Counts]:
    """One scan of ``source`` (filtered by ``where``): per value of the ``keys``
    expressions (``(sql, alias)``; none: one group), the counts of every feature in
    ``specs`` (the baseline's)."""
    names = [alias for _, alias in keys]
    lead = "".join(f"{expr} AS {duck.quote(alias)}, " for expr, alias in keys)
    parts = [_select(lead, name, spec, types[name], source, where)
             for name, spec in specs.items()]
    grouping = "".join(f"{duck.quote(n)}, " for n in names)
    query = (f"SELECT {grouping}__f, __c, __l, count(*), count(*) FILTER (WHERE __ok), "
             f"sum(__lo), sum(__hi) FROM ({' UNION ALL '.join(parts)}) AS __rows "
             f"GROUP BY {grouping}__f, __c, __l")
    return _collect(con.execute(query).fetchall(), len(names), list(specs))


def _select(lead: str, name: str, spec: dict[str, Any], duck_type: str, source: str,
            where: str | None) -> str:
    column = duck.quote(name)
    label = _string(name)
    filtered = f"FROM {source} {duck.where_clause(where)}"
    if spec["kind"] == "numeric":
        value = column if duck_type == "DOUBLE" else f"CAST({column} AS DOUBLE)"
        ok = f"isfinite({value})"
        if spec["grid"] is None:  # a constant reference: only valid values are counted
            return (f"SELECT {lead}{label} AS __f, CAST(NULL AS BIGINT) AS __c, "
                    f"CAST(NULL AS VARCHAR) AS __l, {ok} AS __ok, CAST(NULL AS DOUBLE) AS __lo,"
                    f" CAST(NULL AS DOUBLE) AS __hi {filtered}")
        below, above = (duck.number(edge) for edge in far_edges(spec["grid"]))
        return (f"SELECT {lead}{label} AS __f, "
                f"CAST({cell_sql(column, spec['grid'], duck_type)} AS BIGINT) AS __c, "
                f"CAST(NULL AS VARCHAR) AS __l, {ok} AS __ok, "
                f"CASE WHEN {ok} AND {value} < {below} THEN {below} - {value} END AS __lo, "
                f"CASE WHEN {ok} AND {value} > {above} THEN {value} - {above} END AS __hi "
                f"{filtered}")
    level = level_sql(column, duck_type)
    known = list(spec.get("levels") or {})
    if 0 < len(known) <= MAX_LISTED:
        # levels the reference never had all count as one ("other" in drift): a window of
        # 400,000 new values is one group, not 400,000
        listed = ", ".join(_string(str(k)) for k in known)
        level = f"CASE WHEN {level} IN ({listed}) THEN {level} ELSE {_string(UNSEEN)} END"
    return (f"SELECT {lead}{label} AS __f, CAST(NULL AS BIGINT) AS __c, "
            f"{level} AS __l, {column} IS NOT NULL AS __ok, "
            f"CAST(NULL AS DOUBLE) AS __lo, CAST(NULL AS DOUBLE) AS __hi {filtered}")


def _collect(rows: Iterable[tuple[Any, ...]], width: int, names: list[str]
             ) -> dict[Key, Counts]:
    out: dict[Key, Counts] = {}
    first = names[0] if names else None
    for row in rows:
        key, (feature, cell, level, n, valid, low, high) = tuple(row[:width]), row[width:]
        group = out.get(key)
        if group is None:   # not setdefault: its default would be built for every row
            group = out[key] = Counts(features={name: FeatureCounts() for name in names})
        counts = group.features[feature]
        if feature == first:
            group.rows += int(n)
        if valid:
            counts.valid += int(valid)
            bucket = level if cell is None else int(cell)
            if bucket is not None:
                counts.histogram[bucket] = counts.histogram.get(bucket, 0) + int(valid)
        counts.far_sum = (counts.far_sum[0] + float(low or 0.0),
                          counts.far_sum[1] + float(high or 0.0))
    return out


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
