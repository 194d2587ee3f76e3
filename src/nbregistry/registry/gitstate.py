"""The repository state a registration records (HEAD's commit, and whether tracked files
differ from it), without one ``git status`` subprocess per registration.

``git status`` costs 3 ms, more than the rest of a registration. Its answer depends only on
HEAD and the ref it names, the index, the tracked files of the working tree and git's
configuration, and between two registrations these rarely change. So each process keeps the
last answer per working directory with a fingerprint of everything it depends on, and gives
it again while the fingerprint is unchanged:

- git's own small files (``.git`` itself, HEAD, the ref, packed-refs, the index, the config
  and attribute files) are compared by their bytes: exact, whatever their timestamps;
- every tracked file (the index's paths) by ``lstat``: inode, mode, size, mtime and ctime in
  nanoseconds. Any write to a file sets its ctime, so an edit is seen, unless it falls in the
  same clock tick as the file's previous change: an answer is kept only when every tracked
  file last changed more than ``RACY_NS`` before git ran (git's own "racily clean" rule);
- an answer is kept only if the fingerprint taken before git ran equals the one after, so a
  change made while git runs is never cached. git runs with ``GIT_OPTIONAL_LOCKS=0``: it does
  not rewrite the user's index as a side effect.

Whatever the fingerprint cannot see exactly is never cached and costs a ``git status`` per
registration as before: submodules, a split, sparse or version-4 index, configuration with
``include``, ``attributesFile``, ``objectFormat`` or ``core.worktree``, replace refs, a ref
that names another ref, an environment variable that moves the repository or its
configuration (``GIT_DIR``, ``GIT_INDEX_FILE``, ``GIT_CONFIG_*``...), more than
``MAX_TRACKED`` tracked files (stat'ing them would cost what ``git status`` does). Outside
any repository (no ``.git`` in the working directory or above it) git is not run at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

RACY_NS = 2_000_000_000  # > the coarsest file-time granularity (FAT: 2 s)
MAX_TRACKED = 2_000  # beyond, stat'ing every tracked file costs what `git status` does
UNCACHEABLE_CONFIG = (b"include", b"attributesfile", b"objectformat")
CORE_WORKTREE = re.compile(rb"^\s*worktree\s*=", re.M)  # a working tree elsewhere
# Environment variables that move the repository, its index or configuration, or change
# what HEAD names (git's documented ones): with any of them set git is asked every time.
# The others (SSL, SSH, trace, editor, author...) do not change what ``git status`` says.
RELOCATING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE",
              "GIT_INDEX_VERSION", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
              "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
              "GIT_DEFAULT_HASH", "GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
              "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS",
              "GIT_ATTR_SOURCE", "GIT_ATTR_NOSYSTEM", "GIT_NO_REPLACE_OBJECTS",
              "GIT_REPLACE_REF_BASE", "GIT_GRAFT_FILE", "GIT_SHALLOW_FILE")
runs = 0  # git subprocesses started by this module (the tests read it)
_cache: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any]]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Layout:
    """Where git keeps what ``git status`` reads, for the repository around a directory."""

    top: str  # the working tree's root
    dotgit: str  # the ``.git`` entry (a folder, or a file naming one for a worktree)
    gitdir: str
    common: str  # the shared folder of linked worktrees (else gitdir)


def state(cwd: str) -> dict[str, Any] | None:
    """``{"commit": ..., "dirty": ...}`` of the repository around ``cwd``, or None outside a
    repository (or when git is missing or fails)."""
    environ = os.environ
    if any(name in environ for name in RELOCATING):
        return _status(cwd)
    layout = find(cwd)
    if layout is None:
        return None
    key = (cwd, layout.dotgit)
    started = time.time_ns()
    before = _fingerprint(layout)
    found = _cache.get(key)
    if found is not None and found[0] == before:
        return dict(found[1])
    answer = _status(cwd)
    if answer is not None and before == _fingerprint(layout) and _settled(before, started):
        with _lock:
            _cache[key] = (before, answer)
    return None if answer is None else dict(answer)


def _status(cwd: str) -> dict[str, Any] | None:
    """Commit and dirty flag (uncommitted changes to tracked files), in one git call;
    untracked files are not scanned (data folders make that slow)."""
    global runs
    runs += 1
    try:
        result = subprocess.run(["git", "status", "--porcelain=v2", "--branch",
                                 "--untracked-files=no"], cwd=cwd,
                                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    commit, dirty = None, False
    for line in result.stdout.splitlines():
        if line.startswith("# branch.oid "):
            commit = line.split()[-1]
        elif not line.startswith("#"):
            dirty = True
    if commit is None or commit == "(initial)":
        return None
    return {"commit": commit, "dirty": dirty}


def find(cwd: str) -> Layout | None:
    """The nearest ``.git`` at or above ``cwd``, as git discovers it (None: no repository).
    A ``.git`` that is neither a folder nor a readable ``gitdir:`` file gives a layout that
    is never cached, so git itself decides."""
    here = os.path.abspath(cwd)
    while True:
        dotgit = os.path.join(here, ".git")
        if os.path.isdir(dotgit):
            return Layout(here, dotgit, dotgit, _common(dotgit))
        if os.path.isfile(dotgit):
            gitdir = _gitdir_of(dotgit)
            return Layout(here, dotgit, gitdir or "", _common(gitdir) if gitdir else "")
        if os.path.isfile(os.path.join(here, "HEAD")) and os.path.isdir(
                os.path.join(here, "objects")):
            return Layout(here, here, "", "")  # inside a git folder or a bare repository
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _gitdir_of(dotgit: str) -> str | None:
    text = _read(dotgit)
    if text is None or not text.startswith(b"gitdir: "):
        return None
    target = os.fsdecode(text[len(b"gitdir: "):].strip())
    return os.path.normpath(os.path.join(os.path.dirname(dotgit), target))


def _common(gitdir: str) -> str:
    text = _read(os.path.join(gitdir, "commondir"))
    if text is None:
        return gitdir
    return os.path.normpath(os.path.join(gitdir, os.fsdecode(text.strip())))


def _read(path: str) -> bytes | None:
    try:
        handle = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(handle, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(handle)


def _outside_files(common: str) -> Iterator[str]:
    """Configuration and attributes git reads from outside the repository."""
    home = os.path.expanduser("~")
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    yield from (os.path.join(home, ".gitconfig"), os.path.join(xdg, "git", "config"),
                os.path.join(xdg, "git", "attributes"), "/etc/gitconfig", "/etc/gitattributes",
                os.path.join(common, "info", "attributes"), os.path.join(common, "info",
                                                                         "grafts"))
    prefix = _git_prefix()
    if prefix:
        yield os.path.join(prefix, "etc", "gitconfig")
        yield os.path.join(prefix, "etc", "gitattributes")


_PREFIX: list[str] = []


def _git_prefix() -> str:
    """The installation prefix of the git on PATH (its system configuration lives under it
    when it is not /usr)."""
    if not _PREFIX:
        import shutil

        found = shutil.which("git")
        _PREFIX.append(os.path.dirname(os.path.dirname(os.path.realpath(found)))
                       if found else "")
    return _PREFIX[0]


UNCACHEABLE: tuple[Any, ...] = ("uncacheable",)


def _fingerprint(layout: Layout) -> tuple[Any, ...]:
    """Everything ``git status`` answers from, or UNCACHEABLE (then a cached answer never
    matches and nothing is cached)."""
    if not layout.gitdir:
        return UNCACHEABLE
    head = _read(os.path.join(layout.gitdir, "HEAD"))
    configs = [_read(os.path.join(layout.common, "config")),
               _read(os.path.join(layout.gitdir, "config.worktree")),
               *(_read(path) for path in _outside_files(layout.common))]
    if head is None or not all(_plain(text) for text in configs if text):
        return UNCACHEABLE
    refs: tuple[bytes | None, ...] = ()
    if head.startswith(b"ref: "):
        name = os.fsdecode(head[5:].strip())
        refs = (_read(os.path.join(layout.common, name)),
                _read(os.path.join(layout.gitdir, name)))  # per-worktree refs live there
        if any(ref is not None and ref.startswith(b"ref:") for ref in refs):
            return UNCACHEABLE  # a ref naming another ref
    packed = _read(os.path.join(layout.common, "packed-refs"))
    replace = os.path.join(layout.common, "refs", "replace")
    if (packed and b"refs/replace/" in packed) or (os.path.isdir(replace)
                                                   and os.listdir(replace)):
        return UNCACHEABLE
    index = _read(os.path.join(layout.gitdir, "index")) or b""
    tracked = _stats(layout.top, index) if index else ()
    if tracked is None:
        return UNCACHEABLE
    return (_read(layout.dotgit) if os.path.isfile(layout.dotgit) else b"", head, refs, packed,
            index, tuple(configs), tracked)


def _plain(config: bytes) -> bool:
    """A configuration whose effect on ``git status`` the fingerprint covers: no other files
    pulled in, no working tree elsewhere, SHA-1 names (the index reader's)."""
    low = config.lower()
    return not (any(word in low for word in UNCACHEABLE_CONFIG) or CORE_WORKTREE.search(low))


def _stats(top: str, index: bytes) -> tuple[Any, ...] | None:
    """lstat of every path in the index (None when the index is not one we read)."""
    paths = _paths(top, index)
    if paths is None:
        return None
    out: list[Any] = []
    lstat = os.lstat
    for path in paths:
        try:
            st = lstat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


_parsed: dict[str, tuple[bytes, list[bytes] | None]] = {}


def _paths(top: str, index: bytes) -> list[bytes] | None:
    """The tracked files' absolute paths, parsed again only when the index changed."""
    found = _parsed.get(top)
    if found is None or found[0] != index:
        root = os.fsencode(top)
        names = _index_paths(index)
        found = _parsed[top] = (index, None if names is None or len(names) > MAX_TRACKED
                                else [os.path.join(root, name) for name in names])
    return found[1]


def _settled(fingerprint: tuple[Any, ...], started: int) -> bool:
    """Cacheable, and no tracked file changed within RACY_NS of ``started`` (or after it):
    a later write to such a file could leave the same times behind."""
    if fingerprint is UNCACHEABLE:
        return False
    limit = started - RACY_NS
    return all(st is None or (st[3] < limit and st[4] < limit) for st in fingerprint[-1])


_GITLINK, _DIRECTORY, _TYPE = 0o160000, 0o040000, 0o170000


def _index_paths(data: bytes) -> list[bytes] | None:
    """The paths of a version 2 or 3 index with SHA-1 names; None for anything else (a
    version-4, split or sparse index, submodules), which is then never cached."""
    if len(data) < 32 or data[:4] != b"DIRC":
        return None
    version, count = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
    if version not in (2, 3):
        return None
    paths, at = [], 12
    try:
        for _ in range(count):
            mode = int.from_bytes(data[at + 24:at + 28], "big")
            flags = int.from_bytes(data[at + 60:at + 62], "big")
            fixed = 64 if version == 3 and flags & 0x4000 else 62
            end = data.index(b"\0", at + fixed)
            if mode & _TYPE in (_GITLINK, _DIRECTORY):
                return None
            paths.append(data[at + fixed:end])
            at += (end - at + 8) & ~7
        while at + 8 <= len(data) - 20:  # extensions, then the checksum
            if data[at:at + 4] in (b"link", b"sdir"):
                return None
            at += 8 + int.from_bytes(data[at + 4:at + 8], "big")
    except ValueError:
        return None
    return paths
