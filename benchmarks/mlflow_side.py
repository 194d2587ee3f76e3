"""The MLflow half of the benchmark (model registry on SQLite); run by run.py in
benchmarks/.venv-mlflow. Writes its figures as JSON.

Model serialization is kept out of the timings: one run logs a tiny artifact once, and every
version is created with ``MlflowClient.create_model_version`` pointing at that source URI.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import common
from common import SPEED_TAGS, Results, Workload, progress, time_each, tiny_model

SIDE = "mlflow"


def quiet() -> None:
    warnings.filterwarnings("ignore")  # stage APIs are deprecated and warn on every call
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)


def client_for(db: Path) -> tuple[Any, str]:
    """A client on a (new) SQLite registry, and the URI of one logged tiny artifact."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    artifacts = db.parent / f"{db.stem}-artifacts"
    experiment = client.create_experiment(f"bench-{db.stem}", artifact_location=artifacts.as_uri())
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, json.dumps(tiny_model(0)), "model/model.json")
    client.set_terminated(run.info.run_id)
    return client, f"{run.info.artifact_uri}/model"


def all_versions(client: Any, filter_string: str | None) -> int:
    """search_model_versions, following page tokens; the number of versions found."""
    found, token = 0, None
    while True:
        page = client.search_model_versions(filter_string, max_results=10_000, page_token=token)
        found += len(page)
        token = page.token
        if not token:
            return found


def speed_phase(res: Results, wl: Workload, work: Path) -> None:
    """Step 0 (issue 18): the same workload as nbr_side.speed_phase; a new handle is a new
    MlflowClient on the same database."""
    from mlflow import MlflowClient

    client, source = client_for(work / "speed.db")
    uri = f"sqlite:///{work / 'speed.db'}"
    client.create_registered_model("m")
    n = wl.speed_versions
    progress(SIDE, f"0. {n} versions with a tag, {n} alias moves, reads, reopens")
    res.latency("speed_register", time_each(
        lambda i: client.create_model_version("m", source, tags=SPEED_TAGS,
                                              await_creation_for=0), range(1, n + 1)))
    res.latency("speed_alias", time_each(
        lambda i: client.set_registered_model_alias("m", f"a{i}", str(i)), range(1, n + 1)))
    res.median("speed_resolve", time_each(
        lambda i: client.get_model_version_by_alias("m", f"a{i}"), range(1, n + 1)))
    res.median("speed_get", time_each(lambda i: client.get_model_version("m", str(i)),
                                      range(1, n + 1)))
    res.median("speed_search_one", time_each(
        lambda i: _count(all_versions(client, "name='m'"), n), range(wl.search_calls)))
    res.median("speed_reopen", time_each(
        lambda i: MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
            "m", f"a{i}"), range(1, wl.speed_reopens + 1)))


def small_phase(res: Results, wl: Workload, work: Path) -> None:
    client, source = client_for(work / "small.db")
    client.create_registered_model("m")
    n = wl.versions
    progress(SIDE, f"1. creating {n} versions of 'm'")
    res.latency("register", time_each(
        lambda i: client.create_model_version("m", source, await_creation_for=0),
        range(1, n + 1)))
    progress(SIDE, f"2. setting {n} aliases a{{i}} -> i")
    res.latency("alias", time_each(
        lambda i: client.set_registered_model_alias("m", f"a{i}", str(i)), range(1, n + 1)))
    if hasattr(client, "transition_model_version_stage"):
        progress(SIDE, f"3. {wl.stage_calls} stage transitions to Staging")
        res.latency("stage", time_each(
            lambda i: client.transition_model_version_stage(
                "m", str(i), "Staging", archive_existing_versions=True),
            range(1, wl.stage_calls + 1)))
    else:
        res.value("stage_med", "n/a")
        res.value("stage_p95", "n/a")
    assert int(client.get_model_version_by_alias("m", "a7").version) == 7
    reads(res, client, wl, suffix="small", alias=lambda i: ("m", f"a{i % n + 1}"),
          get=lambda i: ("m", str(i % n + 1)), one_model="m", one_rows=n, all_rows=n)


def reads(res: Results, client: Any, wl: Workload, *, suffix: str, alias: Any, get: Any,
          one_model: str, one_rows: int, all_rows: int) -> None:
    """Step 4/5 (and their scale-up repeats): resolve, get, search one model, search all."""
    calls = wl.read_calls
    searches = wl.search_calls if suffix == "small" else wl.scale_search_calls
    one = f"name='{one_model}'"
    for i in range(20):  # warm-up
        client.get_model_version_by_alias(*alias(i))
        client.get_model_version(*get(i))
    res.median(f"resolve_{suffix}", time_each(
        lambda i: client.get_model_version_by_alias(*alias(i)), range(calls)))
    res.median(f"get_{suffix}", time_each(lambda i: client.get_model_version(*get(i)),
                                          range(calls)))
    all_versions(client, one)
    res.median(f"search_one_{suffix}", time_each(
        lambda i: _count(all_versions(client, one), one_rows), range(wl.search_calls)))
    all_versions(client, None)
    res.median(f"search_all_{suffix}", time_each(
        lambda i: _count(all_versions(client, None), all_rows), range(searches)))


