"""drift() and fairness() against Evidently, a bare DuckDB pass and fairlearn; one command.

    python benchmarks/drift_bench.py            # 1M and 10M rows (~5 min, ~1.3 GB of parquet)
    python benchmarks/drift_bench.py --quick    # 200k and 1M rows, a smoke run (~1 min)

Data: 100k reference rows; current windows written as a Delta table (deltalake, 1M rows per
file), read by DuckDB through the snapshot's file list. 10 numeric + 3 categorical features
and the score; a shift injected in x0 (mean +0.5 sd), x1 (income x1.5) and c0 (level mix).
Each measurement runs in its own process; peak RSS comes from ``os.wait4``. Evidently runs
in ``benchmarks/.venv-evidently`` (created on first use: it needs pandas < 3). The data is
kept in ``benchmarks/results/drift-data`` for the next run (``--fresh`` rebuilds it).
This file imports only the standard library at the top: the Evidently venv runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "results" / "drift-data"
VENV = HERE / ".venv-evidently"
SHIFTED = {"x0", "x1", "c0"}
NUMERIC = [f"x{i}" for i in range(10)]
CATEGORICAL = ["c0", "c1", "c2"]
CHUNK = 1_000_000
GIB = 1024 ** 3


# ---------------------------------------------------------------- data
def make_rows(n: int, seed: int, *, shifted: bool) -> Any:
    """One block of rows: the features, score, label and a protected attribute."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    x = {
        "x0": rng.normal(0.5 if shifted else 0.0, 1.0, n),
        "x1": rng.lognormal(10.0, 0.8, n) * (1.5 if shifted else 1.0),
        "x2": rng.random(n),
        "x3": rng.integers(18, 90, n).astype(np.float64),
        "x4": rng.exponential(2.0, n),
        **{f"x{i}": rng.normal(i, 1 + i / 10, n) for i in range(5, 10)},
    }
    mix = [0.3, 0.3, 0.25, 0.15] if shifted else [0.5, 0.3, 0.15, 0.05]
    levels = {"c0": (["a", "b", "c", "d"], mix),
              "c1": (["u", "v", "w", "x", "y", "z"], [0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
              "c2": (["p", "q", "r"], [0.6, 0.3, 0.1])}
    columns: dict[str, Any] = dict(x)
    for name, (values, p) in levels.items():
        codes = pa.array(rng.choice(len(values), n, p=p).astype(np.int32))
        columns[name] = pa.DictionaryArray.from_arrays(codes, values).cast(pa.string())
    logit = 0.8 * x["x0"] + 0.5 * (np.log(x["x1"]) - 10) + 0.3 * (x["x2"] - 0.5)
    score = 1 / (1 + np.exp(-logit))
    columns["score"] = score
    columns["label"] = (score >= 0.5).astype(np.int64)
    columns["sex"] = pa.array(np.where(rng.random(n) < 0.48 + 0.1 * (score > 0.6), "f", "m"))
    return pa.table(columns)


def ensure_data(rows: int, fresh: bool) -> dict[str, Any]:
    """The reference parquet and a Delta table of ``rows`` current rows (cached)."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, write_deltalake

    DATA.mkdir(parents=True, exist_ok=True)
    reference = DATA / "reference.parquet"
    if fresh or not reference.exists():
        pq.write_table(make_rows(100_000, 1, shifted=False), reference)
    table = DATA / f"current-{rows}"
    if fresh or not (table / "_delta_log").exists():
        if table.exists():
            import shutil
            shutil.rmtree(table)
        for start in range(0, rows, CHUNK):
            size = min(CHUNK, rows - start)
            write_deltalake(str(table), make_rows(size, 1000 + start // CHUNK, shifted=True),
                            mode="append")
            print(f"  wrote {start + size:,} / {rows:,} rows", flush=True)
    files = DeltaTable(str(table)).file_uris()
    return {"reference": str(reference), "files": files,
            "source": f"read_parquet({json.dumps(files)}, union_by_name=true)".replace('"', "'")}


# ---------------------------------------------------------------- children
def child_drift(job: dict[str, Any]) -> dict[str, Any]:
    """drift() (and, with ``rounds``, the bare pass interleaved with it)."""
    from nbregistry.monitoring import duck
    from nbregistry.monitoring.drift import dataset_drift, drift

    baseline = json.loads(Path(job["baseline"]).read_text())
    start = time.perf_counter()
    import scipy.stats  # noqa: F401  (drift's p-values; timed apart: a one-off per process)
    out_import = time.perf_counter() - start
    con = duck.connect(memory_limit="1GB")
    floor_sql = _floor_sql(baseline, job["source"])
    out: dict[str, Any] = {"drift_s": [], "floor_s": [], "scipy_import_s": out_import}
    for round_ in range(job["rounds"]):
        if job["floor"]:
            start = time.perf_counter()
            con.execute(floor_sql).fetchall()
            out["floor_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        table = drift(con, job["source"], baseline)
        out["drift_s"].append(time.perf_counter() - start)
        if round_ == 0:
            out["summary"] = dataset_drift(table)
            out["rows"] = table.select(["feature", "psi", "ks", "ks_error", "p_adjusted",
                                        "status", "drifted"]).to_pylist()
    return out


def _floor_sql(baseline: dict[str, Any], source: str) -> str:
    """One bare DuckDB pass binning the same columns on the reference deciles."""
    parts = []
    for name, spec in [*baseline["features"].items(), ("score", baseline["score"])]:
        if spec["kind"] == "numeric":
            edges = ", ".join(repr(e) for e in spec["deciles"]["edges"])
            parts.append(f'histogram("{name}", [{edges}]::DOUBLE[])')
        else:
            parts.append(f'histogram("{name}")')
    return f"SELECT {', '.join(parts)} FROM {source}"


def child_fairness(job: dict[str, Any]) -> dict[str, Any]:
    """fairness() vs fairlearn's MetricFrame + demographic_parity_ratio on the same rows."""
    import duckdb
    from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate

    from nbregistry.monitoring import duck
    from nbregistry.monitoring.fairness import fairness

    con = duck.connect()
    times, result = [], None
    for _ in range(job["rounds"]):
        start = time.perf_counter()
        result = fairness(con, job["source"], group="sex")
        times.append(time.perf_counter() - start)
    frame = duckdb.connect().execute(f"SELECT sex, label FROM {job['source']}").df()
    peer_times = []
    for _ in range(job["peer_rounds"]):
        start = time.perf_counter()
        metric = MetricFrame(metrics=selection_rate, y_true=frame.label, y_pred=frame.label,
                             sensitive_features=frame.sex)
        ratio = demographic_parity_ratio(frame.label, frame.label,
                                         sensitive_features=frame.sex)
        peer_times.append(time.perf_counter() - start)
    assert result is not None
    ours = {r["group"]: r["selection_rate"] for r in result.to_pylist()}
    theirs = {str(k): float(v) for k, v in metric.by_group.items()}
    diff = max(abs(ours[k] - theirs[k]) for k in theirs)
    dpr = min(r["air"] for r in result.to_pylist())
    return {"fairness_s": times, "fairlearn_s": peer_times, "max_diff": diff,
            "dpr_diff": abs(dpr - float(ratio)), "groups": sorted(ours) == sorted(theirs)}


def child_evidently(job: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = NUMERIC + CATEGORICAL + ["score"]
    start = time.perf_counter()
    reference = pd.read_parquet(job["reference"], columns=columns)
    current = pd.concat([pd.read_parquet(f, columns=columns) for f in job["files"]],
                        ignore_index=True)
    load = time.perf_counter() - start
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    run = time.perf_counter() - start
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift") and \
                metric["value"] >= config["threshold"]:
            flagged.append(config["column"])
    return {"load_s": load, "run_s": run, "flagged": sorted(flagged)}


CHILDREN = {"drift": child_drift, "fairness": child_fairness, "evidently": child_evidently}


def run_child(kind: str, job: dict[str, Any], python: str = sys.executable) -> dict[str, Any]:
    """Run one measurement in a fresh process; its peak RSS from ``os.wait4``."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    process = subprocess.Popen([python, __file__, "--child", kind, json.dumps(job)],
                               stdout=subprocess.PIPE, env=env, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{kind} child failed ({process.returncode})")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024   # Linux reports KiB
    return result


# ---------------------------------------------------------------- orchestration
def ensure_evidently() -> str:
    python = VENV / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.venv-evidently (pip install evidently 'pandas<3') ...")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "evidently", "pandas<3",
                        "pyarrow"], check=True)
    return str(python)


def build_baseline_file() -> tuple[Path, float]:
    import pyarrow.parquet as pq

    from nbregistry.monitoring.baseline import build_baseline

    reference = pq.read_table(DATA / "reference.parquet")
    start = time.perf_counter()
    baseline = build_baseline(reference.select(NUMERIC + CATEGORICAL),
                              scores=reference["score"], target=reference["label"])
    elapsed = time.perf_counter() - start
    path = DATA / "baseline.json"
    path.write_text(json.dumps(baseline, allow_nan=False))
    return path, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k and 1M rows")
    parser.add_argument("--fresh", action="store_true", help="regenerate the data")
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))   # this checkout's nbregistry
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](json.loads(args.child[1])), default=str))
        return
    small, large = (200_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    print(f"data: {small:,} and {large:,} current rows (cached in {DATA})", flush=True)
    small_data, large_data = ensure_data(small, args.fresh), ensure_data(large, args.fresh)
    baseline, baseline_s = build_baseline_file()
    rounds = 3 if args.quick else 5
    print("measuring drift() and the bare pass ...", flush=True)
    fig: dict[str, Any] = {"baseline_s": baseline_s, "small": small, "large": large}
    fig["drift_small"] = run_child("drift", {"baseline": str(baseline), "rounds": rounds,
                                             "floor": True, "source": small_data["source"]})
    fig["drift_large"] = run_child("drift", {"baseline": str(baseline), "rounds": 1,
                                             "floor": False, "source": large_data["source"]})
    print("measuring fairness() and fairlearn ...", flush=True)
    fig["fairness"] = run_child("fairness", {"source": small_data["source"], "rounds": 7,
                                             "peer_rounds": 1 if args.quick else 3})
    if not args.skip_evidently:
        print("measuring Evidently DataDriftPreset ...", flush=True)
        fig["evidently"] = run_child("evidently", {"reference": small_data["reference"],
                                                   "files": small_data["files"]},
                                     python=ensure_evidently())
    report(fig, quick=args.quick)


def report(fig: dict[str, Any], *, quick: bool) -> None:
    med = statistics.median
    small, large = fig["drift_small"], fig["drift_large"]
    drift_s, floor_s = med(small["drift_s"]), med(small["floor_s"])
    fair, fairlearn = med(fig["fairness"]["fairness_s"]), med(fig["fairness"]["fairlearn_s"])
    flagged_small = set(small["summary"]["drifted_features"])
    flagged_large = set(large["summary"]["drifted_features"])
    n, big = f"{fig['small'] / 1e6:g}M", f"{fig['large'] / 1e6:g}M"
    same = max(fig["fairness"]["max_diff"], fig["fairness"]["dpr_diff"])
    lines: list[tuple[str, str, str, bool | None]] = [
        ("baseline (100k reference rows)", f"{fig['baseline_s']:.2f} s", "", None),
        (f"drift() {n} rows (median of {len(small['drift_s'])})", f"{drift_s:.3f} s", "",
         None),
        (f"bare DuckDB decile pass {n} (floor)", f"{floor_s:.3f} s", "", None),
        ("drift() / floor", f"{drift_s / floor_s:.2f}x", "<= 2x", drift_s <= 2 * floor_s),
    ]
    if "evidently" in fig:
        ev = fig["evidently"]
        lines += [(f"Evidently DataDriftPreset {n} (run only)", f"{ev['run_s']:.2f} s",
                   "", None),
                  ("Evidently load to pandas / peak RSS", f"{ev['load_s']:.2f} s / "
                   f"{ev['peak_rss_bytes'] / GIB:.2f} GiB", "", None),
                  ("Evidently / drift()", f"{ev['run_s'] / drift_s:.0f}x", ">= 30x",
                   ev["run_s"] >= 30 * drift_s),
                  ("Evidently flags", ", ".join(ev["flagged"]), "", None)]
    lines += [
        (f"drift() {big} rows (one run, fresh process)", f"{large['drift_s'][0]:.2f} s",
         "<= 10 s" if not quick else "", large["drift_s"][0] <= 10 if not quick else None),
        ("  + import scipy.stats, once per process", f"{large['scipy_import_s']:.2f} s", "",
         None),
        (f"drift() {big} peak RSS (whole process)",
         f"{large['peak_rss_bytes'] / GIB:.2f} GiB", "<= 1.5 GB" if not quick else "",
         large["peak_rss_bytes"] <= 1.5e9 if not quick else None),
        (f"flagged {n} / {big}", f"{sorted(flagged_small)} / {sorted(flagged_large)}",
         "= x0, x1, c0", flagged_small == SHIFTED == flagged_large),
        (f"fairness() {n} (median of 7)", f"{fair * 1000:.1f} ms", "", None),
        (f"fairlearn MetricFrame {n}", f"{fairlearn:.2f} s", "", None),
        ("fairlearn / fairness()", f"{fairlearn / fair:.0f}x", ">= 100x",
         fairlearn >= 100 * fair),
        ("same numbers (max |diff|)", f"{same:.1e}", "<= 1e-12", same <= 1e-12),
    ]
    width = max(len(label) for label, *_ in lines)
    print()
    for label, value, target, ok in lines:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{label:<{width}}  {value:>22}  {target:>9}  {verdict}")
    out = HERE / "results" / ("drift-latest-quick.json" if quick else "drift-latest.json")
    out.write_text(json.dumps(fig, indent=1, default=str))
    print(f"\nfigures: {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
