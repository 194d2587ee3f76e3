"""The Delta log replayed from its JSON commits alone, without checkpoints.

The JSON commits and the data files are the evidence; checkpoints are derived data that make
opening fast. Verification must not depend on them (a corrupt checkpoint is reported, not
fatal), and when deltalake cannot open a table because of one, the registry still opens
from the commits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from . import commits
from .location import Location


@dataclass
class Replay:
    version: int = -1
    files: dict[str, int] = field(default_factory=dict)        # active path -> size
    written: dict[int, datetime] = field(default_factory=dict)  # event seq -> commit time
    missing: list[int] = field(default_factory=list)            # log versions with no file
    unreadable: list[int] = field(default_factory=list)         # commits that don't parse
    protocol: dict[str, Any] = field(default_factory=dict)
    configuration: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)


def replay(location: Location, table: str) -> Replay:
    """Active files, commit times and damage, from one listing and every commit file."""
    out = Replay()
    listed = location.list(f"{table}/{commits.LOG}/")
    versions: dict[int, tuple[str, datetime]] = {}
    for key, _, modified in listed:
        name = key.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            versions[int(name[:-5])] = (key, modified)
        elif ".checkpoint." in name:
            out.checkpoints.append(key)
    if not versions:
        return out
    out.version = max(versions)
    out.missing = [v for v in range(out.version + 1) if v not in versions]
    for version in sorted(versions):
        key, modified = versions[version]
        try:
            actions = [json.loads(line) for line in
                       location.read_bytes(key).decode().splitlines() if line.strip()]
        except (ValueError, UnicodeDecodeError, FileNotFoundError):
            out.unreadable.append(version)
            continue
        _apply(out, actions, version, modified)
    return out


def _apply(out: Replay, actions: list[dict[str, Any]], version: int,
           modified: datetime) -> None:
    for action in actions:
        if "add" in action:
            out.files[unquote(action["add"]["path"])] = int(action["add"]["size"])
        elif "remove" in action:
            out.files.pop(unquote(action["remove"]["path"]), None)
        elif "protocol" in action:
            out.protocol = action["protocol"]
        elif "metaData" in action:
            out.configuration = dict(action["metaData"].get("configuration") or {})
        elif "commitInfo" in action:
            seq = action["commitInfo"].get("nbregistry.seq")
            if isinstance(seq, str) and seq.isdigit():
                out.written[int(seq)] = modified
    if version == 0:
        out.written.setdefault(1, modified)  # the genesis event, written by deltalake