def _count(found: int, expected: int) -> None:
    if found != expected:
        raise AssertionError(f"search found {found} versions, expected {expected}")


def scale_phase(res: Results, wl: Workload, work: Path) -> str:
    db = work / "scale.db"
    client, source = client_for(db)
    progress(SIDE, f"6. building {wl.scale_models} models x {wl.scale_per_model} versions "
                   "with create_model_version()")
    registering: list[float] = []
    moving: list[float] = []
    start = time.perf_counter()
    clock = time.perf_counter
    for m in range(wl.scale_models):
        name = f"m{m}"
        client.create_registered_model(name)
        for i in range(1, wl.scale_per_model + 1):  # each version becomes the champion
            begin = clock()
            client.create_model_version(name, source, await_creation_for=0)
            middle = clock()
            client.set_registered_model_alias(name, "champion", str(i))
            registering.append(middle - begin)
            moving.append(clock() - middle)
        if m % 10 == 9:
            progress(SIDE, f"   {len(registering)} versions, {clock() - start:.0f} s")
    res.value("build_scale_s", clock() - start)
    res.latency("register_scale", registering[-wl.versions:])
    res.latency("alias_scale", moving[-wl.versions:])
    champion = client.get_model_version_by_alias("m7", "champion")
    assert int(champion.version) == wl.scale_per_model
    reads(res, client, wl, suffix="scale",
          alias=lambda i: (f"m{i % wl.scale_models}", "champion"),
          get=lambda i: (f"m{i % wl.scale_models}", str(i % wl.scale_per_model + 1)),
          one_model="m7", one_rows=wl.scale_per_model, all_rows=wl.scale_versions)
    return f"sqlite:///{db}"


def _worker(uri: str, source: str, wid: int, count: int, queue: Any) -> None:
    quiet()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    begin, failures, errors = time.time(), 0, []
    for _ in range(count):
        try:
            mv = client.create_model_version("c", source, await_creation_for=0)
            client.set_registered_model_alias("c", "champion", mv.version)
        except Exception as exc:
            failures += 1
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
    queue.put({"wid": wid, "begin": begin, "end": time.time(), "failures": failures,
               "errors": errors[:3]})


def concurrency_phase(res: Results, wl: Workload, work: Path) -> None:
    db = work / "concurrent.db"
    client, source = client_for(db)
    client.create_registered_model("c")
    uri = f"sqlite:///{db}"
    progress(SIDE, f"7. {wl.workers} processes x {wl.per_worker} "
                   "(create_model_version + set alias)")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start = time.perf_counter()
    procs = [ctx.Process(target=_worker, args=(uri, source, w, wl.per_worker, queue))
             for w in range(wl.workers)]
    for p in procs:
        p.start()
    reports = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    res.value("concurrent_wall_s", time.perf_counter() - start)
    res.value("concurrent_work_s", max(r["end"] for r in reports)
              - min(r["begin"] for r in reports))
    failures = sum(r["failures"] for r in reports)
    res.value("concurrent_failures", failures)
    for r in reports:
        res.notes += [f"worker {r['wid']}: {e}" for e in r["errors"]]
    page = client.search_model_versions("name='c'", max_results=10_000)
    versions = sorted(int(mv.version) for mv in page)
    total = wl.workers * wl.per_worker
    if versions == list(range(1, len(versions) + 1)):
        res.value("concurrent_check", f"{len(versions)}/{total} versions (1..{len(versions)})")
    else:
        res.value("concurrent_check", f"{len(versions)}/{total} versions, with gaps")


def main() -> None:
    args = common.side_args(__doc__ or "")
    wl = common.workload(args.quick)
    work = Path(args.workdir)
    import mlflow

    quiet()  # after the import: mlflow sets its own log levels when imported
    res = Results(SIDE, mlflow.__version__, args.quick)
    res.notes.append("create_model_version points at one pre-logged artifact: no model "
                     "serialization is timed")
    if args.phase in ("speed", "all"):
        speed_phase(res, wl, work)
    if args.phase in ("rest", "all"):
        small_phase(res, wl, work)
        uri = scale_phase(res, wl, work)
        progress(SIDE, f"6. cold processes ({wl.cold_runs} each)")
        client_for(work / "other.db")  # a second database: cold.py opens it first
        common.cold_runs(res, sys.executable, SIDE, uri, f"sqlite:///{work / 'other.db'}",
                         wl.cold_runs)
        concurrency_phase(res, wl, work)
    res.write(args.out)


if __name__ == "__main__":
    main()
