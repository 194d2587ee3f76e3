"""How long ``nbr.import_mlflow`` takes: a real MLflow registry (SQLite, scikit-learn models
logged with ``mlflow.sklearn``) of MODELS x VERSIONS with aliases and stages is built (not
timed), imported into a new registry, imported again (nothing new), then verified.

    python benchmarks/mlflow_import.py [--models 3] [--versions 20]

Needs the ``mlflow`` extra (``pip install -e ".[dev]"`` has it). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORLD = Path(__file__).resolve().parents[1] / "tests" / "mlflow_world.py"


def cpu() -> float:
    """CPU seconds of this process and its finished children (the MLflow reader): on a
    shared machine a steadier figure than the wall clock."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                      resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--versions", type=int, default=20)
    args = parser.parse_args()
    import nbregistry as nbr

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        spec = {f"model {i}": {"versions": args.versions, "aliases": {"champion": 1},
                               "stages": {"1": "Production", "2": "Staging", "3": "Archived"}}
                for i in range(args.models)}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(WORLD), work, json.dumps(spec)],
                              capture_output=True, text=True, cwd=work, check=True)
        built = time.perf_counter() - start
        uri = json.loads(done.stdout.strip().splitlines()[-1])["tracking_uri"]
        reg = nbr.open_registry(folder / "registry", user="bench", create=True)
        start, used = time.perf_counter(), cpu()
        first = nbr.import_mlflow(uri, registry=reg, progress=False)
        first_s, first_cpu = time.perf_counter() - start, cpu() - used
        start, used = time.perf_counter(), cpu()
        again = nbr.import_mlflow(uri, registry=reg, progress=False)
        again_s, again_cpu = time.perf_counter() - start, cpu() - used
        start = time.perf_counter()
        ok = reg.verify().ok
        verify_s = time.perf_counter() - start
    versions = args.models * args.versions
    print(json.dumps({
        "versions": versions, "mlflow_build_s": round(built, 1),
        "import_s": round(first_s, 2), "import_cpu_s": round(first_cpu, 2),
        "events": first.events, "again_s": round(again_s, 2),
        "again_cpu_s": round(again_cpu, 2), "again_events": again.events,
        "verify_s": round(verify_s, 2), "verify_ok": ok}))


if __name__ == "__main__":
    main()
