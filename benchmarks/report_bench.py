"""Report speed: each template on its own kernel, and the pack of four on one kernel.

    python benchmarks/report_bench.py             # each template once, then the pack (~1 min)
    python benchmarks/report_bench.py --repeat 3  # medians of three runs

The registry is the test suite's monitored world (tests/reportworld.py): a logistic credit
model in production trained on a 3,000-row Delta table, a challenger in staging, 3,000
logged predictions with outcomes, a deployment. Targets (issue 9): one report <= 10 s, the
pack <= 30 s on a 2-core machine. Kernel start and imports dominate, so the breakdown also
times an empty template (kernel + the helpers' imports) and the PDF print.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
TARGETS = {"report": 10.0, "pack": 30.0}


def world(root: Path) -> str:
    from reportworld import monitored

    uri = str(root / "registry")
    (root / "data").mkdir()
    made = monitored(uri, root / "data")
    made["alice"].record_deployment("credit", 1, "scoring-eu")
    return uri


def empty_template(root: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("registry_uri: str = None\npin: dict = None\n"
                                     "model: str = None\nversion: int = None")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(
        "from nbregistry.reports import helpers as h\nctx = h.open_report(registry_uri, pin)\n"
        "h.close(ctx)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = root / "empty.ipynb"
    nbformat.write(nb, str(path))
    return path


def timed(fn: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = fn()
    return time.perf_counter() - began, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import nbregistry as nbr
    from nbregistry.reports import export
    from nbregistry.reports.templates import TEMPLATES

    root = Path(tempfile.mkdtemp(prefix="nbr-report-bench-"))
    uri = world(root)
    pdf = export.chromium() is not None
    times: dict[str, list[float]] = {}
    empty = empty_template(root)
    for i in range(args.repeat):
        for name in ("empty", *TEMPLATES):
            template = str(empty) if name == "empty" else name
            seconds, _ = timed(lambda t=template, n=name, i=i: nbr.run_report(
                t, output_dir=root / f"single-{i}" / n, uri=uri, model="credit", version=1,
                progress=False))
            times.setdefault(name, []).append(seconds)
        seconds, _ = timed(lambda i=i: nbr.run_pack("credit", 1, output_dir=root / f"pack-{i}",
                                                    uri=uri, progress=False))
        times.setdefault("pack", []).append(seconds)
    html = next((root / "single-0" / "validation").glob("*.html"))
    pdf_seconds = (timed(lambda: export.to_pdf(html, root / "x.pdf",
                                               browser=export.chromium() or ""))[0]
                   if pdf else None)
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'run':14} {'median s':>9}  target")
    for name, value in medians.items():
        target = TARGETS["pack"] if name == "pack" else TARGETS["report"]
        verdict = "" if name == "empty" else ("PASS" if value <= target else "FAIL")
        print(f"{name:14} {value:9.2f}  {'' if name == 'empty' else f'<= {target:.0f} s'} "
              f"{verdict}")
    print(f"PDF print (Chromium): {pdf_seconds:.2f} s" if pdf_seconds is not None
          else "no Chromium: PDFs skipped")
    out = HERE / "results" / "report-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"times": times, "medians": medians, "pdf_seconds": pdf_seconds,
                               "repeat": args.repeat}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
