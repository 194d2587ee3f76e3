"""Selection rates per group, adverse impact ratio and a significance test, in one GROUP BY.

``fairness`` returns one row per value of the ``group`` column (null is a group too),
ordered by group:

- ``group``, ``n`` (rows with a non-null outcome), ``favorable`` (rows whose outcome
  equals ``favorable``), ``selection_rate`` = favorable / n;
- ``air``: adverse impact ratio, the group's selection rate over the reference group's.
  The reference group is ``reference`` when given, else the group with the highest
  selection rate (the first in group order on a tie), so every ``air`` is <= 1 and the
  smallest equals fairlearn's ``demographic_parity_ratio``. Null when the reference
  selects nobody;
- ``four_fifths``: true when the group FAILS the four-fifths rule: ``air < floor``
  (0.8 by default, the EEOC rule; the policy's ``air`` alert level when monitoring asks);
- ``test``, ``p_value``: two-sided test of the group's selection rate against the
  reference group's: the pooled two-proportion z-test (identical to Pearson's chi-square
  on the 2x2 table, no continuity correction), or Fisher's exact test when an expected
  cell count is below 5; null on the reference row;
- ``fpr``, ``fnr`` (error-rate parity) when the rows have an ``actual`` column:
  false-positive rate among rows whose actual outcome is not favorable, false-negative
  rate among rows whose actual outcome is favorable (rows without an actual, or with a NaN
  or infinite one, left out: not an unfavorable outcome).

The schema metadata ``nbregistry.fairness`` holds the attribute, favorable value,
reference group and ``demographic_parity_ratio`` (min / max selection rate) as JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError
from ..domain.monitoring_policy import DEFAULT_BANDS
from . import duck
from .significance import two_proportions

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

FOUR_FIFTHS = DEFAULT_BANDS["air"].alert  # the EEOC rule: AIR below 4/5 is adverse impact
METADATA_KEY = b"nbregistry.fairness"


def fairness(con: duckdb.DuckDBPyConnection, source: str, *, group: str, favorable: Any = 1,
             outcome: str = "label", reference: Any = None, where: str | None = None,
             error_rates: bool | None = None, floor: float = FOUR_FIFTHS) -> pa.Table:
    """Selection rate, adverse impact ratio and significance per value of ``group``.

    ``outcome`` is the column judged (the predicted ``label`` by default), ``favorable``
    its favorable value; ``error_rates`` adds FPR/FNR (default: when ``actual`` exists).
    """
    types = duck.columns(con, source)
    duck.require_columns(types, [group, outcome], what="fairness")
    values = {"fav": _favorable(favorable, types[outcome], outcome)}
    if error_rates is None:   # automatic: when actual outcomes exist and compare
        error_rates = "actual" in types and _comparable(favorable, types["actual"])
    elif error_rates:
        duck.require_columns(types, ["actual"], what="fairness error rates")
    if error_rates:
        values["actual_fav"] = _favorable(favorable, types["actual"], "actual")
    known = (f"isfinite(CAST({duck.quote('actual')} AS DOUBLE))"
             if error_rates and duck.is_numeric(types["actual"]) else "TRUE")
    rows = _counts(con, source, group, outcome, where, values, known)
    if not rows:
        raise InvalidInputError(f"no rows with a {outcome!r} value in the window (filter "
                                f"{where!r})", field="where", value=where)
    ref = _reference(rows, reference, group)
    _compare(rows, ref, floor)
    return _table(rows, "actual_fav" in values, {
        "group": group, "outcome": outcome, "favorable": favorable,
        "reference": rows[ref]["group"],
        "demographic_parity_ratio": _ratio(min(r["selection_rate"] for r in rows),
                                           max(r["selection_rate"] for r in rows))})


def _favorable(favorable: Any, duck_type: str, outcome: str) -> Any:
    """The favorable value in the outcome column's own type, so the comparison is exact."""
    if duck_type == "VARCHAR":
        return favorable if isinstance(favorable, str) else str(favorable)
    if duck_type == "BOOLEAN" and favorable in (0, 1):   # True/False included
        return bool(favorable)
    if duck.is_numeric(duck_type) and isinstance(favorable, int | float):
        return favorable
    raise InvalidInputError(f"favorable value {favorable!r} cannot be compared with "
                            f"{outcome!r} ({duck_type})", field="favorable", value=favorable)


