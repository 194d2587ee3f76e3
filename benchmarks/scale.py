"""The event log at scale, against MLflow on SQLite at the same sizes (issue: 1k, 10k, 100k
versions, each with as many alias moves).

    python benchmarks/scale.py                 # 1,000 / 10,000 / 100,000 (~45 min)
    python benchmarks/scale.py --sizes 1000 10000
    python benchmarks/scale.py --skip-mlflow   # nbregistry only
    python benchmarks/scale.py --work DIR      # keep what is built in DIR and reuse it

A side already built in ``--work`` (its build figures are saved next to it) is not built
again; its open, storage and verify are measured again in this run.

For each size both sides build the same registry (100 models; each step registers the next
version of one model and moves its ``champion`` alias there), timing the last 200 writes
of each kind; then a fresh process opens the registry and resolves ``m7@champion`` (the
whole process, import included, median of 3; Python's bytecode cache on). For nbregistry
it also reports the bytes per event of ``_registry`` without model artifacts (state
snapshots included) and the files under the event table, as built and at rest (once the
data files merges replaced are deleted, which writers do an hour after each merge: the
benchmark runs that clean-up with no grace instead of waiting the hour), and ``verify()``
of the whole chain in a fresh process (median of 3; the import not included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODELS = 100
TIMED = 200
TARGETS = {"open_s": 0.5, "bytes_per_event": 2048, "verify_s": 10.0,
           "open_noimport_s": 0.150}  # the last at 10,000 versions (issue 18)


def build_nbregistry(uri: str, n: int) -> dict[str, Any]:
    import nbregistry as nbr

    reg = nbr.open_registry(uri, user="bench", create=True)
    figures = timed_steps(
        n, lambda name, i: reg.register({"weights": [i, i + 1]}, name,
                                        metrics={"auc": 0.7}).version,
        lambda name, version: reg.set_alias(name, "champion", version))
    return {**figures, "events": reg.head[0]}


def timed_steps(n: int, register: Callable[[str, int], Any],
                alias: Callable[[str, Any], Any]) -> dict[str, float]:
    """Register the next version of one model and move its alias there, ``n`` times; the
    p50 of the last TIMED of each, in ms."""
    registering, moving = [], []
    for i in range(n):
        name = f"m{i % MODELS}"
        start = time.perf_counter()
        version = register(name, i)
        middle = time.perf_counter()
        alias(name, version)
        if i >= n - TIMED:
            registering.append(middle - start)
            moving.append(time.perf_counter() - middle)
    return {"register_ms": 1000 * statistics.median(registering),
            "alias_ms": 1000 * statistics.median(moving)}


def build_mlflow(db: str, n: int) -> dict[str, Any]:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from mlflow import MlflowClient

    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for m in range(MODELS):
        client.create_registered_model(f"m{m}")
    return timed_steps(
        n, lambda name, i: client.create_model_version(name, f"file:///tmp/model-{i}").version,
        lambda name, version: client.set_registered_model_alias(name, "champion", version))


OPEN = {"nbregistry": "import nbregistry as nbr\nreg = nbr.open_registry({uri!r}, create=False)\n"
                      "v = reg.get('m7@champion').version\n",
        "mlflow": "from mlflow import MlflowClient\nc = MlflowClient(tracking_uri={uri!r}, "
                  "registry_uri={uri!r})\nv = c.get_model_version_by_alias('m7', 'champion')\n"}


def cold_open(python: str, side: str, uri: str) -> float:
    """Median wall time of a whole fresh process that opens and resolves the alias."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    code = OPEN[side].format(uri=uri)
    times = []
    for _ in range(4):
        start = time.perf_counter()
        done = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{side} open failed (rc {done.returncode}):\n{done.stderr}")
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first run warms the bytecode and disk caches


