"""``nbregistry report`` and ``nbregistry pack``: compliance reports run by papermill, each
recorded in the audit log."""

from __future__ import annotations

import argparse
from typing import Any

from ..domain.errors import InvalidInputError
from .options import FAILED, OK, add_json, add_uri, command


def add(sub: Any) -> None:
    report = command(sub, "report", "run a compliance report template (papermill) and record "
                     "it in the audit log", "nbregistry report validation -p model=credit_risk "
                     "-p version=2 --output-dir reports/validation --no-pdf")
    report.add_argument("template", help="validation, monitoring, fair_lending, sox_change "
                        "or the path of an .ipynb")
    report.add_argument("-p", "--param", dest="params", action="append", default=[],
                        metavar="KEY=VALUE", help="a template parameter (repeatable)")
    pack = command(sub, "pack", "every report for a model version, with an index page",
                   "nbregistry pack credit_risk 2 --output-dir reports/credit_risk-v2")
    pack.add_argument("model")
    pack.add_argument("version", type=int)
    for cmd in (report, pack):
        cmd.add_argument("--output-dir", required=True, help="folder for the outputs")
        add_uri(cmd)
        cmd.add_argument("--user", default=None, help="who runs it (default $NBREGISTRY_USER)")
        cmd.add_argument("--no-pdf", action="store_true", help="skip the PDF")
        cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    report.set_defaults(run=run_report)
    pack.set_defaults(run=run_pack)
    again = command(sub, "reverify", "check a recorded report from its files (a folder or a "
                    ".zip, wherever they are) and re-run it against the data it read; exit 4 "
                    "when a file, a shown value or a key figure differs",
                    "nbregistry reverify received/credit_risk-v2.zip --uri s3://bank/registry")
    again.add_argument("report", help="the report's folder or .zip, or its event's seq")
    add_uri(again)
    again.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json(again)
    again.set_defaults(run=run_reverify)


def run_report(args: argparse.Namespace) -> int:
    from ..reports.params import validate
    from ..reports.templates import template_path

    pairs = [p.partition("=") for p in args.params]
    bad = [k for k, sep, _ in pairs if not sep or not k]
    if bad:
        raise InvalidInputError(f"parameters are KEY=VALUE, got {bad}", field="params")
    raw = {k.strip(): v for k, _, v in pairs}
    values = validate(template_path(args.template), raw, coerce=True)
    from ..reports import run_report

    options = {"output_dir": args.output_dir, "uri": args.uri, "user": args.user,
               "progress": not args.quiet, "pdf": False if args.no_pdf else None}
    report = run_report(args.template, **options, **{k: values[k] for k in raw})
    assert report.event is not None
    print(f"recorded the {report.template} report as event {report.event.seq}; registry head "
          f"{report.head[0]}:{report.head[1]}")
    for path in report.files.values():
        print(f"  {path}  sha256 {report.outputs[path.name]}")
    return OK


def run_pack(args: argparse.Namespace) -> int:
    from ..reports import run_pack

    pack = run_pack(args.model, args.version, output_dir=args.output_dir, uri=args.uri,
                    user=args.user, progress=not args.quiet,
                    pdf=False if args.no_pdf else None)
    for name, report in pack.reports.items():
        assert report.event is not None
        print(f"{name}: event {report.event.seq}, {report.files['html']}")
    print(f"index: {pack.index} ({pack.seconds:.1f} s)")
    return OK


def run_reverify(args: argparse.Namespace) -> int:
    from ..reports import reverify
    from .options import emit_json

    target: str | int = int(args.report) if args.report.isdigit() else args.report
    result = reverify(target, uri=args.uri, progress=not args.quiet)
    if args.json:
        emit_json({"ok": result.ok, "seq": result.seq, "template": result.template,
              "source": result.source, "error": result.error, "figures": result.figures,
              "files": result.files, "differences": result.differences,
              "rendering": result.rendering, "template_check": result.template_check})
    else:
        print(repr(result))
    return OK if result.ok else FAILED
