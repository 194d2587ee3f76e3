"""papermill execution, with an optional kernel shared by several notebooks (a pack).

Starting a kernel and importing pandas, scikit-learn, altair and the storage engines costs
seconds per notebook; a pack of four reports reuses one kernel, resetting its namespace
between notebooks so no report sees another's variables.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..domain.errors import NbRegistryError

KERNEL = "python3"
START_TIMEOUT = 120


class ReportFailedError(NbRegistryError):
    """A report's notebook raised: names the template, the cell and the error."""

    def __init__(self, message: str, *, template: str, cell: int | None, ename: str,
                 evalue: str, notebook: str) -> None:
        super().__init__(message)
        self.template = template
        self.cell = cell
        self.ename = ename
        self.evalue = evalue
        self.notebook = notebook


@contextlib.contextmanager
def kernel_env(*, user: str, storage_options: Mapping[str, str] | None,
               sketches: bool = True) -> Iterator[None]:
    """What the kernel inherits: the acting user and the object-store settings (kept out of
    the parameters, so no credential is written into a report), and whether its questions
    may sum sketches (``sketches=False``: from the rows alone, as ``reverify`` asks)."""
    from ..watch.sketching import SKETCHES_ENV
    from .context import STORAGE_ENV

    saved = {k: os.environ.get(k)
             for k in ("NBREGISTRY_USER", STORAGE_ENV, "PYTHONPATH", SKETCHES_ENV)}
    os.environ["NBREGISTRY_USER"] = user
    if not sketches:
        os.environ[SKETCHES_ENV] = "off"
    if saved["PYTHONPATH"]:  # the kernel runs in the output folder: relative entries break
        os.environ["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) if p else p for p in saved["PYTHONPATH"].split(os.pathsep))
    if storage_options:
        os.environ[STORAGE_ENV] = json.dumps(dict(storage_options))
    else:
        os.environ.pop(STORAGE_ENV, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class SharedKernel:
    """One kernel for several notebooks (``with SharedKernel(cwd) as k: ...``).

    It talks over Unix sockets in a folder only this user can enter, not TCP on localhost:
    no other local user can reach its ports, and ipykernel has no reason to print its
    "running over TCP without encryption" warning into every report's output. Windows,
    without Unix sockets for ZeroMQ, keeps TCP."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.km: Any = None
        self.used = False
        self.sockets: str | None = None

    def __enter__(self) -> SharedKernel:
        import tempfile

        from jupyter_client.manager import AsyncKernelManager
        from nbclient.util import run_sync

        transport: dict[str, str] = {}
        if os.name == "posix":  # short path: a Unix socket's name is limited to ~100 bytes
            self.sockets = tempfile.mkdtemp(prefix="nbr-kernel-")
            transport = {"transport": "ipc", "ip": os.path.join(self.sockets, "k")}
        self.km = AsyncKernelManager(kernel_name=KERNEL, **transport)
        run_sync(self.km.start_kernel)(cwd=str(self.cwd))
        return self

    def prepare(self) -> None:
        """Before each notebook after the first: an empty namespace (imports stay cached)."""
        if self.used:
            client = self.km.blocking_client()
            client.start_channels()
            try:
                client.wait_for_ready(timeout=START_TIMEOUT)
                client.execute_interactive("get_ipython().run_line_magic('reset', '-f')",
                                           timeout=START_TIMEOUT, output_hook=lambda m: None)
            finally:
                client.stop_channels()
        self.used = True

    def __exit__(self, *exc: object) -> None:
        from nbclient.util import run_sync

        try:
            if self.km is not None and self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=True)
        finally:
            if self.sockets is not None:
                import shutil

                shutil.rmtree(self.sockets, ignore_errors=True)


def execute(notebook: Any, output: Path, parameters: Mapping[str, Any], *, template: str,
            progress: bool, kernel: SharedKernel | None = None) -> Any:
    """Run ``notebook`` with ``parameters`` into ``output``; a failing cell raises
    ``ReportFailedError`` naming the template and the cell."""
    import papermill

    if kernel is None:  # papermill's own kernel would listen on TCP
        with SharedKernel(output.parent) as own:
            return execute(notebook, output, parameters, template=template,
                           progress=progress, kernel=own)
    kernel.prepare()
    try:
        papermill.execute_notebook(notebook, str(output), parameters=dict(parameters),
                                   kernel_name=KERNEL, progress_bar=progress,
                                   start_timeout=START_TIMEOUT, cwd=str(output.parent),
                                   km=kernel.km)
    except papermill.PapermillExecutionError as exc:
        executed = read_notebook(output)
        index, where = describe_cell(executed)
        raise ReportFailedError(
            f"the {template!r} report failed in {where}: {exc.ename}: {exc.evalue}. The "
            f"notebook as far as it ran is {output}", template=template, cell=index,
            ename=exc.ename, evalue=exc.evalue, notebook=str(output)) from None
    return read_notebook(output)


def read_notebook(path: Path) -> Any:
    import nbformat

    return nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]


def describe_cell(notebook: Any) -> tuple[int | None, str]:
    """The failing cell's index in the template (papermill's own cells not counted) and
    ``cell 7 (section "Performance"), at `first line```."""
    heading, index = "", 0
    for cell in notebook.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {"injected-parameters", "papermill-error-cell-tag"}:
            continue
        if cell.cell_type == "markdown":
            heading = next((line.lstrip("#").strip() for line in cell.source.splitlines()
                            if line.startswith("#")), heading)
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = next((line for line in cell.source.splitlines()
                          if line.strip() and not line.startswith("#")), "")
            where = f"template cell {index}" + (f" (section {heading!r})" if heading else "")
            return index, where + (f", at `{first.strip()[:80]}`" if first else "")
        index += 1
    return None, "a cell that could not be located"
