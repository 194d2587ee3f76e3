"""The notebook surface in a real JupyterLab driven by headless Debian Chromium.

Runs the quickstart notebook, approves the promotion in the panel as a second user, checks
the registry from this process, and times the registry browser on 1,000 versions.
Screenshots go to test-artifacts/ (gitignored); NBREGISTRY_UPDATE_SCREENSHOTS=1 also writes
the ones the README shows to docs/images/.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

import nbregistry as nbr

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).parents[1]
ARTIFACTS = REPO / "test-artifacts"
IMAGES = REPO / "docs" / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# Settings that keep JupyterLab from popping dialogs or hiding off-screen cells in the test.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    registry: Path

    def notebook_url(self, name: str) -> str:
        # ?reset: open only this notebook, not the tabs a previous test left open
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_server(url: str, token: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not start within 90 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium; install it with "
                    "`apt-get install -y chromium` (CI does) to run the browser tests")
    root = tmp_path_factory.mktemp("lab")
    home = tmp_path_factory.mktemp("jupyter-home")
    for name, values in LAB_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", root / "quickstart.ipynb")
    registry = root / "registry"
    env = {**os.environ, "NBREGISTRY_URI": str(registry), "NBREGISTRY_USER": "alice",
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / "cfg")}
    env.pop("JUPYTERHUB_USER", None)
    port, token = _free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    log = home / "lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    try:
        _wait_for_server(url, token, proc, log)
        yield Lab(url, token, root, registry)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        yield page
    finally:
        page.close()


def _open_notebook(page: Page, lab: Lab, name: str) -> Locator:
    page.goto(lab.notebook_url(name))
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    notebook.locator(".jp-CodeCell").first.wait_for(timeout=90_000)
    _wait_idle(page)
    return notebook


def _wait_idle(page: Page, timeout: float = 120_000) -> None:
    """The status bar says the kernel is started and idle (the toolbar's indicator reads
    'idle' before any kernel exists, so it is not enough)."""
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=timeout)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=timeout)


def _run_all(page: Page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    try:
        page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
                     .every(p => /\\[\\d+\\]/.test(p.textContent))""", timeout=180_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "run-all.png"))
    _wait_idle(page)


def _problems(notebook: Locator) -> list[str]:
    texts: list[str] = notebook.locator(".jp-OutputArea-output").all_inner_texts()
    return [t[:400] for t in texts if "Traceback" in t or "UsageError" in t or "Error:" in t]


def test_quickstart_runs_and_bob_approves_in_the_panel(page: Page, lab: Lab) -> None:
    notebook = _open_notebook(page, lab, "quickstart.ipynb")
    _run_all(page)
    assert _problems(notebook) == []
    panel = notebook.locator(".jp-CodeCell").filter(
        has=page.get_by_role("button", name="Approve"))
    panel.scroll_into_view_if_needed()
    assert "acting as bob" in panel.inner_text()
    assert "card_fields" in panel.inner_text()  # the gates checklist is there
    panel.screenshot(path=str(ARTIFACTS / "promotion-panel-before.png"))
    panel.get_by_placeholder("What you checked, or why you reject").fill(
        "Checked the gates and the AUC uplift")
    panel.get_by_role("button", name="Approve").click()
    panel.get_by_text("Approved by bob").wait_for(timeout=30_000)
    _screenshot(panel, "promotion-panel.png")

    reg = nbr.open_registry(lab.registry, user="auditor")
    assert reg.get("credit_risk", stage="production").version == 2
    [request] = reg.requests("credit_risk", status="promoted")[-1:]
    assert request.to == "production"
    assert [(a.user, a.comment) for a in request.approvals] == [
        ("bob", "Checked the gates and the AUC uplift")]
    assert reg.verify().ok


