"""Magics in a real IPython shell, each against its own tmp registry (``%registry <tmp>``)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.notebook import parsing
from nbregistry.notebook.comparison import Comparison
from nbregistry.notebook.display import Gates, HistoryTable, VersionsTable
from nbregistry.notebook.magics import RegistryMagics

REPO = Path(__file__).parents[1]
LINE_MAGICS = ("registry", "register", "models", "compare", "promote", "approve", "reject",
               "rollback", "monitor", "report", "audit")
CELL_MAGICS = ("modelcard",)
CARD = """# Credit scorer
Logistic regression on bureau data.

## Intended use
Rank retail applications.

## Limitations
Not for SME lending.
### Known gaps
Thin-file applicants.
"""


@pytest.fixture
def ip(registry_uri: str) -> Iterator[InteractiveShell]:
    """One shell for the module (IPython allows one instance), reset for every test: no
    variables or history leak from one test into the next."""
    shell = InteractiveShell.instance(history_manager=None)
    shell.history_manager.enabled = False
    shell.reset(new_session=False)
    if "nbregistry" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "nbregistry")
    magics = _magics(shell)
    magics.uri = magics.user = ""
    shell.run_line_magic("registry", f"{registry_uri} --user alice --create")
    shell.user_ns.update(model=TinyModel(1.0), other=TinyModel(2.0))
    yield shell
    magics.uri = magics.user = ""


def _magics(shell: InteractiveShell) -> RegistryMagics:
    found: RegistryMagics = shell.magics_manager.registry["RegistryMagics"]
    return found


def _two_versions(ip: InteractiveShell) -> None:
    ip.run_line_magic("register", "model --name credit --metrics auc=0.81 acc=0.7 "
                      "--params C=0.5 solver=lbfgs --tag team=risk")
    ip.run_line_magic("register", "other --name credit --metrics auc=0.86 acc=0.72 "
                      "--params C=1.0 --tag team=risk")


def _as(ip: InteractiveShell, user: str) -> nbr.Registry:
    reg: nbr.Registry = ip.run_line_magic("registry", f"--user {user}")
    return reg


# -- loading, configuration, help ---------------------------------------------------------
def test_load_ext_registers_every_magic_and_config(ip: InteractiveShell,
                                                   tmp_path: Path) -> None:
    magics = ip.magics_manager.magics
    assert set(LINE_MAGICS) <= set(magics["line"])
    assert set(CELL_MAGICS) <= set(magics["cell"])
    instance = _magics(ip)
    assert ip.configurables.count(instance) == 1
    other = tmp_path / "configured"
    ip.run_line_magic("config", f'RegistryMagics.uri = "{other}"')
    ip.run_line_magic("config", 'RegistryMagics.user = "carol"')
    reg = ip.run_line_magic("registry", "--create")
    assert (reg.uri, reg.user) == (str(other), "carol")
    assert "nbregistry</b> registry" in ip.display_formatter.format(reg)[0]["text/html"]


@pytest.mark.parametrize("magic", LINE_MAGICS + CELL_MAGICS)
def test_every_magic_has_help(ip: InteractiveShell, magic: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    if magic in CELL_MAGICS:
        ip.run_cell_magic(magic, "--help", "\n")  # IPython refuses an empty cell body
    else:
        ip.run_line_magic(magic, "--help")
    out = capsys.readouterr().out
    assert f"%{magic}" in out and "options:" in out
    doc = ip.magics_manager.magics["cell" if magic in CELL_MAGICS else "line"][magic].__doc__
    assert doc and f"%{magic}" in doc  # so `%magic?` shows the same usage


def test_bad_arguments_and_registry_errors_are_one_line_usage_errors(
        ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    _two_versions(ip)
    with pytest.raises(UsageError, match="unrecognized arguments: --bogus"):
        ip.run_line_magic("models", "--bogus")
    with pytest.raises(UsageError, match="no version 9"):
        ip.run_line_magic("compare", "credit 1 9")
    ip.run_cell("%compare credit 1 9")
    err = capsys.readouterr().err
    assert "UsageError: model 'credit' has no version 9" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- register and variables -----------------------------------------------------------------
def test_register_from_variables_and_pairs(ip: InteractiveShell, tmp_path: Path) -> None:
    import pandas as pd

    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    ip.user_ns.update(scores={"auc": 0.8}, hp={"C": 0.5},
                      X=pd.DataFrame({"income": [1.0, 2.0], "age": [30, 40]}), y=[0, 1])
    mv = ip.run_line_magic(
        "register", f"model --name credit --metrics scores ks=0.3 --params hp layers=[8,4] "
        f"fast=true --tag team=risk --data {data} --reference X --target y "
        "--description 'a first model'")
    assert isinstance(mv, nbr.ModelVersion)
    assert mv.metrics == {"auc": 0.8, "ks": 0.3}
    assert mv.params == {"C": 0.5, "layers": [8, 4], "fast": True}
    assert mv.tags == {"team": "risk"} and mv.description == "a first model"
    assert mv.lineage["training_data"]["format"] == "file"
    assert [f["name"] for f in mv.features] == ["income", "age"]
    reg = nbr.open_registry(ip.run_line_magic("registry", "").uri)
    assert reg.load("credit", trusted=True) == TinyModel(1)


def test_missing_variables_are_named(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="no variable named 'nope'"):
        ip.run_line_magic("register", "nope --name credit")
    with pytest.raises(UsageError, match="no variable named 'missing_scores'"):
        ip.run_line_magic("register", "model --name credit --metrics missing_scores")
    ip.user_ns["not_a_dict"] = [1, 2]
    with pytest.raises(UsageError, match="'not_a_dict' is a list, not a dict"):
        ip.run_line_magic("register", "model --name credit --params not_a_dict")
    with pytest.raises(UsageError, match="metrics 'auc': 'high' is not a number"):
        ip.run_line_magic("register", "model --name credit --metrics auc=high")


def test_register_sees_function_locals(ip: InteractiveShell) -> None:
    ip.run_cell("def f():\n    local_model = 1.5\n"
                "    return get_ipython().run_line_magic('register', "
                "'local_model --name from_local')\nmv = f()")
    assert ip.user_ns["mv"].name == "from_local"


# -- models, compare ------------------------------------------------------------------------
def test_models_where_maps_to_metric_bounds(ip: InteractiveShell) -> None:
    _two_versions(ip)
    found = ip.run_line_magic("models", 'credit --where "auc>=0.85"')
    assert isinstance(found, VersionsTable)
    assert found.table.column("version").to_pylist() == [2]
    both = ip.run_line_magic("models", "--where auc>=0.8, acc<=0.71")
    assert both.table.column("version").to_pylist() == [1]
    with pytest.raises(UsageError, match="inclusive, use >= instead of >"):
        ip.run_line_magic("models", '--where "auc>0.8"')
    ranked = ip.run_line_magic("models", "--sort auc --limit 1")
    assert ranked.table.column("version").to_pylist() == [2]
    assert len(ip.run_line_magic("models", "--tag team=risk --stage development")) == 2


def test_models_display_reads_as_text_and_static_html(ip: InteractiveShell) -> None:
    _two_versions(ip)
    table = ip.run_line_magic("models", "")
    text, html = repr(table), table._repr_html_()
    assert text.splitlines()[0].split() == ["name", "version", "stage", "aliases", "created_at",
                                            "created_by", "acc", "auc"]
    assert "0.86" in text and "<table" in html and "<script" not in html
    assert "style=" in html and "http" not in html  # inline styles, nothing fetched
    empty = ip.run_line_magic("models", "--where auc>=0.99")
    assert repr(empty) == "<no model versions match>"


def test_compare_lists_only_differences(ip: InteractiveShell) -> None:
    _two_versions(ip)
    ip.run_line_magic("register", "model --name credit --metrics auc=0.7 --params C=0.5")
    cmp = ip.run_line_magic("compare", "credit 1 2 3 --no-chart")
    assert isinstance(cmp, Comparison) and cmp.labels == ["v1", "v2", "v3"]
    assert dict(cmp.params_diff())["C"] == [0.5, 1.0, 0.5]
    assert "solver" in dict(cmp.params_diff())
    assert dict(cmp.metrics())["auc"] == [0.81, 0.86, 0.7]
    assert "<svg" not in cmp._repr_html_() and "Parameters: 2 differ" in repr(cmp)
    with pytest.raises(UsageError, match="at least two versions"):
        ip.run_line_magic("compare", "credit 1")


def test_compare_resolves_aliases(ip: InteractiveShell) -> None:
    _two_versions(ip)
    _as(ip, "alice").set_alias("credit", "champion", 1)
    cmp = ip.run_line_magic("compare", "credit champion 2 --no-chart")
    assert [mv.version for mv in cmp.versions] == [1, 2]


# -- governance -----------------------------------------------------------------------------
def test_promotion_lifecycle_through_magics(ip: InteractiveShell) -> None:
    _two_versions(ip)
    card = ip.run_cell_magic("modelcard", "credit 2", CARD)
    assert card.card["intended_use"] == "Rank retail applications."
    staged = ip.run_line_magic("promote", "credit 2 --to staging --comment smoke tested")
    assert (staged.status, staged.comment) == ("promoted", "smoke tested")
    gates = ip.run_line_magic("promote", "credit 2 --to production --check")
    assert isinstance(gates, Gates) and gates.passed and "card_fields" in repr(gates)
    request = ip.run_line_magic("promote", 'credit 2 --to production --comment "beats v1"')
    assert (request.status, request.comment) == ("open", "beats v1")
    _as(ip, "alice").grant_role("alice", "validator")
    with pytest.raises(UsageError, match="Refused by policy: self-approval refused"):
        ip.run_line_magic("approve", "credit 2")
    _as(ip, "alice").grant_role("bob", "validator")
    _as(ip, "bob")
    with pytest.raises(UsageError, match="--comment"):
        ip.run_line_magic("reject", "credit 2")
    approved = ip.run_line_magic("approve", "credit 2 --comment 'checked the gates'")
    assert approved.status == "promoted"
    assert [(a.user, a.comment) for a in approved.approvals] == [("bob", "checked the gates")]
    reg = ip.run_line_magic("registry", "")
    assert reg.get("credit", stage="production").version == 2


def test_rollback_restores_the_previous_holder(ip: InteractiveShell) -> None:
    _two_versions(ip)
    admin = _as(ip, "alice")
    admin.grant_role("bob", "validator")
    for version in (1, 2):
        admin.set_card("credit", version, {"intended_use": "x", "limitations": "y"})
        admin.request_promotion("credit", version, "staging")
        admin.request_promotion("credit", version, "production")
        nbr.open_registry(admin.uri, user="bob").approve("credit", version)
    _as(ip, "bob")
    restored = ip.run_line_magic("rollback", "credit --stage production --reason 'v2 drifts'")
    assert (restored.version, restored.stage) == (1, "production")
    with pytest.raises(UsageError, match="no earlier production version"):
        ip.run_line_magic("rollback", "credit --stage production")
    with pytest.raises(UsageError, match="already promoted"):
        ip.run_line_magic("reject", "credit 1 --comment too late")


def test_reject_an_open_request(ip: InteractiveShell) -> None:
    _two_versions(ip)
    admin = _as(ip, "alice")
    admin.grant_role("bob", "validator")
    admin.set_card("credit", 2, {"intended_use": "x", "limitations": "y"})
    admin.request_promotion("credit", 2, "staging")
    admin.request_promotion("credit", 2, "production")
    _as(ip, "bob")
    rejected = ip.run_line_magic("reject", 'credit 2 --comment "AUC gap too small"')
    assert (rejected.status, rejected.rejections[0].comment) == ("rejected", "AUC gap too small")


def test_modelcard_needs_a_body(ip: InteractiveShell) -> None:
    _two_versions(ip)
    with pytest.raises(UsageError, match="model card is empty"):
        ip.run_cell_magic("modelcard", "credit 1", "\n  \n")


def test_report_checks_its_parameters_before_running(ip: InteractiveShell) -> None:
    _two_versions(ip)
    with pytest.raises(UsageError, match="unknown parameter 'threshold'"):
        ip.run_line_magic("report", "validation credit 2 -p threshold 0.5")
    with pytest.raises(UsageError, match="trusted must be bool"):
        ip.run_line_magic("report", "validation credit 2 -p trusted maybe")
    with pytest.raises(UsageError, match="no report template 'nope'"):
        ip.run_line_magic("report", "nope credit 2")


def test_monitor_shows_checks_and_opens_the_dashboard(ip: InteractiveShell,
                                                      registry_uri: str) -> None:
    from monitored import monitored
    from nbregistry.notebook.monitoring import MonitoringView
    from nbregistry.notebook.panels import MonitoringDashboard

    monitored(registry_uri, policy={"window": "1d", "on_alert": "retrain"})
    view = ip.run_line_magic("monitor", "credit --window 1d")
    assert isinstance(view, MonitoringView) and view.drift is not None
    assert "debt_ratio" in repr(view) and "<svg" in view._repr_html_()
    result = ip.run_line_magic("monitor", "credit --check")
    assert result.alerts and [e.action for e in result.actions] == ["retrain_requested"]
    panel = ip.run_line_magic("monitor", "credit --panel")
    assert isinstance(panel, MonitoringDashboard) and len(panel.view.alerts) >= 1
    with pytest.raises(UsageError, match="no model named 'ghost'"):
        ip.run_line_magic("monitor", "ghost")


def test_audit_shows_history_and_verifies(ip: InteractiveShell) -> None:
    _two_versions(ip)
    trail = ip.run_line_magic("audit", "credit")
    assert isinstance(trail, HistoryTable) and trail.report is None
    assert [r[3] for r in trail._rows()] == ["register", "register"]
    checked = ip.run_line_magic("audit", "--verify --limit 2")
    assert checked.report is not None and checked.report.ok
    assert "Audit trail verified" in checked._repr_html_()
    assert "showing the last 2 of 3 events" in repr(checked)
    assert "auc" in repr(trail)  # the payload summary shows what was registered
    ip.run_cell_magic("modelcard", "credit 1", CARD)
    carded = ip.run_line_magic("audit", "credit --version 1")
    assert "card fields: intended_use, limitations, summary" in carded._repr_html_()


def test_as_of_view_is_read_only(ip: InteractiveShell) -> None:
    _two_versions(ip)
    view = ip.run_line_magic("registry", "--as-of 2000-01-01")
    assert view.models() == []
    with pytest.raises(UsageError, match="read-only view of the past"):
        ip.run_line_magic("register", "model --name credit")
    with pytest.raises(UsageError, match="cannot read 'yesterday' as a time"):
        ip.run_line_magic("registry", "--as-of yesterday")
    assert ip.run_line_magic("registry", "").models() == ["credit"]


def test_panels_open_from_magics(ip: InteractiveShell) -> None:
    from nbregistry.notebook.panels import ComparisonPanel, PromotionPanel, RegistryBrowser

    _two_versions(ip)
    assert isinstance(ip.run_line_magic("models", "--browse --where auc>=0.85"),
                      RegistryBrowser)
    panel = ip.run_line_magic("compare", "credit 1 2 --panel --no-chart")
    assert isinstance(panel, ComparisonPanel) and panel.versions.value == (1, 2)
    promo = ip.run_line_magic("promote", "credit 2 --panel --to staging")
    assert isinstance(promo, PromotionPanel) and promo.stage.value == "staging"


# -- pure parsing -----------------------------------------------------------------------------
def test_parsing_helpers() -> None:
    assert parsing.where(["auc>=0.8 and ks<=0.3", "auc>=0.85", "n=5"]) == (
        {"auc": 0.85, "n": 5.0}, {"ks": 0.3, "n": 5.0})
    with pytest.raises(nbr.InvalidInputError, match="cannot read the filter"):
        parsing.where(["auc"])
    assert parsing.literal("[1, 2]") == [1, 2] and parsing.literal("lbfgs") == "lbfgs"
    assert parsing.literal("None") is None and parsing.literal("False") is False
    card = parsing.model_card(CARD)
    assert card == {"summary": "Logistic regression on bureau data.",
                    "intended_use": "Rank retail applications.",
                    "limitations": "Not for SME lending.\n### Known gaps\nThin-file applicants."}
    assert parsing.card_key("Ethical considerations & risks ##") == (
        "ethical_considerations_risks")


# -- documentation and notebooks ------------------------------------------------------------
def test_every_magic_and_panel_is_documented() -> None:
    doc = (REPO / "docs" / "notebook.md").read_text()
    missing = [m for m in LINE_MAGICS if f"%{m}" not in doc]
    missing += [m for m in CELL_MAGICS if f"%%{m}" not in doc]
    missing += [p for p in ("RegistryBrowser", "ComparisonPanel", "PromotionPanel",
                            "RegistryMagics.uri") if p not in doc]
    assert missing == []


@pytest.mark.slow
def test_quickstart_runs_headless_under_papermill(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    registry = tmp_path / "registry"
    monkeypatch.setenv("NBREGISTRY_URI", str(registry))  # the kernel inherits the environment
    started = time.perf_counter()
    out = papermill.execute_notebook(str(REPO / "notebooks" / "quickstart.ipynb"),
                                     str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                                     kernel_name="python3", progress_bar=False)
    print(f"\nquickstart under papermill: {time.perf_counter() - started:.1f} s")
    reg = nbr.open_registry(registry, user="auditor")
    assert reg.get("credit_risk", stage="staging").version == 2
    [request] = reg.requests("credit_risk")
    assert (request.to, request.requested_by) == ("production", "alice")
    outputs: list[dict[str, Any]] = [o for c in out["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    panel = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(panel) == 1 and "card_fields" in panel[0]["data"]["text/html"]  # static fallback
    assert reg.verify().ok


@pytest.mark.slow
def test_load_ext_cost_in_a_fresh_kernel() -> None:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        code = ("import time as _t; _s = _t.perf_counter(); get_ipython().run_line_magic("
                "'load_ext', 'nbregistry'); print(round((_t.perf_counter() - _s) * 1000, 1))")
        reply = kc.execute_interactive(code, timeout=60, output_hook=_collect)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    ms = float(_COLLECTED[-1])
    print(f"\n%load_ext nbregistry in a fresh kernel: {ms:.0f} ms (target ≤ 300 ms)")


_COLLECTED: list[str] = []


def _collect(msg: dict[str, Any]) -> None:
    if msg["msg_type"] == "stream":
        _COLLECTED.extend(re.findall(r"[\d.]+", msg["content"]["text"]))


def test_import_nbregistry_stays_cheap_after_adding_the_extension_hook() -> None:
    code = ("import sys, nbregistry; assert callable(nbregistry.load_ipython_extension); "
            "print(sorted({'IPython', 'ipywidgets', 'altair', 'traitlets'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_a_mistyped_registry_path_makes_no_registry(ip: InteractiveShell, tmp_path: Path
                                                    ) -> None:
    typo = tmp_path / "regsitry"
    with pytest.raises(UsageError, match="--create"):
        ip.run_line_magic("registry", f"{typo}")
    assert not typo.exists()
    made = ip.run_line_magic("registry", f"{typo} --create")
    assert typo.exists() and made.models() == []
