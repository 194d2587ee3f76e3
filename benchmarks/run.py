"""nbregistry vs MLflow's model registry (SQLite), same workload, one command:

    python benchmarks/run.py            # full run (~5 min on 2 cores)
    python benchmarks/run.py --quick    # scaled-down smoke test (~3 min)

MLflow lives in its own virtual environment, benchmarks/.venv-mlflow, created here on first
use. Each side runs as its own subprocess, one after the other, on a fresh temporary folder,
and writes JSON; this script prints them side by side and saves benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import report  # noqa: E402

VENV = HERE / ".venv-mlflow"
MLFLOW_REQUIREMENT = "mlflow>=3.0,<4"
RESULTS = HERE / "results"


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_mlflow_venv() -> str:
    """Create benchmarks/.venv-mlflow and install MLflow into it unless already there."""
    python = venv_python()
    probe = [str(python), "-c", "import mlflow; print(mlflow.__version__)"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return done.stdout.strip()
    else:
        common.progress("setup", f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    common.progress("setup", f"installing {MLFLOW_REQUIREMENT} into {VENV} (a few minutes)")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                   check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", MLFLOW_REQUIREMENT],
                   check=True)
    return subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()


def run_side(python: str, script: str, work: Path, quick: bool, phase: str = "all",
             tag: str = "") -> dict[str, Any]:
    out, folder = work / f"{script}{tag}.json", work / f"{script}{tag}"
    folder.mkdir()
    command = [python, str(HERE / f"{script}.py"), "--out", str(out), "--workdir", str(folder),
               "--phase", phase]
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    start = time.perf_counter()
    done = subprocess.run([*command, *(["--quick"] if quick else [])], env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{script} failed with exit code {done.returncode}")
    common.progress(script, f"finished in {time.perf_counter() - start:.0f} s")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def alternated(sides: list[tuple[str, str]], work: Path, quick: bool
               ) -> list[dict[str, Any]]:
    """Step 0 for each side, in alternating rounds (nbregistry, MLflow, nbregistry, ...), so
    that load from elsewhere on the machine falls on both: each figure is the median of its
    rounds."""
    rounds: list[list[dict[str, Any]]] = [[] for _ in sides]
    for r in range(common.SPEED_ROUNDS):
        for found, (python, script) in zip(rounds, sides, strict=True):
            found.append(run_side(python, script, work, quick, "speed", f"-speed{r}"))
    merged = []
    for found in rounds:
        keys = found[0]["figures"]
        merged.append({**found[0], "figures": {
            k: statistics.median(f["figures"][k] for f in found) for k in keys},
            "speed_rounds": [f["figures"] for f in found]})
    return merged


def source_state() -> str:
    """The commit nbregistry's source is at (plus '+dirty'), or '' outside a checkout."""
    import nbregistry

    src = Path(nbregistry.__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True,
                          text=True, check=False)
    if head.returncode != 0:
        return ""
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=src,
                           capture_output=True, text=True, check=False).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="scaled-down smoke test")
    parser.add_argument("--keep", action="store_true", help="keep the temporary registries")
    args = parser.parse_args()
    wl = common.workload(args.quick)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_start, source = os.getloadavg(), source_state()
    if load_start[0] > 0.5 * (os.cpu_count() or 1):
        common.progress("run", f"warning: load average {load_start[0]:.1f} before starting; "
                               "other work on this machine will distort the timings")
    mlflow_version = ensure_mlflow_venv()
    work = Path(tempfile.mkdtemp(prefix="nbr-bench-"))
    try:
        sides = [(sys.executable, "nbr_side"), (str(venv_python()), "mlflow_side")]
        fast = alternated(sides, work, args.quick)
        nbr, mlf = (run_side(python, script, work, args.quick, "rest")
                    for python, script in sides)
        for side, speed in zip((nbr, mlf), fast, strict=True):
            side["figures"].update(speed["figures"])
            side["speed_rounds"] = speed["speed_rounds"]
    finally:
        if args.keep:
            common.progress("run", f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if source_state() != source:
        common.progress("run", f"warning: nbregistry's source changed during the run "
                               f"({source} -> {source_state()}); the figures mix versions")
    meta = {"started": started, "quick": args.quick, "nbregistry": nbr["version"],
            "nbregistry_source": source, "nbregistry_source_end": source_state(),
            "mlflow": mlflow_version, "python": platform.python_version(),
            "cpus": os.cpu_count(), "platform": platform.platform(), "cwd": os.getcwd(),
            "workload": wl.__dict__,
            "loadavg_start": load_start, "loadavg_end": os.getloadavg()}
    text = report.render(wl, meta, nbr["figures"], mlf["figures"], markdown=False)
    print("\n" + text)
    loads = [" ".join(f"{x:.2f}" for x in meta[k]) for k in ("loadavg_start", "loadavg_end")]
    print(f"load average (1/5/15 min): {loads[0]} at start, {loads[1]} at end")
    for side in (nbr, mlf):
        for note in side["notes"]:
            print(f"note ({side['side']}): {note}")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    payload = {"meta": meta, "nbregistry": nbr, "mlflow": mlf,
               "targets": [{"pass": ok, "check": line}
                           for ok, line in report.targets(wl, nbr["figures"], mlf["figures"])]}
    for name in (stamp, "latest" + ("-quick" if args.quick else "")):
        (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(
            report.render(wl, meta, nbr["figures"], mlf["figures"], markdown=True))
    print(f"\nwrote {RESULTS / stamp}.json and .md")


if __name__ == "__main__":
    main()
