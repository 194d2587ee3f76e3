"""Refuse clearly, instead of panicking, when the Rust storage runtime was inherited via fork.

deltalake and obstore start a tokio runtime on first use; a child forked afterwards (the default
``multiprocessing`` start method on Linux) panics with ``PanicException``, a ``BaseException``
that escapes ``except Exception``. We remember which process started the runtime and refuse
early in any other process that inherited it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from ..domain.errors import ForkedProcessError, StorageError

_started_in: int | None = None
T = TypeVar("T")

FIX = ("Start worker processes with multiprocessing.get_context('spawn') (or 'forkserver'), "
       "or import and open the registry only inside the child.")


def check() -> None:
    """Call before every use of deltalake/obstore."""
    global _started_in
    pid = os.getpid()
    if _started_in is None:
        _started_in = pid
    elif _started_in != pid:
        raise ForkedProcessError(
            f"this process (pid {pid}) was forked from pid {_started_in} after the storage "
            f"engine started there; the engine cannot run in a forked child. {FIX}")


def guarded(fn: Callable[[], T]) -> T:
    """Run a storage call, turning a Rust panic into a typed error."""
    check()
    try:
        return fn()
    except Exception:
        raise
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if type(exc).__name__ != "PanicException":
            raise
        if "fork" in str(exc).lower():
            raise ForkedProcessError(f"storage engine refused to run after fork. {FIX}") from exc
        raise StorageError(f"storage engine crashed: {str(exc).splitlines()[0]}") from exc

