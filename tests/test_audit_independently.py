"""The auditor's script in docs/audit-independently.md, run with nbregistry unimportable,
against the demo's registry and against copies an attacker with write access tampered with."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from deltalake import DeltaTable, write_deltalake

from nbregistry.domain.canonical import GENESIS_HASH, canonical_json, event_hash
from nbregistry.registry import signing
from nbregistry.store.eventlog import CONFIGURATION, SCHEMA
from test_layers import BLOCK

DOC = Path(__file__).parents[1] / "docs" / "audit-independently.md"
Row = dict[str, Any]


def script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "the page holds exactly one script"
    assert "nbregistry" not in "".join(re.findall(r"^\s*(?:import|from) .*$", blocks[0],
                                                   re.M))
    return blocks[0]


def audit(tmp_path: Path, registry: Path, *options: str) -> tuple[int, str]:
    path = tmp_path / "audit.py"
    path.write_text(script())
    code = ("BLOCKED = {'nbregistry'}\n" + BLOCK + "import runpy\n"
            f"sys.argv = ['audit.py', {str(registry)!r}, *{list(options)!r}]\n"
            f"runpy.run_path({str(path)!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nbregistry.demo import run

    root = tmp_path_factory.mktemp("audit") / "demo"
    run(root, reports=False, say=lambda *_: None)
    return root


def rows_of(registry: Path) -> list[Row]:
    table = DeltaTable(str(registry / "_registry" / "events"))
    rows = [r for uri in table.file_uris() for r in pq.read_table(uri).to_pylist()]
    return sorted(rows, key=lambda r: r["seq"])


def tampered(demo: Path, tmp_path: Path, edit: Callable[[list[Row]], list[Row]]) -> Path:
    """A copy of the demo whose log an attacker rewrote: events edited, every hash after
    them recomputed, the event table replaced by a fresh, valid Delta table."""
    copy = tmp_path / "copy"
    shutil.copytree(demo / "registry", copy)
    rows, head = [], GENESIS_HASH
    for row in edit(rows_of(copy)):
        ts = row["ts"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        digest = event_hash(head, row["seq"], row["event_id"], ts, row["actor"],
                            row["action"], row["model"], row["version"], row["payload"])
        rows.append({**row, "prev_hash": head, "hash": digest})
        head = digest
    shutil.rmtree(copy / "_registry" / "events")
    write_deltalake(str(copy / "_registry" / "events"),
                    pa.Table.from_pylist(rows, schema=SCHEMA), configuration=CONFIGURATION)
    return copy


def test_the_demo_registry_passes(demo: Path, tmp_path: Path) -> None:
    code, out = audit(tmp_path, demo / "registry", "--keys", str(demo / "pinned-keys.json"),
                      "--witness", str(demo / "witness"))
    assert code == 0, out
    assert out.startswith("OK: ") and "2 signed event(s), pinned keys for 1 user(s)" in out
    witnessed = len(list((demo / "witness").rglob("*.json")))
    assert witnessed > 3 and f"{witnessed} witnessed head(s)" in out


def test_an_edited_event_with_its_hashes_recomputed(demo: Path, tmp_path: Path) -> None:
    """The chain checks out; the witness does not, nor does the validator's later signature,
    which covers the hash it followed."""
    def inflate_v1(rows: list[Row]) -> list[Row]:
        register = next(r for r in rows if r["action"] == "register" and r["version"] == 1)
        payload = json.loads(register["payload"])
        payload["metrics"]["auc"] = 0.93
        register["payload"] = canonical_json(payload)
        return rows

    copy = tampered(demo, tmp_path, inflate_v1)
    code, out = audit(tmp_path, copy)
    assert code == 1 and "content no longer matches" not in out and "link" not in out
    assert re.search(r"event \d+ by val-bob: not signed by their enrolled key", out)
    code, out = audit(tmp_path, copy, "--witness", str(demo / "witness"))
    assert code == 1 and "the log was rewritten" in out
    code, out = audit(tmp_path, copy, "--keys", str(demo / "pinned-keys.json"))
    assert code == 1 and re.search(r"event \d+ by val-bob: not signed by a pinned key", out)


def test_a_forged_key_swapped_into_the_log(demo: Path, tmp_path: Path) -> None:
    """The attacker re-signs the approval with a key they enrolled in val-bob's name: the
    log's own keys agree, the key the auditor pinned does not."""
    mallory = Ed25519PrivateKey.generate()
    pem, fingerprint = signing.public_key_pem(mallory.public_key())

    def forge(rows: list[Row]) -> list[Row]:
        head = GENESIS_HASH
        for row in rows:
            payload = json.loads(row["payload"])
            if row["action"] == "register_key":
                payload.update(public_key=pem, fingerprint=fingerprint)
            if row["action"] == "approve":
                payload["comment"] = "approved without reading the validation report"
            if "signature" in payload:  # every event val-bob signed, re-signed by mallory
                payload.pop("signature"), payload.pop("key_fingerprint")
                message = signing.message(
                    prev_hash=head, seq=row["seq"], event_id=row["event_id"],
                    ts=row["ts"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), actor=row["actor"],
                    action=row["action"], model=row["model"], version=row["version"],
                    payload=payload)
                payload["signature"], payload["key_fingerprint"] = signing.sign(mallory,
                                                                               message)
            row["payload"] = canonical_json(payload)
            head = event_hash(head, row["seq"], row["event_id"],
                              row["ts"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), row["actor"],
                              row["action"], row["model"], row["version"], row["payload"])
        return rows

    copy = tampered(demo, tmp_path, forge)
    code, out = audit(tmp_path, copy)
    assert code == 0, out  # chain and the log's own keys: all consistent
    code, out = audit(tmp_path, copy, "--keys", str(demo / "pinned-keys.json"))
    assert code == 1 and "by val-bob: not signed by a pinned key" in out
    assert "content no longer matches" not in out and "does not link" not in out
    code, out = audit(tmp_path, copy, "--witness", str(demo / "witness"))
    assert code == 1 and "the log was rewritten" in out


def test_a_cut_log(demo: Path, tmp_path: Path) -> None:
    heads = sorted(int(p.stem) for p in (demo / "witness").rglob("*.json"))
    copy = tampered(demo, tmp_path, lambda rows: rows[:heads[-1] - 1])
    code, out = audit(tmp_path, copy, "--keys", str(demo / "pinned-keys.json"))
    assert code == 0, out  # every remaining event is intact and properly signed
    code, out = audit(tmp_path, copy, "--witness", str(demo / "witness"))
    assert code == 1 and f"the witness saw event {heads[-1]}" in out and "cut" in out
