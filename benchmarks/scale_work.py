"""The child processes of ``monitoring_scale.py``: build a monitored registry, ask one
question, serve Sail. ``python scale_work.py KIND 'JOB-JSON'`` prints one JSON line.

Everything here goes through the public API (``open_registry``, ``register``,
``reg.monitor(...)``), as a notebook or a scheduled job would.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import drift_bench  # noqa: E402  (the data generator: stdlib-only at import)

MODEL = "scale"
DAYS = 90
OUTCOME_DAYS = 60            # outcomes exist for the predictions of the first 60 days ...
OUTCOME_DELAY = timedelta(days=30)   # ... and arrive 30 days after them (maturity_days)
SHIFT_FROM = 75              # from this day on, x0, x1 and c0 carry drift_bench's shift
REFERENCE_ROWS = 100_000
BATCH = 1_200_000            # rows per log_predictions call (one file each)
SEAL_EVERY = 10              # days: the build seals as a daily job would, so file hashes
#                              are remembered and a check seals only what is new
FEATURES = [*drift_bench.NUMERIC, *drift_bench.CATEGORICAL]
DAY = timedelta(days=1)
US = timedelta(microseconds=1)
POLICY = {"window": "30d", "maturity_days": 30, "fairness_group": "sex",
          "fairness_favorable": 1, "min_rows": 200}


class ScoreModel:
    """Stands in for the fitted model: ``drift_bench.make_rows``'s score as predict_proba
    (so the frozen baseline has a score distribution, as a real classifier's would)."""

    def predict_proba(self, data: Any) -> Any:
        import numpy as np
        import pyarrow as pa

        table = pa.table(data)
        logit = (0.8 * table["x0"].to_numpy() + 0.5 * (np.log(table["x1"].to_numpy()) - 10)
                 + 0.3 * (table["x2"].to_numpy() - 0.5))
        p = 1 / (1 + np.exp(-logit))
        return np.column_stack([1 - p, p])


def day_counts(rows: int, days: int = DAYS) -> list[int]:
    base, extra = divmod(rows, days)
    return [base + (1 if day < extra else 0) for day in range(days)]


# -- build -------------------------------------------------------------------------------------
def build(job: dict[str, Any]) -> dict[str, Any]:
    """A registry with the model registered (13-feature reference data, frozen baseline) and
    ``rows`` predictions over ``DAYS`` days ending at ``end``, logged in daily batches."""
    import nbregistry as nbr

    end = datetime.fromisoformat(job["end"])
    reg = nbr.open_registry(job["root"], user="bench", create=True)
    reference = drift_bench.make_rows(REFERENCE_ROWS, 1, shifted=False)
    started = time.perf_counter()
    reg.register(ScoreModel(), MODEL, reference_data=reference.select(FEATURES),
                 reference_target=reference["label"], description="monitoring_scale.py")
    reg.set_policy({**reg.policy.source, "monitoring": POLICY})
    out: dict[str, Any] = {"register_s": time.perf_counter() - started, "generate_s": 0.0,
                           "log_predictions_s": 0.0, "log_outcomes_s": 0.0, "seal_s": 0.0,
                           "batches": 0, "outcomes": 0}
    mon = reg.monitor(MODEL)
    for day, count in enumerate(day_counts(job["rows"])):
        for part, size in enumerate(_parts(count)):
            log_batch(mon, size, end - (DAYS - day) * DAY, DAY, seed=1000 * day + part,
                      shifted=day >= SHIFT_FROM, outcomes=day < OUTCOME_DAYS, out=out)
        if (day + 1) % SEAL_EVERY == 0 or day == DAYS - 1:
            started = time.perf_counter()
            mon.seal()
            out["seal_s"] += time.perf_counter() - started
        if (day + 1) % 10 == 0:
            print(f"  day {day + 1}/{DAYS}", file=sys.stderr, flush=True)
    out["build_s"] = sum(out[k] for k in ("register_s", "generate_s", "log_predictions_s",
                                          "log_outcomes_s", "seal_s"))
    out["bytes"] = _size(Path(job["root"]))
    return out


def _parts(count: int) -> list[int]:
    parts = -(-count // BATCH) or 1
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def log_batch(mon: Any, size: int, start: datetime, span: timedelta, *, seed: int,
              shifted: bool, outcomes: bool, out: dict[str, Any]) -> None:
    """``size`` rows dated in ``[start, start + span)`` through ``mon.log_predictions``;
    with ``outcomes``, their outcomes too (dated ``OUTCOME_DELAY`` later)."""
    import numpy as np
    import pyarrow as pa

    started = time.perf_counter()
    rng = np.random.default_rng(seed + 7)
    rows = drift_bench.make_rows(size, seed, shifted=shifted)
    first = (start - datetime(1970, 1, 1, tzinfo=UTC)) // US
    offsets = np.sort(rng.integers(0, span // US, size))
    ts = pa.array(first + offsets, pa.timestamp("us", tz="UTC"))
    out["generate_s"] += time.perf_counter() - started
    started = time.perf_counter()
    receipt = mon.log_predictions(rows.select([*FEATURES, "sex"]), rows["score"],
                                  labels=rows["label"], attributes=["sex"], ts=ts)
    out["log_predictions_s"] += time.perf_counter() - started
    out["batches"] += 1
    if outcomes:
        actual = (rng.random(size) < rows["score"].to_numpy()).astype(np.int64)
        later = pa.array(first + OUTCOME_DELAY // US + offsets, pa.timestamp("us", tz="UTC"))
        started = time.perf_counter()
        mon.log_outcomes(receipt.ids, actual, ts=later)
        out["log_outcomes_s"] += time.perf_counter() - started
        out["outcomes"] += size


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# -- questions ---------------------------------------------------------------------------------
def _drift_day(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    result = mon.drift(end - DAY, end)
    rows = result.to_pylist()
    return {"rows": rows[0]["n"], "drifted": sorted(r["feature"] for r in rows
                                                      if r["drifted"])}


def _outcome_window(end: datetime) -> tuple[datetime, datetime]:
    """The newest 30 days whose predictions have outcomes (the last 30 have not matured)."""
    last = end - (DAYS - OUTCOME_DAYS) * DAY
    return last - 30 * DAY, last


def _performance(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    start, stop = _outcome_window(end)
    row = mon.performance(None, start=start, end=stop).to_pylist()[0]
    return {"rows": row["n"], "roc_auc": row["roc_auc"]}


def _performance_daily(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    start, stop = _outcome_window(end)
    rows = mon.performance("1d", start=start, end=stop).to_pylist()
    return {"windows": len(rows), "rows": sum(r["n"] for r in rows)}


def _fairness(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    rows = mon.fairness("sex", 1, start=end - 30 * DAY, end=end).to_pylist()
    return {"rows": sum(r["n"] for r in rows), "air": min(r["air"] for r in rows)}


def _check(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    result = mon.check(now=end)
    return {"figures": result.metrics.num_rows, "alerts": len(result.alerts),
            "notes": [n[:160] for n in result.notes]}


def _sketch(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    return {"sketched": mon.sketch()}


def _tick(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    """What a scheduled check does after new rows landed (``append``, in another process):
    sketch the new file, then check."""
    started = time.perf_counter()
    info: dict[str, Any] = {"sketched": mon.sketch()}
    info["sketch_s"] = time.perf_counter() - started
    info.update(_check(mon, end, job))
    return info


def _watch(mon: Any, end: datetime, job: dict[str, Any]) -> dict[str, Any]:
    """A watcher's ticks in one process (``mon.watch()`` runs exactly these): the first
    (full: performance and fairness too), then one after each batch of new rows, written by
    another process and dated in the minute before the tick (its short window)."""
    import subprocess

    from nbregistry.watch.watcher import Watcher

    watcher = Watcher(mon)
    started = time.perf_counter()
    watcher.tick(now=end)
    out: dict[str, Any] = {"first_s": time.perf_counter() - started, "ticks": {}}
    for i, n in enumerate(job["ticks"]):
        batch = {**job, "n": n, "seed": job["seed"] + i, "span_s": 60}
        subprocess.run([sys.executable, __file__, "append", json.dumps(batch)], check=True,
                       stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        tick = watcher.tick(now=end)
        out["ticks"][str(n)] = {"s": time.perf_counter() - started, "sketched": tick.sketched,
                                "figures": tick.figures}
    return out


def append(job: dict[str, Any]) -> dict[str, Any]:
    """``n`` new rows dated in the ``span_s`` seconds before the end, as a service logs them."""
    import nbregistry as nbr

    reg = nbr.open_registry(job["root"], user="bench", create=False)
    span = timedelta(seconds=job["span_s"])
    out: dict[str, Any] = {"generate_s": 0.0, "log_predictions_s": 0.0, "batches": 0}
    log_batch(reg.monitor(MODEL), job["n"], datetime.fromisoformat(job["end"]) - span, span,
              seed=job["seed"], shifted=True, outcomes=False, out=out)
    return out


QUESTIONS: dict[str, Callable[[Any, datetime, dict[str, Any]], dict[str, Any]]] = {
    "drift_day": _drift_day, "performance_30d": _performance,
    "performance_30d_daily": _performance_daily, "fairness_30d": _fairness,
    "check": _check, "sketch": _sketch, "tick": _tick, "watch": _watch,
}


def question(job: dict[str, Any]) -> dict[str, Any]:
    """Open the registry, then time one question (``repeat`` times while it is quick)."""
    started = time.perf_counter()
    # one-off imports of a process, not of a question: drift's p-values, and pandas, which
    # pyarrow imports (when installed) at the first pa.array()/pa.scalar() of Python values
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401

    import nbregistry as nbr

    reg = nbr.open_registry(job["root"], user="bench", create=False)
    mon = reg.monitor(MODEL, engine=job.get("engine"))
    # one-offs of a process, not of a question: the frozen baseline, the Delta reader, the
    # engine's connection
    mon.baseline()
    mon.has_predictions()
    mon.connection()
    setup = time.perf_counter() - started
    end = datetime.fromisoformat(job["end"])
    ask = QUESTIONS[job["question"]]
    times: list[float] = []
    info: dict[str, Any] = {}
    for _ in range(job.get("repeat", 1)):
        started = time.perf_counter()
        info = ask(mon, end, job)
        times.append(time.perf_counter() - started)
        if times[0] > job.get("repeat_below", float("inf")):
            break
    if mon.engine is not None:
        mon.engine.session.stop()
    return {"times": times, "setup_s": setup, "info": info}


# -- Sail --------------------------------------------------------------------------------------
def serve_sail(job: dict[str, Any]) -> None:
    """A Sail Spark Connect server until stdin closes (its settings come from the
    environment the parent gives this process, e.g. ``SAIL_MODE=local-cluster``)."""
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    print(json.dumps({"url": f"sc://{host}:{port}", "pid": os.getpid()}), flush=True)
    sys.stdin.read()
    server.stop()


def main() -> None:
    kind, job = sys.argv[1], json.loads(sys.argv[2])
    if kind == "sail":
        serve_sail(job)
        return
    result = {"build": build, "append": append, "question": question}[kind](job)
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
