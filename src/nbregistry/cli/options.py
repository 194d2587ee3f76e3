"""What every subcommand shares: exit codes, the example in its ``--help``, opening the
registry, and JSON for machines."""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

OK, ERROR, USAGE, ALERTS, FAILED = 0, 1, 2, 3, 4
URI_HELP = "registry URI (default $NBREGISTRY_URI or ./.nbregistry)"


def command(sub: Any, name: str, text: str, *examples: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with worked examples (schedulers copy them)."""
    import textwrap

    lines = "\n".join(f"  {e}" for e in examples)
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=text, description=textwrap.fill(text, 88),
        epilog=f"example{'s' * (len(examples) > 1)}:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def add_uri(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--uri", default=None, help=URI_HELP)


def add_writer(cmd: argparse.ArgumentParser, who: str = "who acts") -> None:
    """Options of commands that write events: who, and the key their events are signed
    with once an admin enrolled one."""
    add_uri(cmd)
    cmd.add_argument("--user", default=None, help=f"{who} (default $NBREGISTRY_USER)")
    cmd.add_argument("--signing-key", default=None, metavar="PEM_FILE",
                     help="the user's Ed25519 private key (PEM), when their public key is "
                          "enrolled: their events must be signed")


def add_json(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--json", action="store_true", help="print JSON for machines")


def open_existing(args: argparse.Namespace) -> Any:
    """The registry named by ``--uri``, never created by a typo (``NotFoundError``)."""
    from ..registry import open_registry

    key = getattr(args, "signing_key", None)
    return open_registry(args.uri, getattr(args, "user", None), create=False,
                         signing_key=None if key is None else read_file(key, "--signing-key"))


def read_file(path: str, option: str) -> bytes:
    from ..domain.errors import InvalidInputError

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{option} {path}: {exc.strerror or exc}",
                                field=option.strip("-")) from None


def emit_json(value: Any) -> None:
    """One JSON document on stdout; times as ISO 8601 UTC, like the log writes them, and a
    figure that could not be computed (NaN) as null: strict parsers (jq) refuse NaN."""
    print(json.dumps(_finite(value), default=_default, ensure_ascii=False, allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _default(value: Any) -> Any:
    from ..domain.timefmt import ts_text

    if isinstance(value, datetime):
        return ts_text(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def flat(text: object) -> str:
    """One line: messages on a terminal or in a scheduler's log stay greppable."""
    return " ".join(str(text).split("\n"))
