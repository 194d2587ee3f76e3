"""The git state a registration records: git runs only when something it reads may have
changed, and a commit, an edit, a staged change or a checkout between two registrations is
still recorded exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.registry import gitstate

REAL_GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(REAL_GIT is None, reason="git is not installed")


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that logs each call and runs the real one: counts the git
    processes a registration starts."""
    shim, log = tmp_path / "shim", tmp_path / "git-calls.log"
    shim.mkdir()
    (shim / "git").write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{REAL_GIT}" "$@"\n')
    (shim / "git").chmod(0o755)
    log.write_text("")
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return log


def git(repo: Path, *args: str) -> str:
    return subprocess.run([str(REAL_GIT), "-c", "user.name=t", "-c", "user.email=t@example.com",
                           *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed repository as the working directory."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "train.py").write_text("print(1)\n")
    (repo / "src" / "features.py").write_text("X = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled at once (by default a file changed within
    the last 2 s is never cached: a second write in the same clock tick could leave the
    same times behind). Each test still shows the edit it makes is seen."""
    monkeypatch.setattr(gitstate, "RACY_NS", 0)


def lineage_git(registry: nbr.Registry) -> object:
    return registry.register(TinyModel(), "m").lineage.get("git")


def test_outside_a_repository_git_is_not_run(registry: nbr.Registry, tmp_path: Path,
                                             calls: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    assert gitstate.find(str(plain)) is None, "the test needs a folder outside any repository"
    assert lineage_git(registry) is None and lineage_git(registry) is None
    assert calls.read_text() == ""


@pytest.mark.usefixtures("settled")
def test_unchanged_repository_runs_git_once(registry: nbr.Registry, repo: Path,
                                            calls: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    for _ in range(3):
        assert lineage_git(registry) == {"commit": head, "dirty": False}
    assert len(calls.read_text().splitlines()) == 1


@pytest.mark.usefixtures("settled")
def test_edit_between_registrations_is_recorded(registry: nbr.Registry, repo: Path,
                                                calls: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    target = repo / "src" / "features.py"
    assert lineage_git(registry) == {"commit": head, "dirty": False}
    before = target.stat()
    target.write_text("X = 2\n")  # same size; then its old modification time put back
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert lineage_git(registry) == {"commit": head, "dirty": True}
    target.write_text("X = 1\n")  # reverted: clean again
    assert lineage_git(registry) == {"commit": head, "dirty": False}
    target.unlink()
    assert lineage_git(registry) == {"commit": head, "dirty": True}


@pytest.mark.usefixtures("settled")
def test_commit_stage_and_checkout_between_registrations_are_recorded(
        registry: nbr.Registry, repo: Path, calls: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    assert lineage_git(registry) == {"commit": first, "dirty": False}
    (repo / "train.py").write_text("print(2)\n")
    git(repo, "add", "train.py")
    assert lineage_git(registry) == {"commit": first, "dirty": True}  # staged, not committed
    git(repo, "commit", "-qm", "second")
    second = git(repo, "rev-parse", "HEAD")
    assert lineage_git(registry) == {"commit": second, "dirty": False}
    git(repo, "checkout", "-q", first)  # detached at the first commit
    assert lineage_git(registry) == {"commit": first, "dirty": False}
    git(repo, "checkout", "-q", "-")
    git(repo, "pack-refs", "--all")  # the branch now lives in packed-refs only
    assert lineage_git(registry) == {"commit": second, "dirty": False}
    git(repo, "commit", "-q", "--allow-empty", "-m", "third")
    assert lineage_git(registry) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    assert lineage_git(registry) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}
    assert len(calls.read_text().splitlines()) == 6  # once per change, not per registration


def test_edit_in_the_same_clock_tick_is_recorded(registry: nbr.Registry, repo: Path,
                                                 calls: Path) -> None:
    """With the real margin: a file changed less than 2 s ago is not trusted by its times
    (on a file system with coarse times, the next write in the same tick leaves the same
    ones), so git is asked again and an immediate same-size edit that keeps them is seen."""
    head = git(repo, "rev-parse", "HEAD")
    target = repo / "train.py"
    target.write_text("print(1)\n")  # rewritten now, unchanged
    assert lineage_git(registry) == {"commit": head, "dirty": False}
    assert lineage_git(registry) == {"commit": head, "dirty": False}
    assert len(calls.read_text().splitlines()) == 2  # its times are not trusted yet
    before = target.stat()
    target.write_text("print(3)\n")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert lineage_git(registry) == {"commit": head, "dirty": True}


@pytest.mark.usefixtures("settled")
def test_linked_worktree(registry: nbr.Registry, repo: Path, calls: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    other = repo.parent / "other"
    git(repo, "worktree", "add", "-q", str(other))
    monkeypatch.chdir(other / "src")
    head = git(other, "rev-parse", "HEAD")
    assert lineage_git(registry) == {"commit": head, "dirty": False}
    (other / "train.py").write_text("print(9)\n")
    assert lineage_git(registry) == {"commit": head, "dirty": True}
    git(other, "commit", "-qam", "in the worktree")
    assert lineage_git(registry) == {"commit": git(other, "rev-parse", "HEAD"), "dirty": False}
    assert lineage_git(registry)["commit"] != git(repo, "rev-parse", "HEAD")  # type: ignore[index]


@pytest.mark.usefixtures("settled")
def test_submodules_and_relocating_variables_always_ask_git(
        registry: nbr.Registry, repo: Path, calls: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the fingerprint cannot see (a submodule's files; a repository moved by the
    environment) is never cached."""
    monkeypatch.setenv("GIT_INDEX_FILE", str(repo / ".git" / "index"))
    lineage_git(registry)
    lineage_git(registry)
    assert len(calls.read_text().splitlines()) == 2
    monkeypatch.delenv("GIT_INDEX_FILE")
    inner = repo.parent / "inner"
    inner.mkdir()
    git(inner, "init", "-q")
    git(inner, "commit", "-q", "--allow-empty", "-m", "inner")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner), "lib")
    git(repo, "commit", "-qm", "with a submodule")
    calls.write_text("")
    lineage_git(registry)
    lineage_git(registry)
    assert len(calls.read_text().splitlines()) == 2


@pytest.mark.usefixtures("settled")
def test_a_repository_too_large_to_stat_always_asks_git(
        registry: nbr.Registry, repo: Path, calls: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitstate, "MAX_TRACKED", 1)  # the fixture tracks two files
    lineage_git(registry)
    lineage_git(registry)
    assert len(calls.read_text().splitlines()) == 2
