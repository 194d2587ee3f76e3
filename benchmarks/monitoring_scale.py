"""Monitoring at scale: 1M, 10M and 100M logged predictions, on DuckDB in process and on
Spark through a local Sail server. One command:

    python benchmarks/monitoring_scale.py --rows 1e6,1e7,1e8 --work DIR
    python benchmarks/monitoring_scale.py --quick      # 1M rows only: a smoke run

Each size is built once into ``--work`` (through the registry: ``register`` with 13-feature
reference data, then ``mon.log_predictions`` in daily batches over 90 days, outcomes for the
first 60 days, a seal every 10 days) and reused by later runs. Each run measures on a
hard-linked clone of the built registry (a check writes), so the built one stays as built.
Every question runs in its own process; its peak RSS comes from ``os.wait4``, and on Sail
the server's own peak (``VmHWM``, reset before each question) is reported next to it. After
the questions: a first ``check()`` (it sketches the window's files), a second one (warm
sketches), ``sketch()`` of the older files, ticks (append N rows, then ``sketch()`` +
``check()``, each in a fresh process), and a watcher's ticks (``mon.watch()``'s, in one
process: the first, full, then one after each batch of N rows).
Writes ``benchmarks/results/monitoring-scale-latest[-quick].json``. The parent imports only
the standard library; ``scale_work.py`` does the work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_report import READS, report  # (stdlib only, like this file)

HERE = Path(__file__).resolve().parent
WORKER = HERE / "scale_work.py"
RESULTS = HERE / "results"
GIB = 1024 ** 3
BYTES_PER_ROW = 220          # measured ~170 (predictions, outcomes, compaction copies): margin
TICKS = (10_000, 100_000, 1_000_000)
TIMEOUT = 1800               # seconds: a question that takes longer is recorded as failed
CORES = str(os.cpu_count() or 2)
# the Sail servers an engine name starts: local-cluster runs a driver and its local workers
# (threads of one process, talking RPC), one worker per core; local runs plain threads
# (threads of one process, talking RPC), one worker per core; local runs plain threads. The
# memory pool is bounded so that the server cannot take the machine: its hash joins cannot
# spill, and at 100M rows a 1.5 GiB pool failed performance() and fairness(); 8 GiB passed
POOL = {"SAIL_RUNTIME__MEMORY_POOL__TYPE": "fair",
        "SAIL_RUNTIME__MEMORY_POOL__FAIR__MAX_SIZE": str(8 * GIB)}
SAIL = {"sail": {"SAIL_MODE": "local-cluster", "SAIL_CLUSTER__WORKER_INITIAL_COUNT": CORES,
                 "SAIL_EXECUTION__DEFAULT_PARALLELISM": CORES, **POOL},
        "sail-local": {"SAIL_MODE": "local", **POOL}}


def label(rows: int) -> str:
    return f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows / 1e3:g}k"


# -- processes -------------------------------------------------------------------------------
def child(kind: str, job: dict[str, Any], *, server: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    """Run one job of ``scale_work.py`` in a fresh process: its JSON and its peak RSS (and the
    Sail server's peak while it ran). A question that fails or runs past ``TIMEOUT`` is
    recorded with its ``error``; a build that fails stops the run."""
    if server is not None:
        _reset_peak(server["pid"])
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen([sys.executable, str(WORKER), kind, json.dumps(job)],
                                   stdout=subprocess.PIPE, env=env, text=True,
                                   stderr=None if kind == "build" else errors)
        timer = threading.Timer(TIMEOUT, process.kill)
        timer.start()
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        timer.cancel()
        process.returncode = code = os.waitstatus_to_exitcode(status)
        result: dict[str, Any] = {}
        if code == 0:
            result = json.loads(output.strip().splitlines()[-1])
        elif kind == "build":
            raise SystemExit(f"the build failed ({code})")
        else:
            errors.seek(0)
            tail = errors.read().strip().splitlines()[-1:] or [""]
            result["error"] = (f"timed out after {TIMEOUT} s" if code == -signal.SIGKILL
                               else f"exit {code}: {tail[0][:300]}")
    result["peak_rss"] = usage.ru_maxrss * 1024   # Linux reports KiB
    if server is not None:
        result["server_peak_rss"] = _peak(server["pid"])
    return result


def _reset_peak(pid: int) -> None:
    with contextlib.suppress(OSError):   # Linux >= 4.0; else the peak is since start
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _peak(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def start_sail(engine: str, log: Path) -> dict[str, Any]:
    """The Sail server of ``engine`` in a process of its own (its log in ``log``)."""
    env = {**os.environ, **SAIL[engine], "PYTHONPATH": str(HERE.parent / "src")}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, str(WORKER), "sail", "{}"], env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=sink, text=True)
    assert process.stdout is not None
    started: dict[str, Any] = json.loads(process.stdout.readline())
    started["process"] = process
    started["env"] = {k: v for k, v in env.items() if k.startswith("SAIL_")}
    return started


def stop_sail(server: dict[str, Any]) -> None:
    process: subprocess.Popen[str] = server["process"]
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the data --------------------------------------------------------------------------------
def ensure_base(work: Path, rows: int) -> dict[str, Any]:
    """The registry built for ``rows`` (built now unless ``work`` holds it already)."""
    base = work / f"base-{label(rows)}"
    manifest = work / f"base-{label(rows)}.json"
    if manifest.exists():
        return dict(json.loads(manifest.read_text()))
    if base.exists():   # a build that did not finish
        shutil.rmtree(base)
    work.mkdir(parents=True, exist_ok=True)
    need, free = rows * BYTES_PER_ROW, shutil.disk_usage(work).free
    if need > free - 5 * GIB:
        raise SystemExit(f"building {label(rows)} rows needs ~{need / GIB:.0f} GiB in {work}; "
                         f"{free / GIB:.0f} GiB are free")
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    print(f"building {rows:,} rows into {base} (once) ...", flush=True)
    started = time.perf_counter()
    built = child("build", {"root": str(base), "rows": rows, "end": end.isoformat()})
    info = {"rows": rows, "root": str(base), "end": end.isoformat(), "built": built,
            "wall_s": time.perf_counter() - started,
            "load_during_build": os.getloadavg()}
    manifest.write_text(json.dumps(info, indent=1))
    return info


def clone(base: Path, target: Path) -> None:
    """A copy of a built registry whose data files are hard links (Delta data files are never
    changed in place; the logs, hashes and the event log are copied)."""
    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".parquet") and "_delta_log" not in src and "_registry" not in src:
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(base, target, copy_function=link_or_copy)


# -- measuring -------------------------------------------------------------------------------
def measure(base: dict[str, Any], work: Path, engine: str, server: dict[str, Any] | None,
            ticks: tuple[int, ...], repeat: int) -> dict[str, Any]:
    """Every figure of one size on one engine, on a fresh clone of the built registry (built
    without sketches, as a table logged before continuous monitoring was switched on)."""
    run = work / f"run-{label(base['rows'])}-{engine}"
    clone(Path(base["root"]), run)
    job = {"root": str(run), "end": base["end"], "engine": server["url"] if server else None}
    figures: dict[str, Any] = {}

    def ask(key: str, question: str, **more: Any) -> None:
        print(f"  {label(base['rows'])} {engine}: {key}", flush=True)
        figures[key] = child("question", {**job, "question": question, **more}, server=server)

    try:
        for key, _, _ in READS:
            ask(key, key, repeat=repeat, repeat_below=5.0)
        ask("check", "check")            # the first: sketches the window's files as it goes
        ask("check_warm", "check", repeat=2)   # fresh, then in the same process
        ask("sketch", "sketch")          # the files before the window
        ask("drift_day_warm", "drift_day", repeat=repeat, repeat_below=5.0)
        for i, n in enumerate(ticks):   # rows land (another process), then a check runs
            landed = child("append", {**job, "n": n, "seed": 900_000 + i, "span_s": 3600})
            ask(f"tick_{n}", "tick")
            if "info" in figures[f"tick_{n}"]:
                figures[f"tick_{n}"]["info"]["append_s"] = landed.get("log_predictions_s")
        ask("watch", "watch", ticks=list(ticks), seed=950_000)
        figures.update(watcher_figures(figures.pop("watch")))
    finally:
        shutil.rmtree(run, ignore_errors=True)
    return figures


def watcher_figures(found: dict[str, Any]) -> dict[str, Any]:
    """One figure per watcher tick (they ran in one process, which had one peak RSS)."""
    common = {k: found[k] for k in ("peak_rss", "server_peak_rss", "setup_s", "error")
              if k in found}
    if "error" in found:
        return {"watch_first": common}
    info = found["info"]
    out = {"watch_first": {**common, "times": [info["first_s"]], "info": {}}}
    for n, tick in info["ticks"].items():
        out[f"watch_{n}"] = {**common, "times": [tick["s"]],
                             "info": {"sketched": tick["sketched"]}}
    return out


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "src"],
                           capture_output=True, text=True).stdout.strip()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cores": os.cpu_count(), "memory_gib": round(memory / GIB, 1),
            "load_at_start": os.getloadavg(), "commit": commit + ("+dirty" if dirty else ""),
            "python": sys.version.split()[0],
            "started": datetime.now(UTC).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1e6,1e7,1e8",
                        help="table sizes, comma-separated (default 1e6,1e7,1e8)")
    parser.add_argument("--work", default=str(RESULTS / "scale-data"),
                        help="where the built registries are kept between runs")
    parser.add_argument("--engines", default="duckdb,sail",
                        help="duckdb, sail (Sail local-cluster), sail-local (Sail local mode)")
    parser.add_argument("--quick", action="store_true", help="1M rows only: a smoke run")
    parser.add_argument("--json", help="where to write the figures (default: "
                        "benchmarks/results/monitoring-scale-latest[-quick].json)")
    parser.add_argument("--build-only", action="store_true",
                        help="build the sizes missing from --work, measure nothing")
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [int(float(r)) for r in args.rows.split(",")]
    engines = args.engines.split(",")
    work = Path(args.work).resolve()
    ticks = (1_000, 10_000, 100_000) if args.quick else TICKS
    if args.build_only:
        for rows in sizes:
            ensure_base(work, rows)
        return
    out: dict[str, Any] = {"machine": machine(), "ticks": list(ticks), "quick": args.quick,
                           "sizes": {}}
    servers = {e: start_sail(e, work / f"{e}.log") for e in engines if e in SAIL}
    out["sail"] = {e: server["env"] for e, server in servers.items()}
    path = Path(args.json) if args.json else RESULTS / (
        "monitoring-scale-latest-quick.json" if args.quick else "monitoring-scale-latest.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        for rows in sizes:
            base = ensure_base(work, rows)
            found = out["sizes"][label(rows)] = {"rows": rows, "build": base, "engines": {}}
            for engine in engines:
                found["engines"][engine] = measure(base, work, engine, servers.get(engine),
                                                   ticks, 1 if args.quick else 3)
                path.write_text(json.dumps(out, indent=1, default=str))   # so far
    finally:
        for server in servers.values():
            stop_sail(server)
    out["machine"]["load_at_end"] = os.getloadavg()
    path.write_text(json.dumps(out, indent=1, default=str))
    report(out)
    print(f"\nfigures: {path}")


if __name__ == "__main__":
    main()
