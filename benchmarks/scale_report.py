"""The tables ``monitoring_scale.py`` prints: one per size and engine, then how each figure
grows from the smallest size to the largest. Standard library only."""

from __future__ import annotations

import statistics
from typing import Any

GIB = 1024 ** 3
ENGINES = {"duckdb": "DuckDB in process", "sail": "Spark via Sail (local-cluster)",
           "sail-local": "Spark via Sail (local mode)"}
TICK_GROWTH = 2.0   # a tick on the largest table may cost at most this times the smallest's
RSS_BOUND = 2 * GIB
# the questions, in order: (key, label, target seconds or None)
READS = [("drift_day", "drift() of one day", 2.0),
         ("performance_30d", "performance(None) over 30 days", 10.0),
         ("performance_30d_daily", 'performance("1d") over 30 days', None),
         ("fairness_30d", "fairness() over 30 days", None)]
AFTER = [("check", "check() of the 30d window, first (no sketches)", None),
         ("check_warm", "check() of the 30d window again, warm sketches", 2.0),
         ("sketch", "sketch() of the 60 days before the window", None),
         ("drift_day_warm", "drift() of one day, warm sketches", 2.0)]


def rows(ticks: list[int]) -> list[tuple[str, str, float | None]]:
    """(key, label, target seconds) of every row of a size-and-engine table."""
    return [*READS, *AFTER,
            *((f"tick_{n}", f"tick of {n:,} new rows: sketch() + check()", None)
              for n in ticks),
            ("watch_first", "watcher, first tick (performance, fairness too)", None),
            *((f"watch_{n}", f"watcher tick after {n:,} new rows", None) for n in ticks)]


def seconds(figure: dict[str, Any]) -> float:
    """The judged figure: the first call in a fresh process (what a scheduled job or a new
    kernel gets; the process's imports and the registry's open are not in it)."""
    return float(figure["times"][0])


def again(figure: dict[str, Any]) -> str:
    """The same question asked again in that process (a notebook, a watcher), median."""
    later = figure["times"][1:]
    return f"{statistics.median(later):>7.2f} s" if later else f"{'':>9}"


def _detail(figure: dict[str, Any]) -> str:
    info = figure.get("info", {})
    if "rows" in info:
        return f"{info['rows']:,} rows"
    if "figures" not in info:
        return f"{info['sketched']} file(s) sketched" if "sketched" in info else ""
    text = f"{info['figures']} figures, {info['alerts']} alerts"
    if "sketch_s" in info:  # a tick: its parts (the append is not in the figure)
        text += (f"; sketch() {info['sketch_s']:.2f} s (the append: "
                 f"{info['append_s']:.2f} s)")
    return text


def _rss(figure: dict[str, Any]) -> str:
    text = f"{figure['peak_rss'] / GIB:.2f}"
    if figure.get("server_peak_rss"):
        text += f" + server {figure['server_peak_rss'] / GIB:.2f}"
    return text + " GiB"


def table(size: str, engine: str, figures: dict[str, Any], ticks: list[int]) -> list[bool]:
    """Print one size-and-engine table; the verdicts it judged."""
    print(f"\n== {size} rows, {ENGINES.get(engine, engine)} ==")
    print(f"{'figure':<48} {'fresh':>9} {'again':>9} {'target':>8} {'':>4}  "
          f"{'peak RSS':<24} read")
    verdicts = []
    for key, name, target in rows(ticks):
        figure = figures.get(key)
        if figure is None or figure.get("error"):
            if target is not None:
                verdicts.append(False)
            why = "not measured" if figure is None else f"failed ({figure['error']})"
            print(f"{name:<48} {why}")
            continue
        value = seconds(figure)
        ok = None if target is None else value <= target
        if ok is not None:
            verdicts.append(ok)
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        limit = "" if target is None else f"<= {target:g} s"
        print(f"{name:<48} {value:>7.2f} s {again(figure)} {limit:>8} "
              f"{verdict:>4}  {_rss(figure):<24} {_detail(figure)}")
    peaks = [max(f["peak_rss"], f.get("server_peak_rss") or 0) for f in figures.values()]
    bounded = max(peaks) <= RSS_BOUND
    verdicts.append(bounded)
    print(f"{'peak RSS of any question (process or server)':<48} {max(peaks) / GIB:>7.2f} GiB "
          f"{'':>9} {'<= 2 GiB':>8} {'PASS' if bounded else 'FAIL':>4}")
    return verdicts


def growth(out: dict[str, Any]) -> list[bool]:
    """How each figure grows with the table; for ticks a verdict (the cost of a tick must
    follow the new rows, not the table)."""
    sizes = list(out["sizes"])
    if len(sizes) < 2:
        return []
    print(f"\n== growth from {sizes[0]} to {sizes[-1]} rows (seconds, fresh process) ==")
    print(f"{'figure':<48} {'engine':<7} " + " ".join(f"{s:>8}" for s in sizes)
          + f" {'x':>7}")
    verdicts = []
    for engine in out["sizes"][sizes[0]]["engines"]:
        for key, name, _ in rows(out["ticks"]):
            found = [out["sizes"][s]["engines"].get(engine, {}).get(key) for s in sizes]
            judged = key.startswith("tick_") or (key.startswith("watch_") and
                                                 key != "watch_first")
            if any(f is None or f.get("error") for f in found):
                if judged:
                    verdicts.append(False)
                    print(f"{name:<48} {engine:<7} failed at some size  FAIL")
                continue
            values = [seconds(f) for f in found]
            ratio = values[-1] / values[0] if values[0] else float("inf")
            verdict = ""
            if judged:
                ok = ratio <= TICK_GROWTH
                verdicts.append(ok)
                verdict = f"  <= {TICK_GROWTH:g}x {'PASS' if ok else 'FAIL'}"
            print(f"{name:<48} {engine:<7} " + " ".join(f"{v:>8.2f}" for v in values)
                  + f" {ratio:>6.1f}x{verdict}")
    return verdicts


def report(out: dict[str, Any]) -> None:
    m = out["machine"]
    at_end = m.get("load_at_end", [float("nan")])[0]   # absent while a run is going on
    print(f"\nmachine: {m['cores']} cores, {m['memory_gib']} GiB, load average "
          f"{m['load_at_start'][0]:.1f} at start, {at_end:.1f} at end; "
          f"nbregistry {m['commit']}")
    verdicts: list[bool] = []
    for size, found in out["sizes"].items():
        build = found["build"]["built"]
        rate = found["rows"] / build["log_predictions_s"] if build["log_predictions_s"] else 0
        print(f"\n{size}: {found['rows']:,} predictions over 90 days, built in "
              f"{found['build']['wall_s']:.0f} s (log_predictions {rate:,.0f} rows/s, "
              f"{build['bytes'] / GIB:.1f} GiB on disk)")
        for engine, figures in found["engines"].items():
            verdicts += table(size, engine, figures, out["ticks"])
    verdicts += growth(out)
    passed = sum(verdicts)
    print(f"\n{passed} of {len(verdicts)} targets PASS"
          + ("" if passed == len(verdicts) else f", {len(verdicts) - passed} FAIL"))