def cold_in_process(python: str, side: str, uri: str, other: str) -> dict[str, Any]:
    """Fresh processes (cold.py), timed inside: open + resolve after the top-level import
    (what opening imports included), and after another registry was opened (imports
    excluded; for nbregistry, with where that time goes). Medians of 3 after one warm-up."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"

    def run(mode: str) -> list[dict[str, Any]]:
        found = []
        for _ in range(4):
            done = subprocess.run([python, str(HERE / "cold.py"), f"{side}-{mode}", uri, other],
                                  env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{side} {mode} failed:\n{done.stderr[-3000:]}")
            found.append(json.loads(done.stdout.strip().splitlines()[-1]))
        return found[1:]

    opened, bare = run("open"), run("imported")
    stages = {k: statistics.median(r["stages"][k] for r in bare)
              for k in bare[0].get("stages", {})}
    return {"open_inproc_s": statistics.median(r["open_resolve_s"] for r in opened),
            "open_noimport_s": statistics.median(r["open_resolve_s"] for r in bare),
            "open_stages": stages}


def storage(root: Path) -> dict[str, Any]:
    """Bytes under ``_registry`` but the model artifacts (state snapshots count), and the
    files under the event table."""
    import nbregistry as nbr
    from nbregistry.store.blobs import key_for

    total = sum(p.stat().st_size for p in (root / "_registry").rglob("*")
                if p.is_file() and "artifacts" not in p.parts)
    for event in nbr.open_registry(str(root), create=False)._state.snapshots:
        blob = root / key_for(event.payload["sha256"])
        total += blob.stat().st_size if blob.exists() else 0
    files = sum(1 for p in (root / "_registry" / "events").rglob("*") if p.is_file())
    data = sum(1 for p in (root / "_registry" / "events").glob("*.parquet"))
    return {"bytes": total, "files": files, "data_files": data}


def at_rest(uri: str) -> None:
    """The clean-up writers run an hour after each merge, run now (no grace)."""
    from datetime import timedelta

    import nbregistry as nbr

    nbr.open_registry(uri, create=False)._log.vacuum(grace=timedelta(0))


def verify_time(uri: str) -> float:
    code = (f"import time, nbregistry as nbr\nt = time.perf_counter()\n"
            f"r = nbr.verify({uri!r}, artifacts=False)\nassert r.ok, r\n"
            "print(time.perf_counter() - t)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = [float(subprocess.run([sys.executable, "-c", code], check=True,
                                  capture_output=True, text=True, env=env
                                  ).stdout.strip().splitlines()[-1]) for _ in range(3)]
    return statistics.median(times)


def built_once(work: Path, name: str, build: Any) -> dict[str, Any]:
    """The build figures of ``name`` in ``work``, building it only if not built before."""
    saved = work / f"{name}.build.json"
    if saved.exists():
        found: dict[str, Any] = json.loads(saved.read_text())
        return found
    built: dict[str, Any] = build()
    saved.write_text(json.dumps(built))
    return built


def nbregistry_side(work: Path, n: int) -> dict[str, Any]:
    root = work / f"nbr-{n}"
    built = built_once(work, root.name, lambda: build_nbregistry(str(root), n))
    as_built = storage(root)
    at_rest(str(root))
    found = storage(root)
    other = work / "nbr-other"
    if not other.exists():
        import nbregistry as nbr

        nbr.open_registry(str(other), user="bench", create=True)
    return {**built, **found, "bytes_per_event": found["bytes"] / built["events"],
            "built_bytes_per_event": as_built["bytes"] / built["events"],
            "built_data_files": as_built["data_files"],
            "open_s": cold_open(sys.executable, "nbregistry", str(root)),
            **cold_in_process(sys.executable, "nbregistry", str(root), str(other)),
            "verify_s": verify_time(str(root))}


def mlflow_side(python: str, work: Path, n: int) -> dict[str, Any]:
    db = work / f"mlflow-{n}.db"
    code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import scale; "
            f"print(json.dumps(scale.build_mlflow({str(db)!r}, {n})))")
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")

    def build() -> dict[str, Any]:
        out = subprocess.run([python, "-c", code], check=True, capture_output=True,
                             text=True, env=env).stdout
        found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return found

    built = built_once(work, db.stem, build)
    other = f"sqlite:///{work / 'mlflow-other.db'}"  # created by its first open
    return {**built, "open_s": cold_open(python, "mlflow", f"sqlite:///{db}"),
            **cold_in_process(python, "mlflow", f"sqlite:///{db}", other)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the registries")
    parser.add_argument("--work", type=Path, help="build in (and reuse from) this folder")
    parser.add_argument("--skip-nbregistry", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    python = ""
    if not args.skip_mlflow:
        from run import ensure_mlflow_venv, venv_python

        ensure_mlflow_venv()
        python = str(venv_python())
    work = args.work or Path(tempfile.mkdtemp(prefix="nbr-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in args.sizes:
            if args.skip_nbregistry:  # prepares the peer's side in a --work folder
                mlflow_side(python, work, n)
                continue
            ours = nbregistry_side(work, n)
            theirs = mlflow_side(python, work, n) if python else {}
            rows.append({"versions": n, "nbregistry": ours, "mlflow": theirs})
            report(rows[-1])
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if not rows:
        return
    verdicts(rows)
    out = HERE / "results" / "scale-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"\nfigures written to {out}")


def report(row: dict[str, Any]) -> None:
    ours, theirs = row["nbregistry"], row["mlflow"]

    def cmp(key: str, unit: str, scale: float = 1.0) -> str:
        text = f"{ours[key] * scale:.3g} {unit}"
        if key in theirs:
            text += (f"  (MLflow {theirs[key] * scale:.3g} {unit}, "
                     f"ratio {theirs[key] / ours[key]:.2f}x)")
        return text

    print(f"\n== {row['versions']:,} versions, {ours['events']:,} events ==")
    print(f"open + resolve alias, fresh process: {cmp('open_s', 's')}")
    print(f"  timed inside it, after the import: {cmp('open_inproc_s', 'ms', 1e3)}")
    print(f"  timed inside it, imports excluded: {cmp('open_noimport_s', 'ms', 1e3)}")
    for stage, seconds in ours.get("open_stages", {}).items():
        print(f"    {stage}: {seconds * 1e3:.1f} ms")
    print(f"register p50: {cmp('register_ms', 'ms')}   alias p50: {cmp('alias_ms', 'ms')}")
    print(f"storage at rest: {ours['bytes_per_event']:.0f} bytes/event "
          f"({ours['bytes'] / 1e6:.1f} MB), {ours['files']:,} files under the event table "
          f"({ours['data_files']:,} data files, the rest JSON commits: one per event)")
    print(f"storage as built (within the hour): {ours['built_bytes_per_event']:.0f} "
          f"bytes/event, {ours['built_data_files']:,} data files")
    print(f"verify (whole chain, fresh process): {ours['verify_s']:.2f} s")


def verdicts(rows: list[dict[str, Any]]) -> None:
    print("\n== targets ==")
    first, last = rows[0]["nbregistry"], rows[-1]["nbregistry"]
    checks = [(f"open at {rows[-1]['versions']:,} <= {TARGETS['open_s']} s",
               last["open_s"] <= TARGETS["open_s"]),
              (f"bytes/event at rest at {rows[-1]['versions']:,} <= 2 KB",
               last["bytes_per_event"] <= TARGETS["bytes_per_event"]),
              (f"data files at rest at {rows[-1]['versions']:,} <= events / 50 (the batch)",
               last["data_files"] <= last["events"] / 50),
              (f"verify at {rows[-1]['versions']:,} <= 10 s",
               last["verify_s"] <= TARGETS["verify_s"]),
              ("register p50 within 2x from smallest to largest",
               last["register_ms"] <= 2 * first["register_ms"]),
              ("alias p50 within 2x from smallest to largest",
               last["alias_ms"] <= 2 * first["alias_ms"])]
    checks += [(f"open + resolve at 10,000 (imports excluded) <= "
                f"{TARGETS['open_noimport_s'] * 1e3:.0f} ms",
                r["nbregistry"]["open_noimport_s"] <= TARGETS["open_noimport_s"])
               for r in rows if r["versions"] == 10_000]
    checks += [(f"open faster than MLflow at {r['versions']:,}",
                r["nbregistry"]["open_s"] < r["mlflow"]["open_s"]) for r in rows if r["mlflow"]]
    checks += [(f"open faster than MLflow at {r['versions']:,}, timed inside the process",
                r["nbregistry"]["open_inproc_s"] < r["mlflow"]["open_inproc_s"])
               for r in rows if r["mlflow"]]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


if __name__ == "__main__":
    main()
