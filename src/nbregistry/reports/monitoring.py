"""Numbers for the ongoing-monitoring report (and the validation report's production part):
windows, outcome maturity, one rating rule, breaches and the period's rating.

- **Windows** are the policy's (``[monitoring] window``), counted back from the end of the
  period as ``check()`` counts back from now; the first is clipped at the period's start.
- **Maturity**: an outcome is due ``maturity_days`` after its prediction. The clock is the
  newest time in the data the report read (a prediction's or an outcome's ``ts``), so a
  re-run on the same pinned Delta versions judges maturity the same way; a prediction has
  matured when it is at least ``maturity_days`` older than that.
- **One rating rule** per figure: fewer than the policy's ``min_rows`` rows is
  ``insufficient`` (never a breach, as in ``check()``); drift is a breach only when the
  feature ``drifted`` (Benjamini-Hochberg adjusted p-value below alpha AND PSI at least
  the effect floor), then rated by the policy's PSI band; every other metric by its band.
- **The period** is rated by its worst window, and never better than an alert the audit
  log holds for it: each alert is a red breach of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..domain.errors import InvalidInputError
from ..domain.monitoring_policy import Band
from ..domain.timefmt import utc

if TYPE_CHECKING:
    from ..watch import Monitor

SEVERITY = {"ok": 0, "warn": 1, "alert": 2}
TESTS = {"numeric": "KS", "categorical": "chi-square"}
MICROSECOND = timedelta(microseconds=1)


def windows(begin: datetime, stop: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """``[lo, hi)`` windows of ``step`` ending at ``stop``, oldest first; the first one is
    clipped at ``begin``."""
    if step <= timedelta(0):
        raise InvalidInputError("the window must be longer than zero", field="window")
    out, hi = [], stop
    while hi > begin:
        out.append((max(begin, hi - step), hi))
        hi -= step
    return out[::-1]


# -- maturity ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Maturity:
    """When outcomes count as matured: predictions at or before ``cutoff``."""

    as_of: datetime          # the newest time in the data read
    days: float              # the policy's maturity_days
    cutoff: datetime         # as_of - days

    @property
    def end(self) -> datetime:
        """The exclusive end that selects exactly the matured predictions."""
        return self.cutoff + MICROSECOND

    def due(self, ts: datetime) -> datetime:
        return ts + timedelta(days=self.days)

    def describe(self) -> str:
        return (f"an outcome is due {self.days:g} day(s) after its prediction (the policy's "
                f"maturity_days); the newest record read is from {when(self.as_of)}, so "
                f"predictions made up to {when(self.cutoff)} have matured")


def maturity(mon: Monitor, days: float) -> Maturity | None:
    """The maturity rule over the data ``mon`` reads (None: nothing logged)."""
    reads = mon.source.reads()
    newest: list[datetime] = []
    for kind in ("predictions", "outcomes"):
        snap = reads.snapshot(kind)
        if snap.version < 0:
            continue
        found = mon.connection().sql(f"SELECT max(ts) FROM {snap.relation()}")
        value = found.to_arrow_table().column(0)[0].as_py()
        if value is not None:
            newest.append(utc(value))
    if not newest:
        return None
    as_of = max(newest)
    return Maturity(as_of, float(days), as_of - timedelta(days=float(days)))


def daily_volumes(rows: Any, rule: Maturity | None) -> list[dict[str, Any]]:
    """Per UTC day: predictions, outcomes received, how many predictions have matured, and
    how many of those have an outcome (the coverage an examiner needs)."""
    frame = rows.assign(day=rows["ts"].dt.date,
                        matured=rows["ts"] <= rule.cutoff if rule else False,
                        known=rows["actual"].notna())
    out = []
    for day, part in frame.groupby("day"):
        matured = int(part["matured"].sum())
        resolved = int((part["matured"] & part["known"]).sum())
        out.append({"day": day, "predictions": len(part), "outcomes received":
                    int(part["known"].sum()), "matured predictions": matured,
                    "matured with outcome": resolved,
                    "coverage of matured": resolved / matured if matured else None,
                    "all matured by": rule.due(part["ts"].max().to_pydatetime())
                    if rule else None})
    return out


# -- ratings ----------------------------------------------------------------------------------

def drift_rating(row: Mapping[str, Any], band: Band, min_rows: int) -> str:
    """The rating of one drift row: insufficient rows, not drifted (``ok``), or drifted and
    rated by the PSI band. A feature with no valid value at all keeps the library's
    ``alert`` (the input is broken)."""
    if (row.get("n") or 0) < min_rows:
        return "insufficient"
    if row.get("psi") is None:
        return str(row.get("status") or "unknown")
    if not row.get("drifted"):
        return "ok"
    return band.status(row["psi"])


def metric_rating(value: float | None, band: Band | None, n: int, min_rows: int) -> str:
    """``insufficient`` below the minimum rows, else the band's word (``unknown`` when the
    policy sets no band for the metric)."""
    if n < min_rows:
        return "insufficient"
    return band.status(value) if band is not None else "unknown"


def drift_rows(table: Any, band: Band, min_rows: int, **extra: Any) -> list[dict[str, Any]]:
    """Rows of a drift table as the report shows them: the feature's test (KS for numbers,
    chi-square for categories) and its p-value, the adjusted p-value and ``drifted`` on
    which the rating rests, and the rating."""
    out = []
    for row in table.to_pylist():
        test = TESTS.get(row["kind"], "none") if row.get("p_value") is not None else "none"
        p = row["ks_pvalue"] if test == "KS" else row.get("chi2_pvalue")
        out.append({**extra, "feature": row["feature"], "kind": row["kind"], "n": row["n"],
                    "missing_rate": row["missing_rate"], "psi": row["psi"], "js": row["js"],
                    "ks": row["ks"], "test": test, "p_value": p,
                    "ks_pvalue": row["ks_pvalue"], "chi2_pvalue": row.get("chi2_pvalue"),
                    "p_adjusted": row["p_adjusted"], "drifted": row["drifted"],
                    "rating": drift_rating(row, band, min_rows)})
    return out


def drift_by_window(mon: Monitor, spans: Sequence[tuple[datetime, datetime]], version: int,
                    band: Band, min_rows: int) -> list[dict[str, Any]]:
    """Drift of every feature in each window (windows without predictions are left out)."""
    out: list[dict[str, Any]] = []
    for lo, hi in spans:
        try:
            result = mon.drift(lo, hi, version=version)
        except InvalidInputError as exc:
            if exc.field != "where":  # not an empty window: no baseline, a bad column...
                raise
            continue
        out += drift_rows(result.table, band, min_rows, window_start=lo, window_end=hi)
    return out


def worst(rows: Iterable[Mapping[str, Any]], key: str = "rating") -> str:
    """The worst rating among ``rows`` (``insufficient`` when none was rated)."""
    rated = [r[key] for r in rows if r[key] in SEVERITY]
    return max(rated, key=SEVERITY.__getitem__) if rated else "insufficient"


def worst_by_feature(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per feature, its worst window (highest rating, then highest PSI)."""
    best: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        rank = (SEVERITY.get(row["rating"], -1), row["psi"] or 0.0)
        held = best.get(row["feature"])
        if held is None or rank > (SEVERITY.get(held["rating"], -1), held["psi"] or 0.0):
            best[row["feature"]] = row
    return [dict(r) for r in best.values()]