@pytest.fixture(scope="module")
def thousand(lab: Lab) -> Path:
    """A registry with 1,000 versions over 4 models (registered the normal way: ≈20 s)."""
    uri = lab.root / "registry-1000"
    reg = nbr.open_registry(uri, user="alice")
    rng = random.Random(7)
    for i in range(1000):
        reg.register({"weights": i}, f"model_{i % 4}",
                     metrics={"auc": round(rng.uniform(0.6, 0.9), 4),
                              "ks": round(rng.uniform(0.2, 0.5), 4)},
                     params={"C": rng.choice([0.1, 1.0, 10.0])}, tags={"batch": str(i // 100)})
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"%load_ext nbregistry\n%registry {uri}"),
                nbformat.v4.new_code_cell("%models --browse"),
                nbformat.v4.new_code_cell("%models --browse")]
    nbformat.write(nb, lab.root / "browse.ipynb")
    return uri


def _timed_render(page: Page, notebook: Locator, index: int) -> float:
    """Milliseconds from Shift+Enter on cell ``index`` until its table holds 1,000 rows."""
    cell = notebook.locator(".jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    cell.evaluate("""(cell) => {
        window.__nbr = {t0: performance.now(), ms: null};
        const check = () => {
          if (cell.querySelectorAll('.nbr-b tbody tr').length >= 1000) {
            window.__nbr.ms = performance.now() - window.__nbr.t0;
          } else { setTimeout(check, 5); }
        };
        check();
    }""")
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("window.__nbr.ms !== null", timeout=60_000)
    ms: float = page.evaluate("window.__nbr.ms")
    _wait_idle(page)
    return ms


def test_browser_panel_renders_1000_versions(page: Page, lab: Lab, thousand: Path) -> None:
    """Prints the render time (target: 1 s); a timed test would only flake under load, so
    it asserts a generous bound and leaves the target to the printed figure."""
    notebook = _open_notebook(page, lab, "browse.ipynb")
    notebook.locator(".jp-CodeCell").nth(0).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    _wait_idle(page)
    first = _timed_render(page, notebook, 1)   # includes loading the widget views' code
    second = _timed_render(page, notebook, 2)
    print(f"\nregistry browser, 1,000 versions, Shift+Enter to rows in the DOM: first "
          f"{first:.0f} ms, warm {second:.0f} ms")
    cell = notebook.locator(".jp-CodeCell").nth(2)
    assert "1000</b> versions match" in cell.inner_html()
    cell.screenshot(path=str(ARTIFACTS / "browser-1000.png"))
    assert min(first, second) <= 5000, (first, second)
    cell.locator("select").last.select_option(label="model_3 v250")  # the "card of" picker
    cell.get_by_text("Lineage").wait_for(timeout=30_000)
    assert "sha256" in cell.inner_text() and "History" in cell.inner_text()
    cell.get_by_text("Metrics", exact=True).last.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-card.png"))


def test_monitoring_dashboard_in_jupyterlab(page: Page, lab: Lab) -> None:
    """The dashboard renders its SVG charts in a real JupyterLab; Run check disables itself
    while it runs and records alerts from the browser; the picture taken afterwards shows
    what a user reads: a header, an Alerts tab and a message that agree."""
    from monitored import monitored

    uri = lab.root / "registry-monitored"
    monitored(str(uri), policy={"window": "1d", "on_alert": "retrain"})
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"%load_ext nbregistry\n%registry {uri} --user alice"),
                nbformat.v4.new_code_cell("%monitor credit --panel")]
    nbformat.write(nb, lab.root / "monitor.ipynb")
    notebook = _open_notebook(page, lab, "monitor.ipynb")
    _run_all(page)
    assert _problems(notebook) == []
    cell = notebook.locator(".jp-CodeCell").nth(1)
    check = cell.get_by_role("button", name="Run check")
    check.wait_for(timeout=60_000)
    assert cell.locator("svg").count() >= 1  # the drift heatmap
    text = cell.inner_text()
    assert cell.locator(".jp-OutputArea-child").count() == 1  # no progress bar above it
    assert "2 features in drift alert (debt_ratio, score), no check recorded yet" in text
    cell.screenshot(path=str(ARTIFACTS / "monitoring-dashboard-before.png"))
    # record whether the button was ever disabled: the check may finish between two polls
    check.evaluate("""(button) => {
        window.__nbrDisabled = false;
        new MutationObserver(() => { if (button.disabled) window.__nbrDisabled = true; })
            .observe(button, {attributes: true});
    }""")
    check.click()
    header = cell.get_by_text(re.compile(r"last check .* by alice \(event \d+\): 2 alert\(s\), "
                                         "retraining requested"))
    header.wait_for(timeout=60_000)
    cell.get_by_text("check recorded 2 alert(s) and retrain_requested").wait_for(timeout=30_000)
    assert page.evaluate("window.__nbrDisabled") is True
    assert check.is_enabled() and cell.locator(".fa-spin").count() == 0
    _screenshot(cell, "monitoring-dashboard.png")  # Drift tab: heatmap, table, outcome
    cell.get_by_role("tab", name="Alerts (2)").click()
    alerts = cell.locator("table").filter(has_text="action").filter(has_text="debt_ratio")
    alerts.wait_for(timeout=30_000)
    assert "score" in alerts.inner_text() and "psi" in alerts.inner_text()
    cell.screenshot(path=str(ARTIFACTS / "monitoring-dashboard-alerts.png"))
    reg = nbr.open_registry(uri, user="auditor")
    assert reg.ledger.state.alerts and reg.get("credit", 1).status.get("retrain_requested")


def _screenshot(target: Locator, name: str) -> None:
    """Into test-artifacts/; with NBREGISTRY_UPDATE_SCREENSHOTS=1 also into docs/images/,
    the pictures the README shows (commit them when the panels change)."""
    target.screenshot(path=str(ARTIFACTS / name))
    if os.environ.get("NBREGISTRY_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(ARTIFACTS / name, IMAGES / name)
