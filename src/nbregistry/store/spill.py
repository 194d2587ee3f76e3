"""A local spill directory: prediction rows a logger could not write, kept until it can.

One directory per table (``default_spill_dir``), shared by every logger of that table on the
machine. Each spill is one immutable Arrow IPC file (zstd), written under a temporary name,
fsynced, then renamed into place, so a file is either whole or invisible:

    <time_ns>-<pid>-<rows>-<random>.arrow     waiting to be replayed (oldest first)
    <…>.arrow.rejected                        refused by the table (a type clash): kept, not retried

A replayer claims a file with a non-blocking ``flock`` (two loggers never replay the same
file), deletes it once the rows are committed, and just lets go if the write fails. A
process that dies lets go too (the kernel drops its locks), so its file is replayed by the
next logger; no process ids are trusted (they are reused, and differ across containers).
The rows are in the file name, so counting what waits opens no file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa

from ..domain.errors import InvalidInputError

SUFFIX = ".arrow"
REJECTED = ".rejected"
TEMP = ".tmp"
STALE_TEMP = 3600.0  # seconds; a put takes milliseconds, so an older temporary file is litter


def default_spill_root() -> Path:
    """``$NBREGISTRY_SPILL_DIR``, else ``$XDG_STATE_HOME/nbregistry/spill``, else
    ``~/.local/state/nbregistry/spill``: state, not a cache (deleting it loses rows)."""
    if env := os.environ.get("NBREGISTRY_SPILL_DIR"):
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return Path(base, "nbregistry", "spill")


def default_spill_dir(table_uri: str) -> Path:
    """The spill directory of one table: the same for every logger of it on this machine."""
    return default_spill_root() / hashlib.sha256(table_uri.encode()).hexdigest()[:16]


def spill_for(table_uri: str | None, spill_dir: str | os.PathLike[str] | None,
              limit: int) -> SpillDir | None:
    """A table's own spill directory unless one is given; None when ``limit`` is 0 (or no
    directory is given for a sink that is not a table)."""
    if spill_dir is None and table_uri is not None:
        spill_dir = default_spill_dir(table_uri)
    if spill_dir is None or limit <= 0:
        return None
    spill = SpillDir(spill_dir, limit=limit, table_uri=table_uri)
    owner = spill.owner()
    if table_uri is not None and owner not in (None, table_uri):
        # Replaying would write another table's rows into this one.
        raise InvalidInputError(f"spill directory {spill.path} holds rows of {owner}, not "
                                f"{table_uri}: give each table its own spill_dir",
                                field="spill_dir")
    return spill


def _rows(path: Path) -> int:
    parts = path.name.split(SUFFIX)[0].split("-")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else 0


class SpillDir:
    """The spill files of one table, at most ``limit`` bytes of them."""

    def __init__(self, path: str | os.PathLike[str], *, limit: int,
                 table_uri: str | None = None) -> None:
        self.path = Path(path)
        self.limit = limit
        self.table_uri = table_uri

    def owner(self) -> str | None:
        """The table URI this directory's files were spilled for (None: not recorded)."""
        try:
            return (self.path / "TABLE").read_text().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _entries(self) -> list[os.DirEntry[str]]:
        try:
            return list(os.scandir(self.path))
        except FileNotFoundError:
            return []

    def usage(self) -> tuple[int, int]:
        """(rows waiting or being replayed, bytes of every spill file, rejected ones too)."""
        rows = size = 0
        for entry in self._entries():
            if SUFFIX in entry.name:
                with contextlib.suppress(FileNotFoundError):
                    size += entry.stat().st_size
                if entry.name.endswith(SUFFIX):
                    rows += _rows(Path(entry.path))
        return rows, size

    def put(self, table: pa.Table) -> bool:
        """Write ``table`` as one spill file; False (nothing written) when it would take the
        directory past its limit. Disk errors raise ``OSError``."""
        sink = pa.BufferOutputStream()
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_file(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        data = sink.getvalue()
        if self.usage()[1] + data.size > self.limit:
            return False
        self.path.mkdir(parents=True, exist_ok=True)
        if self.table_uri is not None and not (self.path / "TABLE").exists():
            (self.path / "TABLE").write_text(self.table_uri + "\n")
        name = f"{time.time_ns():020d}-{os.getpid()}-{table.num_rows}-{uuid.uuid4().hex[:8]}"
        temp = self.path / f".{name}{TEMP}"
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path / f"{name}{SUFFIX}")
        with contextlib.suppress(OSError):  # make the rename durable where the OS allows
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return True

    def waiting(self) -> list[Path]:
        """Files to replay, oldest first (some may be claimed by another logger meanwhile).
        Temporary files older than an hour, left by a writer that died, are removed."""
        found, now = [], time.time()
        for entry in self._entries():
            if entry.name.endswith(SUFFIX):
                found.append(Path(entry.path))
            elif entry.name.endswith(TEMP):
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > STALE_TEMP:
                        os.unlink(entry.path)
        return sorted(found, key=lambda p: p.name)

    @staticmethod
    def claim(path: Path) -> Claim | None:
        """Take ``path`` for replay; None when another logger holds or already replayed it."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink == 0:  # replayed and deleted since we listed it
                raise BlockingIOError
        except OSError:
            os.close(fd)
            return None
        return Claim(path, fd)

    @staticmethod
    def rows(path: Path) -> int:
        return _rows(path)


class Claim:
    """One spill file this process replays; the lock goes with :meth:`done`, :meth:`reject`
    or :meth:`release` (or the process)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def read(self) -> pa.Table:
        with os.fdopen(os.dup(self._fd), "rb") as handle:
            return pa.ipc.open_file(pa.py_buffer(handle.read())).read_all()

    def done(self) -> None:
        """The rows are committed: delete the file."""
        try:
            os.unlink(self.path)
        finally:
            self.release()

    def reject(self) -> Path:
        """The table refuses the rows: keep the file aside, never retried."""
        target = self.path.with_name(self.path.name + REJECTED)
        try:
            os.rename(self.path, target)
        finally:
            self.release()
        return target

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
