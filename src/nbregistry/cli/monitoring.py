"""``nbregistry check`` for schedulers (exit 3 when alerts were recorded), and
``log-predictions`` / ``log-outcomes`` for batch scoring jobs written in other languages."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from ..domain.errors import InvalidInputError, NotFoundError
from ..domain.timefmt import ts_text
from .options import (
    ALERTS,
    OK,
    add_json,
    add_uri,
    add_writer,
    command,
    emit_json,
    open_existing,
)
from .tables import clean

FILE_HELP = "a Parquet or CSV file (local or s3://…), or a Delta table's folder or URI"


def add(sub: Any) -> None:
    check = command(sub, "check", "run the policy's monitoring check: drift, performance, "
                    "fairness; record alerts and apply the policy's action (exit 3 on alerts)",
                    "nbregistry check credit_risk --uri nbregistry-demo/registry",
                    "nbregistry check credit_risk --window 1d --json > check.json")
    check.add_argument("model")
    check.add_argument("--window", default=None, metavar="LENGTH",
                       help="judge the last LENGTH (7d, 12h, 2w) instead of the policy's window")
    add_writer(check, "who runs the check")
    add_json(check)
    check.set_defaults(run=run_check)
    logp = command(sub, "log-predictions", "append a batch of scored rows to the model's "
                   "prediction log (columns checked against its feature schema)",
                   "nbregistry log-predictions credit_risk scored.parquet --id-column "
                   "application_id --attributes sex")
    logp.add_argument("model")
    logp.add_argument("file", help=FILE_HELP)
    logp.add_argument("--score", default="score", metavar="COL",
                      help="the score column (default: score)")
    logp.add_argument("--label-column", default=None, metavar="COL",
                      help="predicted class codes, when the score is a probability")
    logp.add_argument("--id-column", default=None, metavar="COL",
                      help="prediction ids, to join outcomes later (default: new ids)")
    logp.add_argument("--ts-column", default=None, metavar="COL",
                      help="when each row was scored (default: now)")
    logp.add_argument("--version", default=None, help="the version that scored (default: "
                      "production's)")
    logp.add_argument("--attributes", default="", metavar="A,B",
                      help="columns to keep besides the features (segment, protected group)")
    logo = command(sub, "log-outcomes", "record actual outcomes, joined to the predictions "
                   "by id", "nbregistry log-outcomes credit_risk defaults.csv --id-column "
                   "application_id --actual-column defaulted")
    logo.add_argument("model")
    logo.add_argument("file", help=FILE_HELP)
    logo.add_argument("--id-column", default="id", metavar="COL",
                      help="the prediction ids (default: id)")
    logo.add_argument("--actual-column", default="actual", metavar="COL",
                      help="the outcome: a class code or a number (default: actual)")
    logo.add_argument("--ts-column", default=None, metavar="COL",
                      help="when each outcome was known (default: now)")
    for cmd, run in ((logp, run_log_predictions), (logo, run_log_outcomes)):
        add_uri(cmd)
        add_json(cmd)
        cmd.set_defaults(run=run)


def run_check(args: argparse.Namespace) -> int:
    result = open_existing(args).monitor(args.model).check(window=args.window)
    if args.json:
        emit_json({"model": result.model, "version": result.version, "ok": result.ok,
                   "window": list(result.window), "seal": _seq(result.seal),
                   "alerts": [{"seq": e.seq, **e.payload} for e in result.alerts],
                   "actions": [{"seq": e.seq, "action": e.action, "version": e.version,
                                **e.payload} for e in result.actions],
                   "notes": result.notes, "figures": result.metrics.select(
                       ["kind", "feature", "metric", "value", "status"]).to_pylist()})
    else:
        print("\n".join(clean(line) for line in _check_lines(result)))
    return OK if result.ok else ALERTS


def _seq(event: Any) -> int | None:
    return None if event is None else int(event.seq)


def _check_lines(result: Any) -> list[str]:
    """A summary, then one line per breach, per action taken and per note."""
    statuses = result.metrics.column("status").to_pylist()
    start, end = (ts_text(t)[:16].replace("T", " ") for t in result.window)
    lines = [f"{result.model} v{result.version}, {start} .. {end} UTC: {len(statuses)} "
             f"figures, {len(result.alerts)} alert(s), {statuses.count('warn')} warning(s)"
             + (f"; tables sealed at event {result.seal.seq}" if result.seal else "")]
    for e in result.alerts:
        p, band = e.payload, e.payload["band"]
        side = ">=" if band["direction"] == "above" else "<="
        lines.append(f"ALERT {p['kind']} {p['metric']}{' ' + p['feature'] if p['feature'] else ''}"
                     f" = {p['value']:.4g} (alert {side} {band['alert']:g}), event {e.seq}")
    lines += [f"action: {e.action} (event {e.seq})" for e in result.actions]
    lines += [f"note: {n}" for n in result.notes]
    return lines


def run_log_predictions(args: argparse.Namespace) -> int:
    table = read_rows(args.file)
    given = {"--score": args.score, "--label-column": args.label_column,
             "--id-column": args.id_column, "--ts-column": args.ts_column}
    _require(table, args.file, given)
    special = {c for c in given.values() if c}
    column = table.column
    attributes = [a.strip() for a in args.attributes.split(",") if a.strip()]
    receipt = open_existing(args).monitor(args.model).log_predictions(
        table.drop_columns(sorted(special)), column(args.score),
        ids=column(args.id_column) if args.id_column else None,
        ts=_times(column(args.ts_column)) if args.ts_column else None,
        labels=column(args.label_column) if args.label_column else None,
        version=args.version, attributes=attributes or None)
    found = {"rows": receipt.rows, "version": receipt.version,
             "table_version": receipt.table_version,
             "ignored_columns": receipt.ignored_columns, "missing": dict(receipt.missing),
             "nonfinite": dict(receipt.nonfinite)}
    if args.json:
        emit_json(found)
    else:
        ignored = ", ".join(receipt.ignored_columns)
        print(f"logged {receipt.rows} predictions of {args.model} v{receipt.version} "
              f"(prediction table version {receipt.table_version})"
              + (f"; not logged (name them in --attributes to keep): {ignored}" if ignored
                 else "") + "".join(f"; {n} missing {c}" for c, n in receipt.missing.items()
                                    if n))
    return OK


def run_log_outcomes(args: argparse.Namespace) -> int:
    table = read_rows(args.file)
    given = {"--id-column": args.id_column, "--actual-column": args.actual_column,
             "--ts-column": args.ts_column}
    _require(table, args.file, given)
    receipt = open_existing(args).monitor(args.model).log_outcomes(
        table.column(args.id_column), table.column(args.actual_column),
        ts=_times(table.column(args.ts_column)) if args.ts_column else None)
    if args.json:
        emit_json(asdict(receipt))
    else:
        print(f"received {receipt.received} outcomes of {args.model}: {receipt.written} "
              f"written ({receipt.unknown} with no logged prediction yet), "
              f"{receipt.duplicates + receipt.already_recorded} duplicate(s) not written "
              f"(outcome table version {receipt.table_version})")
    return OK


def _require(table: Any, source: str, given: dict[str, str | None]) -> None:
    missing = [f"{name!r} ({option})" for option, name in given.items()
               if name and name not in table.column_names]
    if missing:
        raise InvalidInputError(f"{source} has no column {', '.join(missing)}: its columns "
                                f"are {', '.join(table.column_names)}", field="file")


def _times(column: Any) -> Any:
    """Text times (CSV exports) read as ISO 8601; without an offset they are UTC."""
    import pyarrow as pa

    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        return column
    utc = pa.timestamp("us", "UTC")
    try:
        return column.cast(utc)
    except pa.ArrowInvalid:
        pass
    try:
        return column.cast(pa.timestamp("us")).cast(utc)
    except pa.ArrowInvalid as exc:
        bad = str(exc).split(": ", 1)[-1].split(" as a scalar")[0]
        raise InvalidInputError(f"--ts-column: {bad} is not an ISO 8601 time (such as "
                                "2026-03-01T09:30:00Z)", field="ts") from None


def read_rows(source: str) -> Any:
    """A Parquet or CSV file (by its extension), else a Delta table, as Arrow."""
    import pyarrow as pa

    lower = source.lower().rstrip("/")
    try:
        if lower.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return pq.read_table(source)
        if lower.endswith((".csv", ".csv.gz")):
            return _csv(source)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InvalidInputError(f"cannot read {source}: {exc}", field="file") from None
    from ..store import read_table

    try:
        return read_table(source)[0]
    except NotFoundError:
        raise InvalidInputError(f"{source} is neither a .parquet or .csv file nor a Delta "
                                "table", field="file") from None


def _csv(source: str) -> Any:
    import os

    import pyarrow.csv as csv
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(source if "://" in source
                                              else os.path.abspath(source))
    with filesystem.open_input_stream(path) as stream:
        return csv.read_csv(stream)
