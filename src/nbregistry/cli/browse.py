"""``nbregistry models`` and ``nbregistry history``: tables a person reads on a terminal,
JSON a pipeline reads."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..domain.errors import InvalidInputError
from . import tables
from .options import OK, add_json, add_uri, command, emit_json, open_existing
from .tables import Column

MODEL_COLUMNS = [Column("name", "name", keep=9), Column("version", "v", right=True, keep=9),
                 Column("stage", "stage", keep=8), Column("aliases", "aliases", keep=7),
                 Column("created", "created (UTC)", keep=4), Column("by", "by", keep=5),
                 Column("flavor", "flavor", keep=2), Column("sha256", "sha256", keep=3),
                 Column("revalidation", "revalidation", keep=6),
                 Column("description", "description", flex=True, keep=1)]
EVENT_COLUMNS = [Column("seq", "seq", right=True, keep=9),
                 Column("ts", "time (UTC)", keep=6), Column("actor", "actor", keep=8),
                 Column("action", "action", keep=9), Column("model", "model", keep=5),
                 Column("version", "v", right=True, keep=4),
                 Column("details", "details", flex=True, keep=7),
                 Column("hash", "hash", keep=3)]


def add(sub: Any) -> None:
    models = command(sub, "models", "list model versions (newest last within each model)",
                     "nbregistry models --uri nbregistry-demo/registry",
                     "nbregistry models --model credit_risk --limit 5 --json")
    history = command(sub, "history", "print the audit log's events, oldest first",
                      "nbregistry history credit_risk --uri nbregistry-demo/registry",
                      "nbregistry history --limit 20 --json")
    history.add_argument("model", nargs="?", default=None, help="only this model's events")
    for cmd, what in ((models, "versions"), (history, "events")):
        cmd.add_argument("--model", dest="model_option", default=None, metavar="NAME",
                         help=f"only this model's {what}")
        cmd.add_argument("--limit", type=_positive, default=None, metavar="N",
                         help=f"only the newest N {what}")
        add_uri(cmd)
        add_json(cmd)
    models.set_defaults(run=run_models)
    history.set_defaults(run=run_history)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _model(args: argparse.Namespace) -> str | None:
    given = getattr(args, "model", None)
    if given and args.model_option and given != args.model_option:
        raise InvalidInputError(f"two models named: {given!r} and --model "
                                f"{args.model_option!r}; give one", field="model")
    return given or args.model_option  # type: ignore[no-any-return]


def run_models(args: argparse.Namespace) -> int:
    rows = open_existing(args).search(_model(args)).to_pylist()
    if args.limit is not None:
        newest = set(sorted(range(len(rows)), key=lambda i: rows[i]["created_at"])[-args.limit:])
        rows = [r for i, r in enumerate(rows) if i in newest]
    if args.json:
        emit_json([_version_record(r) for r in rows])
        return OK
    if not rows:
        print("(no model versions)")
        return OK
    metrics = sorted({k for r in rows for k, v in r.items() if k.startswith("metrics.")
                      and v is not None})
    columns = [*MODEL_COLUMNS[:4], *(Column(m, m.removeprefix("metrics."), right=True, keep=6)
                                     for m in metrics), *MODEL_COLUMNS[4:]]
    cells = [{"name": r["name"], "version": str(r["version"]), "stage": r["stage"] or "",
              "aliases": ",".join(r["aliases"] or []),
              "created": tables.when(r["created_at"], seconds=False),
              "by": r["created_by"] or "", "flavor": r["flavor"] or "",
              "sha256": tables.short_hash(r["sha256"]),
              "revalidation": r.get("revalidation_required") or "",
              "description": r["description"] or "",
              **{m: tables.number(r[m]) for m in metrics}} for r in rows]
    print(tables.render(columns, cells, tables.width()))
    return OK


def _version_record(row: dict[str, Any]) -> dict[str, Any]:
    """One version for machines: full hash, metrics and params as objects, nothing null."""
    record: dict[str, Any] = {"metrics": {}, "params": {}}
    for key, value in row.items():
        group, dot, name = key.partition(".")
        if dot and group in record:
            if value is not None:
                record[group][name] = value
        elif key == "tags":
            record[key] = dict(value or [])
        elif value is not None:
            record[key] = value
    return record


def run_history(args: argparse.Namespace) -> int:
    model = _model(args)
    table = open_existing(args).history(model)
    rows = table.to_pylist()[-args.limit:] if args.limit else table.to_pylist()
    if args.json:
        emit_json([{**r, "payload": json.loads(r["payload"])} for r in rows])
        return OK
    if not rows:
        print("(no events)")
        return OK
    cells = [{"seq": str(r["seq"]), "ts": tables.when(r["ts"]), "actor": r["actor"],
              "action": r["action"], "model": r["model"] or "",
              "version": "" if r["version"] is None else str(r["version"]),
              "details": tables.summary(r["payload"]), "hash": tables.short_hash(r["hash"])}
             for r in rows]
    columns = [c for c in EVENT_COLUMNS if not (model and c.key == "model")]
    print(tables.render(columns, cells, tables.width()))
    return OK
