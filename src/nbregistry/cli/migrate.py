"""``nbregistry import-mlflow``: bring an MLflow model registry in (again: only what is new),
every version with its run's metrics, params and lineage, stages requested under the policy."""

from __future__ import annotations

import argparse
from typing import Any

from ..domain.errors import InvalidInputError
from .options import OK, add_uri, command


def add(sub: Any) -> None:
    cmd = command(sub, "import-mlflow", "import an MLflow model registry: models, versions, "
                  "descriptions, tags, aliases, run metrics and params, artifacts, lineage; "
                  "stages are requested under the policy (again: only what is new)",
                  "nbregistry import-mlflow --tracking-uri sqlite:///mlflow.db",
                  "nbregistry import-mlflow --tracking-uri http://mlflow:5000 --models "
                  "credit_risk --stage Production=production")
    cmd.add_argument("--tracking-uri", required=True, help="MLflow's tracking URI")
    cmd.add_argument("--registry-uri", default=None, help="MLflow's model registry URI, "
                     "when not the tracking URI")
    cmd.add_argument("--models", nargs="+", default=None, metavar="NAME",
                     help="only these registered models (default: all)")
    cmd.add_argument("--name", action="append", default=[], metavar="MLFLOW=NAME",
                     help="the registry name for an MLflow model (repeatable)")
    cmd.add_argument("--stage", action="append", default=[], metavar="MLFLOW=STAGE",
                     help="map an MLflow stage to a policy stage; empty: the initial stage")
    cmd.add_argument("--python", default=None, help="the Python of an environment with "
                     "MLflow (default: this one)")
    add_uri(cmd)
    cmd.add_argument("--user", default=None, help="who imports (default $NBREGISTRY_USER)")
    cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> int:
    from ..registry import import_mlflow

    result = import_mlflow(args.tracking_uri, uri=args.uri, user=args.user,
                           models=args.models, names=pairs(args.name, "--name"),
                           stages=pairs(args.stage, "--stage"),
                           registry_uri=args.registry_uri, python=args.python,
                           progress=not args.quiet)
    print(result)
    return OK


def pairs(items: list[str], option: str) -> dict[str, Any]:
    split = [item.partition("=") for item in items]
    bad = [item for item, (key, sep, _) in zip(items, split, strict=True) if not sep or not key]
    if bad:
        raise InvalidInputError(f"{option} takes MLFLOW=VALUE, got {bad}", field=option)
    return {key: value or None for key, _, value in split}
