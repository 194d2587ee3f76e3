"""The nbregistry half of the benchmark; writes its figures as JSON (see run.py).

Each ``register()`` call is measured as a user sees it: it includes the joblib dump of the
(tiny) model, the content-addressed blob write, lineage capture and the Delta commit.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import common
from common import SPEED_TAGS, Results, Workload, progress, time_each, tiny_model

SIDE = "nbregistry"


def speed_phase(res: Results, wl: Workload, work: Path) -> None:
    """Step 0 (issue 18): registrations with a tag, alias moves and reads on a fresh
    registry, then new handles opened in this (warm) process, each resolving an alias."""
    import nbregistry as nbr

    uri = work / "speed"
    reg = nbr.open_registry(uri, user="bench")
    n = wl.speed_versions
    progress(SIDE, f"0. {n} registrations with a tag, {n} alias moves, reads, reopens")
    res.latency("speed_register", time_each(
        lambda i: reg.register(tiny_model(i), name="m", tags=SPEED_TAGS), range(1, n + 1)))
    res.latency("speed_alias", time_each(lambda i: reg.set_alias("m", f"a{i}", i),
                                         range(1, n + 1)))
    res.median("speed_resolve", time_each(lambda i: reg.get(f"m@a{i}"), range(1, n + 1)))
    res.median("speed_get", time_each(lambda i: reg.get("m", i), range(1, n + 1)))
    res.median("speed_search_one", time_each(lambda i: _rows(reg.search("m"), n),
                                             range(wl.search_calls)))
    res.median("speed_reopen", time_each(
        lambda i: nbr.open_registry(uri, user="bench").get(f"m@a{i}"),
        range(1, wl.speed_reopens + 1)))
    res.value("speed_events", reg.head[0])


def small_phase(res: Results, wl: Workload, work: Path) -> None:
    import nbregistry as nbr

    reg = nbr.open_registry(work / "small", user="bench")
    n = wl.versions
    progress(SIDE, f"1. registering {n} versions of 'm'")
    res.latency("register", time_each(lambda i: reg.register(tiny_model(i), name="m"),
                                      range(1, n + 1)))
    progress(SIDE, f"2. setting {n} aliases a{{i}} -> i")
    res.latency("alias", time_each(lambda i: reg.set_alias("m", f"a{i}", i), range(1, n + 1)))
    if hasattr(reg, "request_promotion"):  # staging needs no approval in the default policy
        progress(SIDE, f"3. {wl.stage_calls} promotions to staging")
        res.latency("stage", time_each(lambda i: reg.request_promotion("m", i, to="staging"),
                                       range(1, wl.stage_calls + 1)))
        assert reg.get("m", stage="staging").version == wl.stage_calls
    else:
        res.value("stage_med", "n/a")
        res.value("stage_p95", "n/a")
    assert reg.get("m@a7").version == 7 and reg.get("m", 7).version == 7
    reads(res, reg, wl, suffix="small", alias=lambda i: f"m@a{i % n + 1}",
          get=lambda i: ("m", i % n + 1), one_model="m", one_rows=n, all_rows=n)


def reads(res: Results, reg: Any, wl: Workload, *, suffix: str, alias: Any, get: Any,
          one_model: str, one_rows: int, all_rows: int) -> None:
    """Step 4/5 (and their scale-up repeats): resolve, get, search one model, search all."""
    calls = wl.read_calls
    searches = wl.search_calls if suffix == "small" else wl.scale_search_calls
    for i in range(20):  # warm-up
        reg.get(alias(i))
        reg.get(*get(i))
    res.median(f"resolve_{suffix}", time_each(lambda i: reg.get(alias(i)), range(calls)))
    res.median(f"get_{suffix}", time_each(lambda i: reg.get(*get(i)), range(calls)))
    reg.search(one_model)
    res.median(f"search_one_{suffix}", time_each(
        lambda i: _rows(reg.search(one_model), one_rows), range(wl.search_calls)))
    reg.search()
    res.median(f"search_all_{suffix}", time_each(
        lambda i: _rows(reg.search(), all_rows), range(searches)))


def _rows(table: Any, expected: int) -> None:
    if table.num_rows != expected:
        raise AssertionError(f"search returned {table.num_rows} rows, expected {expected}")


def scale_phase(res: Results, wl: Workload, work: Path) -> str:
    import nbregistry as nbr

    uri = str(work / "scale")
    reg = nbr.open_registry(uri, user="bench")
    progress(SIDE, f"6. building {wl.scale_models} models x {wl.scale_per_model} versions "
                   "with register()")
    registering: list[float] = []
    moving: list[float] = []
    start = time.perf_counter()
    clock = time.perf_counter
    for m in range(wl.scale_models):
        name = f"m{m}"
        for i in range(1, wl.scale_per_model + 1):  # each version becomes the champion
            begin = clock()
            reg.register(tiny_model(i), name=name)
            middle = clock()
            reg.set_alias(name, "champion", i)
            registering.append(middle - begin)
            moving.append(clock() - middle)
        if m % 10 == 9:
            progress(SIDE, f"   {len(registering)} versions, {clock() - start:.0f} s")
    res.value("build_scale_s", clock() - start)
    res.latency("register_scale", registering[-wl.versions:])
    res.latency("alias_scale", moving[-wl.versions:])
    assert reg.get("m7@champion").version == wl.scale_per_model
    reads(res, reg, wl, suffix="scale", alias=lambda i: f"m{i % wl.scale_models}@champion",
          get=lambda i: (f"m{i % wl.scale_models}", i % wl.scale_per_model + 1),
          one_model="m7", one_rows=wl.scale_per_model, all_rows=wl.scale_versions)
    return uri


def _worker(uri: str, wid: int, count: int, queue: Any) -> None:
    import nbregistry as nbr

    reg = nbr.open_registry(uri, user=f"worker{wid}")
    begin, failures, errors = time.time(), 0, []
    for k in range(count):
        try:
            mv = reg.register(tiny_model(100_000 + wid * 1000 + k), name="c")
            reg.set_alias("c", "champion", mv.version)
        except Exception as exc:
            failures += 1
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
    queue.put({"wid": wid, "begin": begin, "end": time.time(), "failures": failures,
               "errors": errors[:3]})


def concurrency_phase(res: Results, wl: Workload, work: Path) -> None:
    import nbregistry as nbr

    uri = str(work / "concurrent")
    nbr.open_registry(uri, user="bench")  # created up front, so workers only open it
    total = wl.workers * wl.per_worker
    progress(SIDE, f"7. {wl.workers} processes x {wl.per_worker} (register + set_alias)")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(uri, w, wl.per_worker, queue))
             for w in range(wl.workers)]
    for p in procs:
        p.start()
    reports = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    res.value("concurrent_wall_s", time.perf_counter() - start)
    res.value("concurrent_work_s", max(r["end"] for r in reports)
              - min(r["begin"] for r in reports))
    res.value("concurrent_failures", sum(r["failures"] for r in reports))
    for r in reports:
        res.notes += [f"worker {r['wid']}: {e}" for e in r["errors"]]
    reg = nbr.open_registry(uri, user="bench")
    versions = sorted(reg.search("c").column("version").to_pylist())
    history = reg.history("c").column("action").to_pylist()
    report = reg.verify()
    problems = []
    if versions != list(range(1, total + 1)):
        problems.append(f"versions are not 1..{total} ({len(versions)} found)")
    if history.count("set_alias") != total:
        problems.append(f"{history.count('set_alias')} alias moves, expected {total}")
    if not report.ok:
        problems.append(f"verify: {len(report.problems)} problem(s)")
    res.value("concurrent_check", "; ".join(problems) or f"ok: v1..{total}, verify ok")


def main() -> None:
    args = common.side_args(__doc__ or "")
    wl = common.workload(args.quick)
    work = Path(args.workdir)
    import nbregistry

    res = Results(SIDE, nbregistry.__version__, args.quick)
    res.notes.append("register() includes a joblib dump of the model, a blob write, lineage "
                     "capture (the git state, when run inside a git checkout) and the Delta "
                     "commit")
    if args.phase in ("speed", "all"):
        speed_phase(res, wl, work)
    if args.phase in ("rest", "all"):
        small_phase(res, wl, work)
        uri = scale_phase(res, wl, work)
        progress(SIDE, f"6. cold processes ({wl.cold_runs} each)")
        other = str(work / "other")
        nbregistry.open_registry(other, user="bench", create=True)
        common.cold_runs(res, sys.executable, SIDE, uri, other, wl.cold_runs)
        concurrency_phase(res, wl, work)
    res.write(args.out)


if __name__ == "__main__":
    main()
