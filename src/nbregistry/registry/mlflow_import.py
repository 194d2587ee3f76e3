"""``nbr.import_mlflow`` and ``nbregistry import-mlflow``: an MLflow model registry migrated
into this one through the public Registry API, idempotently.

Each READY MLflow model version becomes a registry version: its model directory as one
artifact (the ``mlflow`` flavor), its run's params and metrics, the model's and version's
tags and descriptions, and a lineage naming the MLflow model, version, run id and source.
That lineage is also how a later run recognises what an earlier one imported, so running
the import again adds only what is new in MLflow. Aliases follow MLflow's; stages are
requested through governance (``mlflow_stages``).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..domain import validate
from ..domain.errors import InvalidInputError, NbRegistryError, NotFoundError
from .mlflow_model import MlflowModel
from .mlflow_source import MlflowSource, identity, lineage, redact, register_arguments
from .mlflow_stages import Target, request_stages, stage_map

if TYPE_CHECKING:
    from .registry import Registry

Key = tuple[Any, ...]  # (MLflow model name, version, run id)


@dataclass(frozen=True, slots=True)
class MlflowImport:
    """What one import did. ``events`` is how many events it wrote: 0 means the registry
    already held everything (a repeated import)."""

    tracking_uri: str
    names: dict[str, str]                 # MLflow model name -> registry model name
    stage_map: dict[str, str | None]      # MLflow stage -> policy stage (None: initial)
    imported: tuple[tuple[str, int, str, int], ...]  # (MLflow name, v, registry name, v)
    already: int                          # versions an earlier import brought
    aliases: tuple[str, ...]              # aliases set or moved by this import
    stages: tuple[str, ...]               # where each staged version stands
    notes: tuple[str, ...] = field(default=())  # what was left out, and why
    events: int = 0

    @property
    def changed(self) -> bool:
        return self.events > 0

    def __str__(self) -> str:
        lines = [f"MLflow at {self.tracking_uri}"]
        lines += [f"  model {a!r} -> {b}" for a, b in self.names.items()]
        lines += [f"  stage {a} -> {b or '(stays in the initial stage)'}"
                  for a, b in self.stage_map.items()]
        lines += [f"imported {a} v{va} as {b} v{vb}" for a, va, b, vb in self.imported]
        lines += [f"alias {a}" for a in self.aliases]
        lines += [f"stage {s}" for s in self.stages]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(self.summary)
        return "\n".join(lines)

    @property
    def summary(self) -> str:
        if not self.changed and not self.already:
            return "nothing to import: MLflow has no model version to import; no event written"
        if not self.changed:
            return (f"nothing new: the registry already holds all {self.already} version(s) "
                    "from MLflow and their aliases; no event written")
        return (f"imported {len(self.imported)} version(s) ({self.already} already there), "
                f"{len(self.aliases)} alias change(s); {self.events} event(s) written")

    def __repr__(self) -> str:
        return f"<MlflowImport {self.summary}>"

    def _repr_html_(self) -> str:
        return f"<pre style='white-space:pre-wrap'>{html.escape(str(self))}</pre>"


def import_mlflow(tracking_uri: str, *, registry: Registry | None = None,
                  uri: str | os.PathLike[str] | None = None, user: str | None = None,
                  models: Sequence[str] | None = None, names: Mapping[str, str] | None = None,
                  stages: Mapping[str, str | None] | None = None,
                  registry_uri: str | None = None, python: str | os.PathLike[str] | None = None,
                  progress: bool = True) -> MlflowImport:
    """Import MLflow's registered models (all, or ``models``) into a registry.

    Parameters
    ----------
    tracking_uri : str
        MLflow's tracking URI (``sqlite:///mlflow.db``, ``http://mlflow:5000``, ...);
        ``registry_uri`` when its model registry lives elsewhere.
    registry : Registry, optional
        Where to import; else ``open_registry(uri, user)``.
    names : dict, optional
        MLflow name -> registry name, for names the registry does not allow (by default
        runs of other characters become ``_``: ``"credit risk"`` -> ``credit_risk``).
    stages : dict, optional
        MLflow stage -> policy stage (``None``: stay in the initial stage); by default
        ``Staging``/``Production``/``Archived`` map to the policy's stage of that name.
    python : str or path, optional
        The interpreter that reads MLflow (default: this one, with the ``mlflow`` extra):
        point it at an environment where MLflow is installed if its pins clash with ours.
    progress : bool
        A progress bar over the versions imported.
    """
    if registry is None:
        from .opening import open_registry

        registry = open_registry(uri, user)
    reg = registry
    mapping = stage_map(reg.policy, stages)
    source = MlflowSource(tracking_uri, registry_uri=registry_uri, python=python)
    with source.session(list(models or [])) as session:
        found: list[dict[str, Any]] = session.listing["models"]
        renamed = target_names(found, names)
        known = _imported(reg, renamed.values())
        already = sum(1 for m in found for v in m["versions"] if _key(m, v) in known)
        new = [(m, v) for m in found for v in m["versions"]
               if _key(m, v) not in known and v["status"] == "READY"]
        notes = [f"{m['name']} v{v['version']} not imported: its MLflow status is "
                 f"{v['status']}" for m in found for v in m["versions"]
                 if _key(m, v) not in known and v["status"] != "READY"]
        imported = []
        with _bar(len(new), progress) as bar:
            for item in session.fetch([(m["name"], v["version"], v["run_id"])
                                       for m, v in new]):
                m, v = new[item["index"]]
                v = {**v, "run": item["run"]}
                folder = Path(item["path"])
                model = MlflowModel.from_directory(folder, lineage(
                    source, session.listing["mlflow_version"], m, v, folder,
                    item["artifact_uri"]))
                try:
                    mv = reg.register(model, renamed[m["name"]], **register_arguments(m, v))
                except NbRegistryError as exc:
                    exc.add_note(f"while importing MLflow {m['name']!r} v{v['version']}: the "
                                 "versions before it are imported; fix this one (or leave "
                                 "its model out with models=) and run the import again")
                    raise
                known[_key(m, v)] = mv.version
                imported.append((m["name"], v["version"], mv.name, mv.version))
                bar.update(1)
    aliases, alias_notes = _aliases(reg, found, renamed, known)
    staged, requested = _stages(reg, found, renamed, known, mapping, source)
    return MlflowImport(redact(source.tracking_uri), renamed, mapping, tuple(imported),
                        already, tuple(aliases), tuple(staged), tuple(notes + alias_notes),
                        len(imported) + len(aliases) + requested)


def _key(model: Mapping[str, Any], version: Mapping[str, Any]) -> Key:
    return (model["name"], version["version"], version["run_id"])


def _bar(total: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="importing from MLflow", unit="version",
                disable=not progress or not total)


def target_names(found: Sequence[Mapping[str, Any]], names: Mapping[str, str] | None
                 ) -> dict[str, str]:
    """MLflow name -> registry name: as given, else the MLflow name made valid."""
    given = dict(names or {})
    unknown = sorted(set(given) - {m["name"] for m in found})
    if unknown:
        raise InvalidInputError(f"names= renames {', '.join(map(repr, unknown))}, which the "
                                "import does not read from MLflow", field="names")
    out = {m["name"]: validate.model_name(given[m["name"]]) if m["name"] in given
           else _valid_name(m["name"]) for m in found}
    seen: dict[str, str] = {}
    for mlflow_name, name in out.items():
        if name in seen:
            raise InvalidInputError(
                f"MLflow models {seen[name]!r} and {mlflow_name!r} would both become {name!r}"
                f"; pass names={{{mlflow_name!r}: '...'}} to tell them apart", field="names")
        seen[name] = mlflow_name
    return out


def _valid_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+|\.\.+", "_", name)
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned)[:validate.MAX_NAME]
    try:
        return validate.model_name(cleaned)
    except InvalidInputError:
        raise InvalidInputError(f"MLflow model {name!r} has no usable registry name; pass "
                                f"names={{{name!r}: 'a_name'}}", field="names") from None


def _imported(reg: Registry, names: Any) -> dict[Key, int]:
    """(MLflow model, version, run id) -> registry version, from the lineage of what
    earlier imports registered under these names."""
    out: dict[Key, int] = {}
    present = set(reg.models())
    for name in names:
        if name not in present:
            continue
        for numbers in reg.stages(name).values():
            for number in numbers:
                key = identity(reg.get(name, number).lineage)
                if key is not None:
                    out[key] = number
    return out


def _aliases(reg: Registry, found: list[dict[str, Any]], renamed: dict[str, str],
             known: dict[Key, int]) -> tuple[list[str], list[str]]:
    """Point each MLflow alias at the imported version; (changes made, notes)."""
    done, notes = [], []
    for m in found:
        name, runs = renamed[m["name"]], {v["version"]: v["run_id"] for v in m["versions"]}
        for alias, number in sorted(m["aliases"].items()):
            target = known.get((m["name"], number, runs.get(number)))
            if target is None:
                notes.append(f"alias {m['name']}@{alias} points at MLflow v{number}, which "
                             "was not imported")
                continue
            try:
                validate.alias_name(alias)
                if reg.get(f"{name}@{alias}").version == target:
                    continue
            except InvalidInputError as exc:
                notes.append(f"alias {m['name']}@{alias} not set: {exc}")
                continue
            except NotFoundError:
                pass
            reg.set_alias(name, alias, target)
            done.append(f"{name}@{alias} -> v{target} (MLflow v{number})")
    return done, notes


def _stages(reg: Registry, found: list[dict[str, Any]], renamed: dict[str, str],
            known: dict[Key, int], mapping: dict[str, str | None], source: MlflowSource
            ) -> tuple[list[str], int]:
    lines, written = [], 0
    comment = f"imported from MLflow at {redact(source.tracking_uri)}"
    for m in found:
        targets = [Target(known[_key(m, v)], v["version"], v["stage"], stage)
                   for v in m["versions"]
                   if _key(m, v) in known and (stage := mapping.get(v["stage"]))]
        if targets:
            found_lines, count = request_stages(reg, renamed[m["name"]], targets, comment)
            lines += found_lines
            written += count
    return lines, written
