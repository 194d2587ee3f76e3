"""A child forked after the storage engine started must get a clear ForkedProcessError that
names the fix ('spawn'), not a Rust panic, a hang or a generic error; spawn must just work.
Reading a local registry never starts the engine (plain file reads), so it works anywhere."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import nbregistry as nbr
import workers


def run_child(method: str, what: str, *, uri: str | None = None, reg: Any = None
              ) -> tuple[str, Any]:
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    child = ctx.Process(target=workers.report_call, args=(queue, what, uri, reg))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"the {method} child hung")
    assert child.exitcode == 0, f"the {method} child died with exit code {child.exitcode}"
    return queue.get(timeout=10)


@pytest.fixture
def engine_started(registry_uri: str) -> nbr.Registry:
    """This process ran deltalake: a registry with one version was opened and written."""
    reg = nbr.open_registry(registry_uri, user="alice")
    reg.register(workers.Model(0, 0), workers.MODEL)
    return reg


def assert_forked_error(outcome: tuple[str, Any]) -> None:
    kind, message = outcome
    assert kind == "ForkedProcessError", f"expected ForkedProcessError, got {kind}: {message}"
    assert "spawn" in message


def test_forked_child_cannot_write(engine_started: nbr.Registry, registry_uri: str) -> None:
    assert_forked_error(run_child("fork", "write", uri=registry_uri))
    assert engine_started.refresh().head[0] == 2  # and nothing was written


def test_forked_child_reads_a_local_registry_without_the_engine(
        engine_started: nbr.Registry, registry_uri: str) -> None:
    assert run_child("fork", "open", uri=registry_uri) == ("ok", engine_started.head)
    assert run_child("fork", "open_get", uri=registry_uri) == ("ok", 1)
    # Someone else writes after our snapshot, so the inherited registry goes to storage.
    nbr.open_registry(registry_uri, user="bob").register(workers.Model(1, 1), workers.MODEL)
    assert run_child("fork", "get", reg=engine_started) == ("ok", 2)


def test_spawned_child_works(engine_started: nbr.Registry, registry_uri: str) -> None:
    assert run_child("spawn", "open", uri=registry_uri) == ("ok", engine_started.head)
    assert run_child("spawn", "open_get", uri=registry_uri) == ("ok", 1)


def test_fork_after_deltalake_used_directly(tmp_path: Path) -> None:
    """deltalake ran in the parent without nbregistry (e.g. to write training data): the
    guard has no pid recorded, yet the forked child must still get ForkedProcessError."""
    ctx = multiprocessing.get_context("spawn")  # a fresh process where nbregistry never ran
    queue = ctx.Queue()
    parent = ctx.Process(target=workers.deltalake_then_fork,
                         args=(queue, str(tmp_path / "training"), str(tmp_path / "registry")))
    parent.start()
    parent.join(120)
    if parent.is_alive():
        parent.kill()
        parent.join()
        pytest.fail("the spawned parent hung")
    assert_forked_error(queue.get(timeout=10))
