"""The ``nbregistry`` command: the demo and a few audit helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .domain.errors import NbRegistryError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbregistry", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train, register and audit two models in ./nbregistry-demo")
    demo.add_argument("--path", default="nbregistry-demo", help="folder to (re)create")
    for name, text in (("verify", "check the audit trail (chain, gaps, artifacts)"),
                       ("history", "print the event log"), ("models", "list model versions")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--uri", default=None, help="registry URI (default $NBREGISTRY_URI "
                                                     "or ./.nbregistry)")
        if name == "history":
            cmd.add_argument("model", nargs="?", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .domain.extras import require

            for module in ("sklearn", "pandas"):
                require("demo", module)
            from .demo import run

            return 0 if run(args.path)["verify"].ok else 1
        if args.command == "verify":
            from . import verify

            report = verify(args.uri)
            print(repr(report))
            return 0 if report.ok else 1
        from .registry import open_registry

        reg = open_registry(args.uri)
        table = reg.history(args.model) if args.command == "history" else reg.search()
        print(table.to_pandas().to_string(index=False))
        return 0
    except NbRegistryError as exc:
        print(f"nbregistry: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