# -- performance and fairness per window -------------------------------------------------------

def performance_by_window(mon: Monitor, spans: Sequence[tuple[datetime, datetime]],
                          rows: Any, rule: Maturity | None, *, version: int, metric: str,
                          band: Band | None, min_rows: int) -> list[dict[str, Any]]:
    """Per window, the metrics of its matured predictions (all of them, those up to the
    cutoff, or none: then the date all will have matured) with DeLong's AUC interval and
    the rating. ``rows`` are the period's rows (``ts``, ``score``, ``actual``)."""
    out = []
    for lo, hi in spans:
        cut = min(hi, rule.end) if rule else lo
        part = rows[(rows["ts"] >= lo) & (rows["ts"] < hi)]
        row: dict[str, Any] = {"window_start": lo, "window_end": hi, "predictions": len(part)}
        if cut <= lo:
            out.append({**row, "matured": "no", "rating": "insufficient", "note":
                        f"all matured by {when(rule.due(hi))}" if rule else "no data"})
            continue
        try:
            found = mon.performance(None, start=lo, end=cut, version=version).to_pylist()[0]
        except InvalidInputError as exc:
            if exc.field != "where":  # not "no outcome in the window"
                raise
            found = {"n": 0}
        done = part[(part["ts"] < cut) & part["actual"].notna()]
        ci = auc_interval(done["actual"], done["score"]) if metric == "roc_auc" else None
        out.append({**row, **{k: v for k, v in found.items()
                              if k not in ("window_start", "window_end")},
                    "matured": "yes" if cut == hi else f"to {when(cut - MICROSECOND)}",
                    "auc_low": ci[0] if ci else None, "auc_high": ci[1] if ci else None,
                    "rating": metric_rating(found.get(metric), band, found["n"], min_rows)})
    return out


