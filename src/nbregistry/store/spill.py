"""A local spill directory: prediction rows a logger could not write, kept until it can.

One directory per table (``default_spill_dir``), shared by every logger of that table on the
machine. Each spill is one immutable Arrow IPC file (zstd), written under a temporary name,
fsynced, then renamed into place, so a file is either whole or invisible:

    <time_ns>-<pid>-<rows>-<random>.arrow     waiting to be replayed (oldest first)
    …arrow.claimed-<pid>                      being replayed by process <pid>
    …arrow.rejected                           refused by the table (a type clash): kept, not retried

A replayer claims a file by renaming it (atomic: two loggers never replay the same file),
deletes it once the rows are committed and renames it back if the write fails. A claim or a
temporary file left by a process that died is taken over (claims) or removed (temporaries).
The rows are in the file name, so counting what waits opens no file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa

SUFFIX = ".arrow"
CLAIMED = ".claimed-"
REJECTED = ".rejected"
TEMP = ".tmp"


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


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


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

    def _entries(self) -> list[os.DirEntry[str]]:
        try:
            return list(os.scandir(self.path))
        except FileNotFoundError:
            return []

    def usage(self) -> tuple[int, int]:
        """(rows, bytes) waiting or being replayed."""
        rows = size = 0
        for entry in self._entries():
            if SUFFIX in entry.name and not entry.name.endswith(REJECTED):
                with contextlib.suppress(FileNotFoundError):
                    size += entry.stat().st_size
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
        """Files to replay, oldest first: unclaimed ones and claims of dead processes.
        Temporary files of dead processes are removed."""
        found = []
        for entry in self._entries():
            name = entry.name
            if name.endswith(TEMP):
                pid = name.split("-")[1] if name.count("-") >= 3 else ""
                if pid.isdigit() and not _alive(int(pid)):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
            elif name.endswith(SUFFIX):
                found.append(Path(entry.path))
            elif CLAIMED in name:
                pid = name.rsplit(CLAIMED, 1)[1]
                if pid.isdigit() and not _alive(int(pid)):
                    found.append(Path(entry.path))
        return sorted(found, key=lambda p: p.name)

    def claim(self, path: Path) -> Path | None:
        """Take ``path`` for replay; None when another logger took it first."""
        base = path.name.split(CLAIMED)[0]
        claimed = path.with_name(f"{base}{CLAIMED}{os.getpid()}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    @staticmethod
    def read(claimed: Path) -> pa.Table:
        with pa.memory_map(str(claimed)) as source:
            return pa.ipc.open_file(source).read_all()

    @staticmethod
    def release(claimed: Path) -> None:
        """The replay failed: make the file claimable again."""
        os.rename(claimed, claimed.with_name(claimed.name.split(CLAIMED)[0]))

    @staticmethod
    def done(claimed: Path) -> None:
        os.unlink(claimed)

    @staticmethod
    def reject(claimed: Path) -> Path:
        target = claimed.with_name(claimed.name.split(CLAIMED)[0] + REJECTED)
        os.rename(claimed, target)
        return target

    @staticmethod
    def rows(path: Path) -> int:
        return _rows(path)
