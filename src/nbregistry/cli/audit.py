"""``nbregistry verify`` (the auditor's check) and ``nbregistry deploy`` (the pipeline's
record of what it shipped)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from ..domain.errors import InvalidInputError
from .options import (
    FAILED,
    OK,
    URI_HELP,
    add_json,
    add_writer,
    command,
    emit_json,
    open_existing,
    read_file,
)
from .tables import clean


def add(sub: Any) -> None:
    verify = command(sub, "verify", "check the audit trail: chain, gaps, signatures, "
                     "artifacts, seals, clock, and the heads recorded or witnessed elsewhere",
                     "nbregistry verify nbregistry-demo/registry --witness nbregistry-demo/witness",
                     "nbregistry verify s3://bank-models/registry --expected-head 1042:9f2c…"
                     " --trusted-keys pinned-keys.json --json")
    verify.add_argument("location", nargs="?", default=None, metavar="URI", help=URI_HELP)
    verify.add_argument("--uri", default=None, help="the same as URI")
    verify.add_argument("--expected-head", default=None, metavar="SEQ:HASH",
                        help="a head recorded elsewhere (a report, a ticket): detects a cut "
                             "or rewritten log")
    verify.add_argument("--witness", default=None, help="where heads were published "
                        "(default $NBREGISTRY_WITNESS)")
    verify.add_argument("--trusted-keys", default=None, metavar="JSON_FILE",
                        help='public keys pinned outside the registry: {"user": "PEM", ...}')
    add_json(verify)
    verify.set_defaults(run=run_verify)
    deploy = command(sub, "deploy", "record a deployment (refused unless the version holds "
                     "the stage)", "nbregistry deploy credit_risk 2 --target scoring-eu-1 "
                     "--sha256 \"$(sha256sum model.skops | cut -d' ' -f1)\"")
    deploy.add_argument("model")
    deploy.add_argument("version")
    deploy.add_argument("--target", required=True, help="where it was deployed")
    deploy.add_argument("--sha256", default=None, help="hash of the artifact actually deployed")
    deploy.add_argument("--stage", default="production")
    deploy.add_argument("--comment", default="")
    add_writer(deploy, "who deploys")
    deploy.set_defaults(run=run_deploy)


def run_verify(args: argparse.Namespace) -> int:
    from .. import verify

    if args.location and args.uri and args.location != args.uri:
        raise InvalidInputError(f"two registries named: {args.location} and --uri {args.uri}; "
                                "give one", field="uri")
    report = verify(args.location or args.uri, expected_head=_head(args.expected_head),
                    witness=args.witness, trusted_keys=_keys(args.trusted_keys),
                    progress=not args.json and _tty())
    if [p.kind for p in report.problems] == ["missing"]:  # a wrong path, not a broken log
        raise_missing(report.problems[0].message)
    if args.json:
        emit_json({"ok": report.ok, "events": report.events, "artifacts": report.artifacts,
                   "head": {"seq": report.head_seq, "hash": report.head_hash},
                   "checks": [asdict(c) for c in report.checks],
                   "problems": [asdict(p) for p in report.problems],
                   "notices": [asdict(p) for p in report.notices]})
    else:
        print(_text(report))
    return OK if report.ok else FAILED


def _text(report: Any) -> str:
    lines = [clean(line) for line in repr(report).splitlines()]
    lines.append(f"head {report.head_seq}:{report.head_hash} (record it: --expected-head "
                 "proves later that nothing before it was cut or rewritten)")
    return "\n".join(lines)


def raise_missing(message: str) -> None:
    from ..domain.errors import NotFoundError

    raise NotFoundError(f"{message}: check the URI (or $NBREGISTRY_URI)")


def _tty() -> bool:
    import sys

    return sys.stderr.isatty()


def _head(text: str | None) -> tuple[int, str] | None:
    if text is None:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isascii() or not seq.isdigit() or len(digest) != 64:
        raise InvalidInputError(f"--expected-head must be SEQ:HASH (the 64-character hash), "
                                f"got {text!r}", field="expected_head")
    return int(seq), digest


def _keys(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        keys = json.loads(read_file(path, "--trusted-keys"))
    except ValueError as exc:
        raise InvalidInputError(f"--trusted-keys {path} is not JSON: {exc}",
                                field="trusted_keys") from None
    if not isinstance(keys, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(k, str) for k in v))
            for v in keys.values()):
        raise InvalidInputError(f'--trusted-keys {path} must map users to PEM public keys: '
                                '{"val-bob": "-----BEGIN PUBLIC KEY-----\\n..."}',
                                field="trusted_keys")
    return keys


def run_deploy(args: argparse.Namespace) -> int:
    reg = open_existing(args)
    event = reg.record_deployment(args.model, args.version, args.target, sha256=args.sha256,
                                  stage=args.stage, comment=args.comment)
    match = "matches" if event.payload["matches"] else "DOES NOT MATCH"
    print(f"recorded deployment of {args.model} v{event.version} to {args.target} at seq "
          f"{event.seq}; deployed sha256 {match} the approved artifact")
    return OK if event.payload["matches"] else FAILED

