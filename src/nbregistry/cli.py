"""The ``nbregistry`` command: the demo, audit helpers, a deployment hook for pipelines and
compliance reports."""

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
    demo = sub.add_parser("demo", help="the whole product on synthetic credit data, in "
                          "./nbregistry-demo: register, approve, deploy, monitor, report, audit")
    demo.add_argument("--path", default="nbregistry-demo", help="folder to (re)create")
    demo.add_argument("--no-reports", action="store_true",
                      help="skip the compliance pack (the slowest step: a Jupyter kernel)")
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
    _report_commands(sub)
    mlflow = sub.add_parser("import-mlflow", help="import an MLflow model registry (again: "
                            "only what is new)")
    mlflow.add_argument("--tracking-uri", required=True, help="MLflow's tracking URI")
    mlflow.add_argument("--registry-uri", default=None, help="MLflow's model registry URI, "
                        "when not the tracking URI")
    mlflow.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="only these registered models (default: all)")
    mlflow.add_argument("--name", action="append", default=[], metavar="MLFLOW=NAME",
                        help="the registry name for an MLflow model (repeatable)")
    mlflow.add_argument("--stage", action="append", default=[], metavar="MLFLOW=STAGE",
                        help="map an MLflow stage to a policy stage; empty: the initial stage")
    mlflow.add_argument("--python", default=None, help="the Python of an environment with "
                        "MLflow (default: this one)")
    mlflow.add_argument("--uri", default=None, help=URI_HELP)
    mlflow.add_argument("--user", default=None, help="who imports (default $NBREGISTRY_USER)")
    mlflow.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _report_commands(sub: Any) -> None:
    report = sub.add_parser("report", help="run a compliance report template (papermill)")
    report.add_argument("template", help="validation, monitoring, fair_lending, sox_change "
                        "or the path of an .ipynb")
    report.add_argument("-p", "--param", dest="params", action="append", default=[],
                        metavar="KEY=VALUE", help="a template parameter (repeatable)")
    pack = sub.add_parser("pack", help="every report for a model version, with an index page")
    pack.add_argument("model")
    pack.add_argument("version", type=int)
    for cmd in (report, pack):
        cmd.add_argument("--output-dir", required=True, help="folder for the outputs")
        cmd.add_argument("--uri", default=None, help=URI_HELP)
        cmd.add_argument("--user", default=None, help="who runs it (default $NBREGISTRY_USER)")
        cmd.add_argument("--no-pdf", action="store_true", help="skip the PDF")
        cmd.add_argument("--quiet", action="store_true", help="no progress bar")


def _report(args: argparse.Namespace) -> int:
    from .domain.errors import InvalidInputError
    from .reports.params import validate
    from .reports.templates import template_path

    pairs = [p.partition("=") for p in args.params]
    bad = [k for k, sep, _ in pairs if not sep or not k]
    if bad:
        raise InvalidInputError(f"parameters are KEY=VALUE, got {bad}", field="params")
    raw = {k.strip(): v for k, _, v in pairs}
    values = validate(template_path(args.template), raw, coerce=True)
    from .reports import run_report

    options = {"output_dir": args.output_dir, "uri": args.uri, "user": args.user,
               "progress": not args.quiet, "pdf": False if args.no_pdf else None}
    report = run_report(args.template, **options, **{k: values[k] for k in raw})
    assert report.event is not None
    print(f"recorded the {report.template} report as event {report.event.seq}; registry head "
          f"{report.head[0]}:{report.head[1]}")
    for path in report.files.values():
        print(f"  {path}  sha256 {report.outputs[path.name]}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from .reports import run_pack

    pack = run_pack(args.model, args.version, output_dir=args.output_dir, uri=args.uri,
                    user=args.user, progress=not args.quiet,
                    pdf=False if args.no_pdf else None)
    for name, report in pack.reports.items():
        assert report.event is not None
        print(f"{name}: event {report.event.seq}, {report.files['html']}")
    print(f"index: {pack.index} ({pack.seconds:.1f} s)")
    return 0


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

        for module in ("sklearn", "pandas", "duckdb", "papermill"):
            require("demo", module)
        from .demo import run

        return 0 if run(args.path, reports=not args.no_reports)["verify"].ok else 1
    if args.command == "report":
        return _report(args)
    if args.command == "pack":
        return _pack(args)
    if args.command == "import-mlflow":
        from .registry.mlflow_import import run_cli

        return run_cli(args)
    if args.command == "verify":
        from . import verify

        report = verify(args.uri, expected_head=_head(args.expected_head),
                        witness=args.witness, progress=sys.stderr.isatty())
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
