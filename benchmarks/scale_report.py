"""The tables ``monitoring_scale.py`` prints: one per size and engine, then how each figure
grows from the smallest size to the largest. Standard library only."""

from __future__ import annotations

import statistics
from typing import Any

GIB = 1024 ** 3
ENGINES = {"duckdb": "DuckDB in process", "sail": "Spark via Sail (local-cluster)"}
NOT_AVAILABLE = "not available"
WARM_TARGET = 2.0
TICK_GROWTH = 2.0   # a tick on the largest table may cost at most this times the smallest's
# the questions, in order: (key, label, target seconds or None)
READS = [("drift_day", "drift() of one day", 2.0),
         ("performance_30d", "performance(None) over 30 days", 10.0),
         ("performance_30d_daily", 'performance("1d") over 30 days', None),
         ("fairness_30d", "fairness() over 30 days", None)]


def rows(figures: dict[str, Any], ticks: list[int], sketches: bool
         ) -> list[tuple[str, str, float | None, dict[str, Any] | None]]:
    """(key, label, target seconds, measured figure or None) for every row of a table: the
    same rows whatever was measured, so a reader (and the smoke test) sees every one."""
    out = [(key, name, target, figures.get(key)) for key, name, target in READS]
    out.append(("check", "check() over the 30d window, no sketches", None,
                figures.get("check")))
    out.append(("sketch", "sketch(): build the missing sketches", None,
                figures.get("sketch")))
    out.append(("check_warm", "check() over the 30d window, warm sketches", WARM_TARGET,
                figures.get("check_warm")))
    for n in ticks:
        tick = figures.get(f"tick_{n}")
        out.append((f"tick_{n}", f"tick of {n:,} new rows: sketch() + check()", None,
                    tick if sketches else None))
    for n in ticks:
        tick = figures.get(f"tick_{n}")
        out.append((f"tick_{n}_rescan", f"tick of {n:,} new rows: check(), no sketches",
                    None, None if sketches else tick))
    return out


def seconds(figure: dict[str, Any]) -> float:
    return float(statistics.median(figure["times"]))


def _detail(figure: dict[str, Any]) -> str:
    info = figure.get("info", {})
    if "rows" in info:
        return f"{info['rows']:,} rows"
    if "figures" in info:
        return f"{info['figures']} figures, {info['alerts']} alerts"
    return ""


def _rss(figure: dict[str, Any]) -> str:
    text = f"{figure['peak_rss'] / GIB:.2f}"
    if figure.get("server_peak_rss"):
        text += f" + server {figure['server_peak_rss'] / GIB:.2f}"
    return text + " GiB"


def table(size: str, engine: str, figures: dict[str, Any], ticks: list[int],
          sketches: bool) -> list[bool]:
    """Print one size-and-engine table; the verdicts it judged."""
    print(f"\n== {size} rows, {ENGINES.get(engine, engine)} ==")
    print(f"{'figure':<48} {'median':>9} {'first':>9} {'target':>8} {'':>4}  "
          f"{'peak RSS':<24} read")
    verdicts = []
    for key, name, target, figure in rows(figures, ticks, sketches):
        if figure is None:
            why = "" if key.endswith("_rescan") and sketches else \
                " (no Monitor.sketch in this nbregistry)"
            print(f"{name:<48} {NOT_AVAILABLE + why}")
            continue
        value = seconds(figure)
        ok = None if target is None else value <= target
        if ok is not None:
            verdicts.append(ok)
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        limit = "" if target is None else f"<= {target:g} s"
        print(f"{name:<48} {value:>7.2f} s {figure['times'][0]:>7.2f} s {limit:>8} "
              f"{verdict:>4}  {_rss(figure):<24} {_detail(figure)}")
    peaks = [f["peak_rss"] for f in figures.values()]
    bounded = max(peaks) <= 2 * GIB
    verdicts.append(bounded)
    print(f"{'peak RSS of any question (its process)':<48} {max(peaks) / GIB:>7.2f} GiB "
          f"{'':>9} {'<= 2 GiB':>8} {'PASS' if bounded else 'FAIL':>4}")
    return verdicts


def growth(out: dict[str, Any]) -> list[bool]:
    """How each figure grows with the table; for ticks (with sketches) a verdict."""
    sizes = list(out["sizes"])
    if len(sizes) < 2:
        return []
    print(f"\n== growth from {sizes[0]} to {sizes[-1]} rows (seconds, median) ==")
    print(f"{'figure':<48} {'engine':<7} " + " ".join(f"{s:>8}" for s in sizes)
          + f" {'x':>7}")
    verdicts = []
    engines = list(out["sizes"][sizes[0]]["engines"])
    for engine in engines:
        first = out["sizes"][sizes[0]]["engines"][engine]
        for key, name, _, _ in rows(first, out["ticks"], out["sketches"]):
            key = key.removesuffix("_rescan")
            found = [out["sizes"][s]["engines"][engine].get(key) for s in sizes]
            if any(f is None for f in found) or (name.endswith("no sketches") and
                                                 out["sketches"] and "tick" in key):
                continue
            values = [seconds(f) for f in found]
            ratio = values[-1] / values[0] if values[0] else float("inf")
            verdict = ""
            if key.startswith("tick_") and out["sketches"]:
                ok = ratio <= TICK_GROWTH
                verdicts.append(ok)
                verdict = f"  <= {TICK_GROWTH:g}x {'PASS' if ok else 'FAIL'}"
            print(f"{name:<48} {engine:<7} " + " ".join(f"{v:>8.2f}" for v in values)
                  + f" {ratio:>6.1f}x{verdict}")
    return verdicts


def report(out: dict[str, Any]) -> None:
    m = out["machine"]
    print(f"\nmachine: {m['cores']} cores, {m['memory_gib']} GiB, load average "
          f"{m['load_at_start'][0]:.1f} at start, {m['load_at_end'][0]:.1f} at end; "
          f"nbregistry {m['commit']}; sketches: {'yes' if out['sketches'] else 'no'}")
    verdicts: list[bool] = []
    for size, found in out["sizes"].items():
        build = found["build"]["built"]
        rate = found["rows"] / build["log_predictions_s"] if build["log_predictions_s"] else 0
        print(f"\n{size}: {found['rows']:,} predictions over 90 days, built in "
              f"{found['build']['wall_s']:.0f} s (log_predictions {rate:,.0f} rows/s, "
              f"{build['bytes'] / GIB:.1f} GiB on disk)")
        for engine, figures in found["engines"].items():
            verdicts += table(size, engine, figures, out["ticks"], out["sketches"])
    verdicts += growth(out)
    passed = sum(verdicts)
    print(f"\n{passed} of {len(verdicts)} targets PASS"
          + ("" if passed == len(verdicts) else f", {len(verdicts) - passed} FAIL"))
