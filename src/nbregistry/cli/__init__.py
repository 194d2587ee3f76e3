"""The nbregistry command, for schedulers, pipelines and auditors: monitoring checks,
batch prediction and outcome logs, deployments, compliance reports, the audit check.

exit codes:
  0  done; nothing to report
  1  error: nothing was done (one line on stderr says what to do)
  2  usage: unknown command or option, missing argument
  3  check: alerts were recorded (and the policy's action applied)
  4  the evidence does not hold: verify found problems, or a deployment was recorded whose
     artifact is not the approved one
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..domain.errors import NbRegistryError
from . import audit, browse, migrate, monitoring, reports, watching
from .options import ERROR, FAILED, OK, command, flat


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="nbregistry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nbregistry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = command(sub, "demo", "the whole product on synthetic credit data, in "
                   "./nbregistry-demo: register, approve, deploy, monitor, report, audit",
                   "nbregistry demo --no-reports --path /tmp/nbregistry-demo")
    demo.add_argument("--path", default="nbregistry-demo", help="folder to (re)create")
    demo.add_argument("--no-reports", action="store_true",
                      help="skip the compliance pack (the slowest step: a Jupyter kernel)")
    demo.set_defaults(run=_demo)
    for module in (monitoring, watching, browse, audit, reports, migrate):
        module.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except NbRegistryError as exc:
        print(f"nbregistry: {flat(exc)}", file=sys.stderr)
        return ERROR
    except BrokenPipeError:  # `nbregistry history | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def _demo(args: argparse.Namespace) -> int:
    from ..domain.extras import require

    for module in ("sklearn", "pandas", "duckdb", "papermill"):
        require("demo", module)
    from ..demo import run

    result: dict[str, Any] = run(args.path, reports=not args.no_reports)
    return OK if result["verify"].ok else FAILED


if __name__ == "__main__":
    sys.exit(main())
