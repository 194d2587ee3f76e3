"""The same registry on an object store: a real moto S3 server over HTTP on 127.0.0.1.

On S3 there is no local writer lock: correctness rests on Delta's put-if-absent commit
(conditional PUT, ``If-None-Match: *``) alone.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import nbregistry as nbr
import workers
from s3server import BUCKET, s3_client

pytestmark = pytest.mark.slow


def test_round_trip(s3_server: dict[str, str], s3_uri: str) -> None:
    reg = nbr.open_registry(s3_uri, user="alice", storage_options=s3_server)
    assert reg.uri == s3_uri
    first = reg.register(workers.Model(1, 0), "credit_risk", params={"depth": 3},
                         metrics={"auc": 0.71}, tags={"team": "risk"}, description="first")
    second = reg.register(workers.Model(1, 1), "credit_risk", metrics={"auc": 0.78})
    assert (first.version, second.version) == (1, 2)
    assert reg.get("credit_risk", 1).params == {"depth": 3}
    assert reg.get("credit_risk").version == 2
    assert reg.load("credit_risk", 1, trusted=True) == workers.Model(1, 0)

    moved = reg.set_alias("credit_risk", "champion", 2)
    assert "champion" in moved.aliases
    assert reg.get("credit_risk@champion").version == 2
    assert reg.load("credit_risk@champion", trusted=True) == workers.Model(1, 1)

    best = reg.search("credit_risk", metric="auc")
    assert best.column("version").to_pylist() == [2, 1]
    assert reg.search(tags={"team": "risk"}).column("version").to_pylist() == [1]
    assert reg.search(alias="champion").column("version").to_pylist() == [2]

    report = reg.verify()
    assert report.ok, report.problems
    assert (report.events, report.artifacts) == (4, 2)

    # Another client (fresh process state) sees the same log, head and objects.
    other = nbr.open_registry(s3_uri, user="bob", storage_options=s3_server)
    assert other.head == reg.head
    assert other.load("credit_risk@champion", trusted=True) == workers.Model(1, 1)
    assert nbr.verify(s3_uri, storage_options=s3_server).ok
    # A stale reader catches up with a write made elsewhere.
    other.set_alias("credit_risk", "champion", 1)
    assert reg.get("credit_risk@champion").version == 1
    assert [row["action"] for row in reg.history("credit_risk").to_pylist()] == [
        "register", "register", "set_alias", "set_alias"]


def test_merges_checkpoints_and_a_clean_up_on_s3(s3_server: dict[str, str], s3_uri: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from nbregistry.registry import verify
    from nbregistry.store import eventlog

    monkeypatch.setattr(eventlog, "FANOUT", 3)
    monkeypatch.setattr(eventlog, "CHECKPOINT_EVERY", 10)
    monkeypatch.setattr(verify, "PARALLEL_FROM", 0)  # the replay in a child, over HTTP too
    reg = nbr.open_registry(s3_uri, user="alice", storage_options=s3_server)
    reg.register(workers.Model(1, 0), "m")
    reader = nbr.open_registry(s3_uri, user="bob", storage_options=s3_server)
    for i in range(30):
        reg.comment("m", 1, f"note {i}")
    assert len(reg.ledger.log.files()) < 10
    assert reg.ledger.log.vacuum(grace=timedelta(0))  # the replaced files, an hour later
    fresh = nbr.open_registry(s3_uri, storage_options=s3_server)  # checkpoint + listed tail
    assert fresh.head == reg.head and fresh.ledger.log.files() == reg.ledger.log.files()
    assert reader.refresh().head == reg.head  # far behind the clean-up: catches up
    assert nbr.verify(s3_uri, storage_options=s3_server).ok


def test_four_processes_register_and_alias(s3_server: dict[str, str], s3_uri: str) -> None:
    processes, iterations = 4, 10
    got = workers.run_processes(s3_uri, processes, iterations, storage_options=s3_server)
    reg = nbr.open_registry(s3_uri, user="auditor", storage_options=s3_server)
    workers.check_register_alias_log(reg, got)
    assert reg.search(workers.MODEL).column("version").to_pylist() == list(range(1, 41))


def test_overwritten_artifact_is_detected(s3_server: dict[str, str], s3_uri: str) -> None:
    reg = nbr.open_registry(s3_uri, user="alice", storage_options=s3_server)
    mv = reg.register(workers.Model(7, 0), "credit_risk", metrics={"auc": 0.7})
    reg.register(workers.Model(7, 1), "credit_risk", metrics={"auc": 0.8})
    assert reg.verify().ok

    prefix = s3_uri.removeprefix(f"s3://{BUCKET}/")
    key = f"{prefix}/_registry/artifacts/sha256/{mv.sha256[:2]}/{mv.sha256[2:]}"
    client = s3_client(s3_server)
    original = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert len(original) == mv.size
    client.put_object(Bucket=BUCKET, Key=key, Body=b"not the model you registered")

    report = reg.verify()
    assert not report.ok
    assert [(p.kind, p.seq) for p in report.problems] == [("artifact_modified", 2)]
    assert not nbr.verify(s3_uri, storage_options=s3_server).ok
    with pytest.raises(nbr.IntegrityError, match="modified"):
        reg.load("credit_risk", 1, trusted=True)
    with pytest.raises(nbr.IntegrityError):
        nbr.open_registry(s3_uri, user="bob", storage_options=s3_server).load("credit_risk", 1,
                                                                                  trusted=True)
    # untouched versions still load
    assert reg.load("credit_risk", 2, trusted=True) == workers.Model(7, 1)


def test_heads_published_to_a_worm_bucket_survive_an_attacker(s3_server: dict[str, str],
                                                              tmp_path: Any) -> None:
    """The witness sits in a bucket under S3 Object Lock (COMPLIANCE retention): the
    registry publishes heads with put-if-absent, and nobody can delete or overwrite them."""
    import botocore.exceptions

    client = s3_client(s3_server)
    bucket = f"witness-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    client.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    witness = f"s3://{bucket}/heads"
    uri = str(tmp_path / "reg")
    options = s3_server  # the witness adds the checksum Object Lock requires
    reg = nbr.open_registry(uri, user="alice", witness=witness,
                            witness_storage_options=options)
    reg.grant_role("bob", "validator")
    reg.register(workers.Model(1, 0), "credit_risk")
    listed = client.list_object_versions(Bucket=bucket)["Versions"]
    assert listed, "no head was published"
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key=listed[0]["Key"],
                             VersionId=listed[0]["VersionId"])
    report = reg.verify(witness=witness, witness_storage_options=options)
    assert report.ok and any(c.name == "witness" and c.ok for c in report.checks)


def test_deltalake_only_settings_do_not_break_the_blob_store(s3_server: dict[str, str],
                                                             s3_uri: str) -> None:
    """Options that only deltalake knows (copied from delta-rs's S3 docs) reach deltalake
    and are left out of the object store that holds blobs and commits."""
    options = {**s3_server, "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
               "AWS_S3_LOCKING_PROVIDER": "none"}
    reg = nbr.open_registry(s3_uri, user="alice", storage_options=options)
    reg.register(workers.Model(1, 0), "credit_risk")
    assert reg.load("credit_risk", 1, trusted=True) == workers.Model(1, 0)
    assert nbr.verify(s3_uri, storage_options=options).ok