def fairness_rows(mon: Monitor, attribute: str, favorable: Any, start: datetime | None,
                  end: datetime | None, *, version: int, band: Band, min_rows: int
                  ) -> tuple[list[dict[str, Any]], Any]:
    """Per group: the fairness row with Katz's interval of its AIR, the four-fifths rule in
    words and the rating; and the reference group."""
    table = mon.fairness(attribute, favorable, start=start, end=end, version=version)
    found = table.to_pylist()
    reference = table.summary.reference if table.summary else None
    ref = next((r for r in found if r["group"] == reference), None)
    out = []
    for r in found:
        ci = None if ref is None or r is ref else air_interval(
            r["favorable"], r["n"], ref["favorable"], ref["n"])
        out.append({**r, "air_low": ci[0] if ci else None, "air_high": ci[1] if ci else None,
                    "four-fifths rule": "fails" if r["four_fifths"] else "passes",
                    "rating": metric_rating(r["air"], band, r["n"], min_rows)})
    return out, reference


# -- intervals --------------------------------------------------------------------------------

def air_interval(favorable: int, n: int, ref_favorable: int, ref_n: int, *,
                 confidence: float = 0.95) -> tuple[float, float] | None:
    """Katz's log interval of a ratio of two selection rates (the AIR), or None when a
    rate is 0 or the group is the reference itself."""
    from scipy.stats import norm

    if not (favorable and n and ref_favorable and ref_n):
        return None
    ratio = (favorable / n) / (ref_favorable / ref_n)
    se = math.sqrt(max(1 / favorable - 1 / n + 1 / ref_favorable - 1 / ref_n, 0.0))
    half = float(norm.ppf(0.5 + confidence / 2)) * se
    return ratio * math.exp(-half), ratio * math.exp(half)


def auc_interval(y: Any, score: Any) -> tuple[float, float] | None:
    """DeLong's 95% interval of the AUC, None when one class is missing."""
    import numpy as np

    from ..monitoring.significance import auc_interval as delong_interval

    y = np.asarray(y, dtype=float)
    if len(y) < 2 or len(set(y.tolist())) != 2:
        return None
    _, low, high = delong_interval(y, np.asarray(score, dtype=float))
    return low, high


# -- breaches ---------------------------------------------------------------------------------

def breach(area: str, item: str, value: Any, band: Band | None, status: str, *,
           window: tuple[datetime, datetime] | None = None, source: str = "this report",
           threshold: float | None = None) -> dict[str, Any]:
    """A breach row; its ``threshold`` is the level crossed (the alert level on red)."""
    if threshold is None and band is not None:
        threshold = band.alert if status == "alert" else band.warn
    return {"area": area, "item": item, "window": _span(window), "value": value,
            "threshold": threshold, "status": status, "source": source}


def alert_breaches(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Each alert recorded in the audit log, as a red breach (the report never rates the
    period better than an alert it lists)."""
    from ..domain.timefmt import parse_time

    out = []
    for e in events:
        p = e.payload
        window = p.get("window")
        span = (parse_time(window[0]), parse_time(window[1])) if window else None
        out.append({"area": f"alert ({p.get('kind', 'monitoring')})",
                    "item": " ".join(str(v) for v in (p["metric"], p.get("feature")) if v),
                    "window": _span(span), "value": p["value"],
                    "threshold": (p.get("band") or {}).get("alert"), "status": "alert",
                    "source": f"audit log, event {e.seq}"})
    return out


def period_rating(breaches: Sequence[Mapping[str, Any]], rated: Sequence[str]) -> str:
    """The worst of every rated cell and every breach (``insufficient`` if none rated)."""
    levels = [*rated, *(b["status"] for b in breaches)]
    found = [s for s in levels if s in SEVERITY]
    return max(found, key=SEVERITY.__getitem__) if found else "insufficient"


def headline(rating: str, breaches: Sequence[Mapping[str, Any]]) -> str:
    """One sentence: the period's rating, what breached, and the worst breach."""
    mine = [b for b in breaches if b["source"] == "this report"]
    red = sum(b["status"] == "alert" for b in mine)
    amber = sum(b["status"] == "warn" for b in mine)
    alerts = len(breaches) - len(mine)
    word = {"alert": "RED", "warn": "AMBER", "ok": "GREEN"}.get(rating, "NOT RATED")
    if not breaches:
        return (f"Period rated {word}: no breach in any window." if rating == "ok" else
                f"Period {word}: no window had the policy's minimum rows.")
    first = max(breaches, key=lambda b: (SEVERITY.get(b["status"], -1),
                                         b["source"] == "this report"))
    return (f"Period rated {word} (its worst window): {red} red and {amber} amber breach(es) "
            f"in this report's windows, {alerts} alert(s) recorded by check() in the period; "
            f"worst: {first['area']} {first['item']} = {_number(first['value'])} in "
            f"{first['window'] or 'the period'} ({first['source']}).")


def when(ts: datetime) -> str:
    """A time as the report prints it (UTC, to the second)."""
    return utc(ts).strftime("%Y-%m-%d %H:%M:%S")


def _span(window: tuple[datetime, datetime] | None) -> str | None:
    return None if window is None else f"{when(window[0])} .. {when(window[1])}"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
