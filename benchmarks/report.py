"""Turn the two sides' figures into the side-by-side table, the scaling table and the
PASS/FAIL target lines (plain text for the terminal, markdown for benchmarks/results/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common import Value, Workload

READ_TARGET = 5.0  # every read at least this many times faster than MLflow (warm)
WRITE_MEDIAN_MS, WRITE_P95_MS = 30.0, 60.0
SCALE_LIMIT = 2.0  # no figure more than this many times worse at the scale-up size
CONCURRENT_LIMIT_S = 60.0
COLD_OPEN_LIMIT_MS = 150.0  # issue 18: open + resolve at 10,000 versions, imports excluded


@dataclass(frozen=True)
class Goal:
    """One row of the issue-18 table: a ratio MLflow/nbregistry to reach, or a limit."""

    key: str
    label: str
    ratio: float | None = None  # at least this many times faster than MLflow
    limit_ms: float | None = None  # at most this many ms


def goals(wl: Workload) -> list[Goal]:
    n, big = wl.speed_versions, f"{wl.scale_versions:,}"
    return [
        Goal("speed_register_med", "register p50", ratio=2.0),
        Goal("speed_register_p95", "register p95", ratio=2.0),
        Goal("speed_alias_med", "set alias p50", ratio=8.0),
        Goal("speed_resolve", "resolve alias", ratio=100.0),
        Goal("speed_get", "get version", ratio=100.0),
        Goal("speed_search_one", f"search one model ({n} versions)", ratio=50.0),
        Goal("speed_reopen", f"reopen in a warm process + resolve ({2 * n + 1} events)",
             ratio=1.0),
        Goal("cold_open_resolve_noimport",
             f"cold process, open + resolve @{big} + as many alias moves (imports excluded)",
             limit_ms=COLD_OPEN_LIMIT_MS),
        Goal("cold_open_resolve",
             f"cold process, open + resolve @{big} (what opening imports included)"),
    ]


def goal_table(wl: Workload, nbr: dict[str, Value], mlf: dict[str, Value]
               ) -> tuple[list[list[str]], list[tuple[bool | None, str]]]:
    """The issue-18 rows (nbregistry, MLflow, ratio, target, verdict) and their checks."""
    out = [["issue 18", "nbregistry", "MLflow", "ratio (MLflow/nbr)", "target", ""]]
    checks: list[tuple[bool | None, str]] = []
    for goal in goals(wl):
        ours, theirs = nbr.get(goal.key), mlf.get(goal.key)
        r = ratio(ours, theirs)
        ok: bool | None = None
        target = ""
        if goal.ratio is not None:
            target = f">= {goal.ratio:g}x"
            ok = None if r is None else r >= goal.ratio
        elif goal.limit_ms is not None:
            target = f"<= {goal.limit_ms:g} ms"
            ok = ours <= goal.limit_ms if isinstance(ours, int | float) else None
        out.append([goal.label, fmt(ours, "ms"), fmt(theirs, "ms"), fmt_ratio(r), target,
                    verdict(ok).strip() if target else ""])
        if target:
            checks.append((ok, f"issue 18: {goal.label}: {fmt(ours, 'ms')} "
                               f"(MLflow {fmt(theirs, 'ms')}, {fmt_ratio(r) or 'n/a'}), "
                               f"target {target}"))
    return out, checks


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str  # "ms" (stored in ms, shown adaptively), "s", "n" (count) or "text"


def rows(wl: Workload) -> list[Row]:
    n, big = f"{wl.versions:,}", f"{wl.scale_versions:,}"
    return [
        Row("register_med", f"1. create version, median (@{n})", "ms"),
        Row("register_p95", f"1. create version, p95 (@{n})", "ms"),
        Row("register_scale_med", f"1. create version, median (last {n} of {big})", "ms"),
        Row("register_scale_p95", f"1. create version, p95 (last {n} of {big})", "ms"),
        Row("alias_med", f"2. set alias, median (@{n})", "ms"),
        Row("alias_p95", f"2. set alias, p95 (@{n})", "ms"),
        Row("alias_scale_med", f"2. set alias, median (@{big})", "ms"),
        Row("alias_scale_p95", f"2. set alias, p95 (@{big})", "ms"),
        Row("stage_med", "3. promote to staging, median", "ms"),
        Row("stage_p95", "3. promote to staging, p95", "ms"),
        Row("resolve_small", f"4. resolve alias (@{n})", "ms"),
        Row("resolve_scale", f"4. resolve alias (@{big})", "ms"),
        Row("get_small", f"4. get version by number (@{n})", "ms"),
        Row("get_scale", f"4. get version by number (@{big})", "ms"),
        Row("search_one_small", f"5. search one model: {n} of {n} versions", "ms"),
        Row("search_one_scale", f"5. search one model: {wl.scale_per_model:,} of {big}", "ms"),
        Row("search_all_small", f"6. search all: {n} versions", "ms"),
        Row("search_all_scale", f"6. search all: {big} versions", "ms"),
        Row("build_scale_s", f"6. build {big} versions ({wl.scale_models} models)", "s"),
        Row("import", "6. import time (fresh process)", "ms"),
        Row("cold_open_resolve", f"6. cold open + resolve (@{big}, in-process)", "ms"),
        Row("cold_open_resolve_noimport", f"6. cold open + resolve (@{big}, imports excluded)",
            "ms"),
        Row("cold_process_wall", f"6. cold open + resolve (@{big}, process wall)", "ms"),
        Row("concurrent_wall_s", f"7. {wl.workers}x{wl.per_worker} concurrent: wall", "s"),
        Row("concurrent_work_s", f"7. {wl.workers}x{wl.per_worker} concurrent: work window",
            "s"),
        Row("concurrent_failures", "7. concurrent: failed operations", "n"),
        Row("concurrent_check", "7. concurrent: afterwards", "text"),
    ]


def fmt(value: Value, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if unit == "n":
        return f"{int(value)}"
    if unit == "s":
        return f"{value:.1f} s"
    if value < 1:
        return f"{value * 1000:.1f} µs"
    if value < 1000:
        return f"{value:.{2 if value < 10 else 1}f} ms"
    return f"{value / 1000:.2f} s"


def ratio(ours: Value, theirs: Value) -> float | None:
    if isinstance(ours, int | float) and isinstance(theirs, int | float) and ours > 0:
        return float(theirs) / float(ours)
    return None


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}x" if value >= 100 else f"{value:.{1 if value >= 10 else 2}f}x"


def main_table(wl: Workload, nbr: dict[str, Value], mlf: dict[str, Value]) -> list[list[str]]:
    out = [["figure", "nbregistry", "MLflow", "ratio (MLflow/nbr)"]]
    for row in rows(wl):
        ours, theirs = nbr.get(row.key), mlf.get(row.key)
        show = row.unit in {"ms", "s"}
        out.append([row.label, fmt(ours, row.unit), fmt(theirs, row.unit),
                    fmt_ratio(ratio(ours, theirs)) if show else ""])
    return out


SCALED = [("register_med", "register_scale_med", "create version, median"),
          ("register_p95", "register_scale_p95", "create version, p95"),
          ("alias_med", "alias_scale_med", "set alias, median"),
          ("alias_p95", "alias_scale_p95", "set alias, p95"),
          ("resolve_small", "resolve_scale", "resolve alias"),
          ("get_small", "get_scale", "get version by number"),
          ("search_one_small", "search_one_scale", "search one model (raw)"),
          ("search_all_small", "search_all_scale", "search all, per 1,000 rows")]


def scaled_pairs(wl: Workload, figures: dict[str, Value]) -> list[tuple[str, Value, Value]]:
    """(label, figure at the small size, figure at the scale-up size), search-all per 1k rows."""
    out = []
    for small, big, label in SCALED:
        a, b = figures.get(small), figures.get(big)
        if small == "search_all_small" and isinstance(a, int | float) and isinstance(
                b, int | float):
            a, b = a * 1000 / wl.versions, b * 1000 / wl.scale_versions
        out.append((label, a, b))
    return out


def scaling_table(wl: Workload, nbr: dict[str, Value], mlf: dict[str, Value]
                  ) -> list[list[str]]:
    n, big = f"@{wl.versions:,}", f"@{wl.scale_versions:,}"
    out = [["figure", f"nbr {n}", f"nbr {big}", "nbr growth", f"MLflow {n}", f"MLflow {big}",
            "MLflow growth"]]
    for (label, a, b), (_, c, d) in zip(scaled_pairs(wl, nbr), scaled_pairs(wl, mlf),
                                        strict=True):
        out.append([label, fmt(a, "ms"), fmt(b, "ms"), fmt_ratio(ratio(a, b)),
                    fmt(c, "ms"), fmt(d, "ms"), fmt_ratio(ratio(c, d))])
    return out


def targets(wl: Workload, nbr: dict[str, Value], mlf: dict[str, Value]
            ) -> list[tuple[bool | None, str]]:
    """(passed, line); passed is None when a figure is missing."""
    out: list[tuple[bool | None, str]] = list(goal_table(wl, nbr, mlf)[1])
    labels = {r.key: r.label for r in rows(wl)}
    for key in ("resolve_small", "get_small", "search_one_small", "search_all_small",
                "resolve_scale", "get_scale", "search_one_scale", "search_all_scale"):
        r = ratio(nbr.get(key), mlf.get(key))
        out.append((None if r is None else r >= READ_TARGET,
                    f"read >= {READ_TARGET:.0f}x faster than MLflow: {labels[key][3:]}: "
                    f"{fmt_ratio(r) or 'n/a'}"))
    for key, limit in (("register_med", WRITE_MEDIAN_MS), ("register_p95", WRITE_P95_MS),
                       ("alias_med", WRITE_MEDIAN_MS), ("alias_p95", WRITE_P95_MS),
                       ("register_scale_med", WRITE_MEDIAN_MS),
                       ("register_scale_p95", WRITE_P95_MS),
                       ("alias_scale_med", WRITE_MEDIAN_MS), ("alias_scale_p95", WRITE_P95_MS)):
        value = nbr.get(key)
        ok = value <= limit if isinstance(value, int | float) else None
        out.append((ok, f"write <= {limit:.0f} ms: {labels[key][3:]}: {fmt(value, 'ms')}"))
    for label, a, b in scaled_pairs(wl, nbr):
        r = ratio(a, b)
        out.append((None if r is None else r <= SCALE_LIMIT,
                    f"<= {SCALE_LIMIT:.0f}x worse @{wl.scale_versions:,} than "
                    f"@{wl.versions:,}: {label}: {fmt(a, 'ms')} -> {fmt(b, 'ms')} "
                    f"({fmt_ratio(r) or 'n/a'})"))
    wall, check = nbr.get("concurrent_wall_s"), nbr.get("concurrent_check")
    out.append((wall <= CONCURRENT_LIMIT_S if isinstance(wall, int | float) else None,
                f"{wl.workers}x{wl.per_worker} concurrent <= {CONCURRENT_LIMIT_S:.0f} s: "
                f"{fmt(wall, 's')}"))
    out.append((isinstance(check, str) and check.startswith("ok")
                and nbr.get("concurrent_failures") == 0,
                f"{wl.workers}x{wl.per_worker} concurrent: no failures, versions 1.."
                f"{wl.workers * wl.per_worker}, verify ok: {check}"))
    return out


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "N/A "}[ok]


def text_table(table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = []
    for n, r in enumerate(table):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:],
                                                                       strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def md_table(table: list[list[str]]) -> str:
    head, *body = table
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(
        [":---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def render(wl: Workload, meta: dict[str, Any], nbr: dict[str, Value],
           mlf: dict[str, Value], *, markdown: bool) -> str:
    table = md_table if markdown else text_table
    checks = targets(wl, nbr, mlf)
    passed = sum(ok is True for ok, _ in checks)
    source = f" ({meta['nbregistry_source']})" if meta.get("nbregistry_source") else ""
    header = (f"nbregistry {meta['nbregistry']}{source} vs MLflow {meta['mlflow']} (SQLite) — "
              f"{'QUICK (scaled-down) ' if meta['quick'] else ''}run {meta['started']}, "
              f"{meta['cpus']} CPUs, Python {meta['python']}")
    parts = [f"# {header}" if markdown else header, "",
             table(goal_table(wl, nbr, mlf)[0]), "",
             table(main_table(wl, nbr, mlf)), "",
             "Growth with registry size (scale-up vs small registry):", "",
             table(scaling_table(wl, nbr, mlf)), "",
             f"Targets: {passed}/{len(checks)} PASS", ""]
    lines = [f"{verdict(ok)}  {line}" for ok, line in checks]
    parts.append("\n".join(f"- {x}" for x in lines) if markdown else "\n".join(lines))
    return "\n".join(parts) + "\n"
