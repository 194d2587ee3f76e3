"""The kernel that runs report notebooks: reachable by this user only, and quiet."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nbformat
import pytest

from nbregistry.reports.execute import SharedKernel, execute


def notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.getpid())")]  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def leftovers() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("nbr-kernel-")}


@pytest.mark.skipif(os.name != "posix", reason="ZeroMQ has no Unix sockets on Windows")
def test_a_report_kernel_talks_over_private_unix_sockets(tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]
                                                         ) -> None:
    before = leftovers()
    with SharedKernel(tmp_path) as kernel:
        assert kernel.km.transport == "ipc" and kernel.sockets is not None
        assert os.stat(kernel.sockets).st_mode & 0o077 == 0  # only this user may connect
        executed = execute(notebook(), tmp_path / "shared.ipynb", {}, template="t",
                           progress=False, kernel=kernel)
    assert executed.cells[0].outputs[0]["text"].strip().isdigit()
    # a single report starts its own kernel the same way (papermill's would use TCP)
    executed = execute(notebook(), tmp_path / "single.ipynb", {}, template="t",
                       progress=False)
    assert executed.cells[0].outputs[0]["text"].strip().isdigit()
    assert "without encryption" not in capfd.readouterr().err  # ipykernel's TCP warning
    assert leftovers() == before
