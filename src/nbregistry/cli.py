"""The ``nbregistry`` command: the demo, audit helpers and a deployment hook for pipelines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .domain.errors import NbRegistryError

URI_HELP = "registry URI (default $NBREGISTRY_URI or ./.nbregistry)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbregistry", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train, register and audit two models in ./nbregistry-demo")
    demo.add_argument("--path", default="nbregistry-demo", help="folder to (re)create")
    for name, text in (("verify", "check the audit trail (chain, gaps, artifacts)"),
                       ("history", "print the event log"), ("models", "list model versions")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--uri", default=None, help=URI_HELP)
        if name == "history":
            cmd.add_argument("model", nargs="?", default=None)
        if name == "verify":
            cmd.add_argument("--expected-head", default=None, metavar="SEQ:HASH",
                             help="a head recorded elsewhere (a report, a ticket): detects a "
                                  "cut or rewritten log")
            cmd.add_argument("--witness", default=None, help="where heads were published "
                             "(default $NBREGISTRY_WITNESS)")
    deploy = sub.add_parser("deploy", help="record a deployment (refused unless approved)")
    deploy.add_argument("model")
    deploy.add_argument("version")
    deploy.add_argument("--target", required=True, help="where it was deployed")
    deploy.add_argument("--sha256", default=None, help="hash of the artifact actually deployed")
    deploy.add_argument("--stage", default="production")
    deploy.add_argument("--comment", default="")
    deploy.add_argument("--uri", default=None, help=URI_HELP)
    deploy.add_argument("--user", default=None, help="who deploys (default $NBREGISTRY_USER)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except NbRegistryError as exc:
        print(f"nbregistry: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .domain.extras import require

        for module in ("sklearn", "pandas"):
            require("demo", module)
        from .demo import run

        return 0 if run(args.path)["verify"].ok else 1
    if args.command == "verify":
        from . import verify

        report = verify(args.uri, expected_head=_head(args.expected_head),
                        witness=args.witness)
        print(repr(report))
        return 0 if report.ok else 1
    from .registry import open_registry

    if args.command == "deploy":
        reg = open_registry(args.uri, args.user, create=False)
        event = reg.record_deployment(args.model, args.version, args.target,
                                      sha256=args.sha256, stage=args.stage,
                                      comment=args.comment)
        match = "matches" if event.payload["matches"] else "DOES NOT MATCH"
        print(f"recorded deployment of {args.model} v{event.version} to {args.target} at seq "
              f"{event.seq}; deployed sha256 {match} the approved artifact")
        return 0 if event.payload["matches"] else 1
    reg = open_registry(args.uri, create=False)
    table = reg.history(args.model) if args.command == "history" else reg.search()
    print(text_table(table.to_pylist()))
    return 0


def _head(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isascii() or not seq.isdigit() or len(digest) != 64:
        from .domain.errors import InvalidInputError

        raise InvalidInputError(f"--expected-head must be SEQ:HASH (the 64-character hash), "
                                f"got {text!r}", field="expected_head")
    return int(seq), digest


def text_table(rows: list[dict[str, Any]], *, width: int = 60) -> str:
    """Rows as aligned text without pandas (the CLI runs on the core install)."""
    if not rows:
        return "(no rows)"
    columns = list(rows[0])
    cells = [[_cell(row[c], width) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
