"""Helpers shared by both halves of the benchmark: standard library only, because the MLflow
half imports this module from its own virtual environment."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLD_SCRIPT = HERE / "cold.py"
Value = float | int | str | None


@dataclass(frozen=True)
class Workload:
    """How much work each side does; ``--quick`` scales every count down."""

    versions: int  # step 1: versions of model "m" (also the number of aliases, step 2)
    read_calls: int  # step 4: calls per read figure
    search_calls: int  # step 5: calls of search-one-model
    stage_calls: int  # step 3: MLflow stage transitions
    scale_models: int  # step 6: models in the scale-up registry ...
    scale_per_model: int  # ... times versions of each
    scale_search_calls: int  # step 6: calls of search-all
    cold_runs: int  # step 6: fresh processes per cold figure
    workers: int  # step 7: processes ...
    per_worker: int  # ... times (register + set_alias) each
    speed_versions: int = 200  # step 0 (issue 18): registrations with a tag, alias moves, reads
    speed_reopens: int = 20  # step 0: new handles (clients) opened in the warm process

    @property
    def scale_versions(self) -> int:
        return self.scale_models * self.scale_per_model


SPEED_ROUNDS = 3  # step 0 runs this many times, alternating sides (see run.py)
FULL = Workload(versions=1000, read_calls=500, search_calls=20, stage_calls=200,
                scale_models=100, scale_per_model=100, scale_search_calls=5, cold_runs=5,
                workers=8, per_worker=25)
QUICK = Workload(versions=200, read_calls=200, search_calls=10, stage_calls=50,
                 scale_models=20, scale_per_model=100, scale_search_calls=3, cold_runs=3,
                 workers=8, per_worker=5)


def workload(quick: bool) -> Workload:
    return QUICK if quick else FULL


SPEED_TAGS = {"team": "risk"}  # step 0 registers every version with this tag


def tiny_model(i: int) -> dict[str, Any]:
    """The 'model' both sides register: a small dict, distinct per version."""
    return {"kind": "logreg", "coef": [0.01 * i, -0.5, 0.25, 1.0], "intercept": 0.1 * i,
            "classes": [0, 1]}


def side_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="the smaller smoke-test workload")
    parser.add_argument("--out", required=True, help="write the JSON result here")
    parser.add_argument("--workdir", required=True, help="empty folder for this side's data")
    parser.add_argument("--phase", choices=("speed", "rest", "all"), default="all",
                        help="step 0 only, the other steps only, or everything")
    return parser.parse_args()


def nearest_rank(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def summary_ms(samples: list[float]) -> dict[str, float]:
    """Median, p95, p99 and max of latencies given in seconds, in milliseconds."""
    ms = sorted(s * 1e3 for s in samples)
    return {"n": len(ms), "median": statistics.median(ms), "p95": nearest_rank(ms, 0.95),
            "p99": nearest_rank(ms, 0.99), "max": ms[-1], "mean": statistics.fmean(ms)}


def time_each(fn: Callable[[int], Any], items: Iterable[int]) -> list[float]:
    """Seconds taken by ``fn(i)`` for each i."""
    out = []
    clock = time.perf_counter
    for i in items:
        start = clock()
        fn(i)
        out.append(clock() - start)
    return out


def progress(side: str, message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {side}: {message}", file=sys.stderr, flush=True)


@dataclass
class Results:
    side: str
    version: str
    quick: bool
    figures: dict[str, Value] = field(default_factory=dict)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def latency(self, key: str, samples: list[float]) -> dict[str, float]:
        """Store ``key_med`` and ``key_p95`` (ms) and the full summary."""
        summary = self.stats[key] = summary_ms(samples)
        self.figures[f"{key}_med"] = summary["median"]
        self.figures[f"{key}_p95"] = summary["p95"]
        progress(self.side, f"{key}: median {summary['median']:.3f} ms, "
                            f"p95 {summary['p95']:.3f} ms (n={summary['n']})")
        return summary

    def median(self, key: str, samples: list[float]) -> float:
        """Store only the median (ms) under ``key``."""
        self.stats[key] = summary_ms(samples)
        value = self.figures[key] = self.stats[key]["median"]
        progress(self.side, f"{key}: median {value:.3f} ms (n={len(samples)})")
        return value

    def value(self, key: str, value: Value) -> None:
        self.figures[key] = value
        progress(self.side, f"{key}: {value}")

    def write(self, path: str) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")


def cold_runs(results: Results, python: str, prefix: str, uri: str, other: str,
              runs: int) -> None:
    """Fresh processes of cold.py: ``import`` alone, then import + open + resolve one alias.

    Figures (ms, medians over ``runs``): ``import``, ``cold_open_resolve`` (timed inside the
    process, after the top-level import: what the open itself imports is included),
    ``cold_open_resolve_noimport`` (after the process opened ``other``, another registry,
    so every module is imported) and ``cold_process_wall`` (the whole process)."""
    imports, opens, bare, walls = [], [], [], []
    for _ in range(runs):
        imports.append(_run_cold(python, f"{prefix}-import", "")["import_s"])
    for _ in range(runs):
        start = time.perf_counter()
        out = _run_cold(python, f"{prefix}-open", uri)
        walls.append(time.perf_counter() - start)
        opens.append(out["open_resolve_s"])
        if out.get("version") is None:
            raise RuntimeError(f"cold resolve returned no version: {out}")
        bare.append(_run_cold(python, f"{prefix}-imported", uri, other)["open_resolve_s"])
    results.median("import", imports)
    results.median("cold_open_resolve", opens)
    results.median("cold_open_resolve_noimport", bare)
    results.median("cold_process_wall", walls)


def _run_cold(python: str, mode: str, *args: str) -> dict[str, Any]:
    # Python's bytecode cache on, as for any user: without it every nbregistry module is
    # compiled again in each fresh process (MLflow's were compiled when pip installed them)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([python, str(COLD_SCRIPT), mode, *args], capture_output=True,
                          text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"cold.py {mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