def _comparable(favorable: Any, duck_type: str) -> bool:
    try:
        _favorable(favorable, duck_type, "actual")
    except InvalidInputError:
        return False
    return True


def _counts(con: duckdb.DuckDBPyConnection, source: str, group: str, outcome: str,
            where: str | None, values: dict[str, Any], known: str = "TRUE"
            ) -> list[dict[str, Any]]:
    g, o = duck.quote(group), duck.quote(outcome)
    parts = ["count(*)", f"count(*) FILTER (WHERE {o} = $fav)"]
    error_rates = "actual_fav" in values
    if error_rates:
        actual = duck.quote("actual")
        # NaN compares unequal to everything in SQL: only real outcomes count (``known``)
        parts += [f"count(*) FILTER (WHERE {actual} = $actual_fav AND {known})",
                  f"count(*) FILTER (WHERE {actual} <> $actual_fav AND {known})",
                  f"count(*) FILTER (WHERE {o} = $fav AND {actual} <> $actual_fav AND {known})",
                  f"count(*) FILTER (WHERE {o} <> $fav AND {actual} = $actual_fav AND {known})"]
    filters = [f"{o} IS NOT NULL"] + ([f"({where})"] if where and where.strip() else [])
    query = (f"SELECT {g}, {', '.join(parts)} FROM {source} WHERE {' AND '.join(filters)} "
             f"GROUP BY {g} ORDER BY {g} NULLS LAST")
    rows = []
    for found in con.execute(query, values).fetchall():
        row = {"group": found[0], "n": int(found[1]), "favorable": int(found[2])}
        row["selection_rate"] = row["favorable"] / row["n"]
        if error_rates:
            positives, negatives, false_pos, false_neg = (int(v) for v in found[3:7])
            row["fpr"] = _ratio(false_pos, negatives)
            row["fnr"] = _ratio(false_neg, positives)
        rows.append(row)
    return rows


def _reference(rows: list[dict[str, Any]], reference: Any, group: str) -> int:
    if reference is None:
        best = max(row["selection_rate"] for row in rows)
        return next(i for i, row in enumerate(rows) if row["selection_rate"] == best)
    for i, row in enumerate(rows):
        if row["group"] == reference or str(row["group"]) == str(reference):
            return i
    raise InvalidInputError(f"reference group {reference!r} is not a value of {group!r} in "
                            f"the window (found {[r['group'] for r in rows]})",
                            field="reference", value=reference)


def _compare(rows: list[dict[str, Any]], ref: int, floor: float) -> None:
    base = rows[ref]
    for i, row in enumerate(rows):
        row["air"] = _ratio(row["selection_rate"], base["selection_rate"])
        row["four_fifths"] = row["air"] is not None and row["air"] < floor
        row["test"], row["p_value"] = (None, None) if i == ref else _test(row, base)


def _test(row: dict[str, Any], base: dict[str, Any]) -> tuple[str, float]:
    return two_proportions(row["favorable"], row["n"], base["favorable"], base["n"])


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _table(rows: list[dict[str, Any]], error_rates: bool, summary: dict[str, Any]) -> pa.Table:
    import pyarrow as pa

    names = ["group", "n", "favorable", "selection_rate", "air", "four_fifths", "test",
             "p_value", *(["fpr", "fnr"] if error_rates else [])]
    columns = {name: [row[name] for row in rows] for name in names}
    table = pa.table({name: pa.array(values, pa.int64() if name in ("n", "favorable")
                                     else None) for name, values in columns.items()})
    return table.replace_schema_metadata(
        {METADATA_KEY: json.dumps(summary, default=str).encode()})
