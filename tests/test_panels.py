"""Panels headless: build, set ``.value``, ``button.click()``, assert on registry and traits."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import nbregistry as nbr
from conftest import TinyModel
from nbregistry.notebook.panels import ComparisonPanel, PromotionPanel, RegistryBrowser
from nbregistry.notebook.panels.browser import rows_html, sort_rows

CARD = {"intended_use": "retail scoring", "limitations": "synthetic data only"}


@pytest.fixture
def reg(registry: nbr.Registry) -> nbr.Registry:
    """alice (admin) registered credit v1..v3 and churn v1; bob is a validator."""
    for auc, ks in ((0.78, 0.30), (0.83, 0.35), (0.80, 0.25)):
        registry.register(TinyModel(auc), "credit", metrics={"auc": auc, "ks": ks},
                          params={"C": auc * 10}, tags={"team": "retail"})
    registry.register(TinyModel(), "churn", metrics={"auc": 0.7}, description="telco churn")
    registry.grant_role("bob", "validator")
    return registry


def _as(reg: nbr.Registry, user: str) -> nbr.Registry:
    return nbr.open_registry(reg.uri, user=user)


# -- registry browser ----------------------------------------------------------------------
def test_browser_filters_sort_and_show_a_card(reg: nbr.Registry) -> None:
    browser = RegistryBrowser(reg)
    assert len(browser.rows) == 4 and "4</b> versions match" in browser.count.value
    browser.model.value = "credit"
    assert [r["version"] for r in browser.rows] == [1, 2, 3]
    browser.where.value = "auc>=0.8"
    assert [r["version"] for r in browser.rows] == [2, 3]
    browser.sort.value = "metrics.ks"
    browser.descending.value = True
    assert [r["version"] for r in browser.rows] == [2, 3]
    browser.where.value = "auc > 0.8"
    assert browser.failed and "inclusive" in browser.status
    browser.where.value = ""
    assert not browser.failed
    browser.model.value = ""
    browser.text.value = "TELCO"
    assert [(r["name"], r["version"]) for r in browser.rows] == [("churn", 1)]
    browser.version.value = ("churn", 1)
    card = browser.card.value
    assert "telco churn" in card and "History" in card and "register" in card
    assert "no model card yet" in card


def test_browser_shows_stage_and_refreshes_after_other_writers(reg: nbr.Registry) -> None:
    browser = RegistryBrowser(reg, name="credit")
    browser.stage.value = "staging"
    assert browser.rows == []
    other = _as(reg, "alice")
    other.set_card("credit", 2, CARD)
    other.request_promotion("credit", 2, "staging")
    other.register(TinyModel(9), "fraud", metrics={"auc": 0.9})
    browser.refresh_button.click()
    assert [(r["name"], r["version"], r["stage"]) for r in browser.rows] == [
        ("credit", 2, "staging")]
    assert "fraud" in browser.model.options[-1]
    browser.version.value = ("credit", 2)
    assert "retail scoring" in browser.card.value and "staging" in browser.card.value


def test_browser_table_for_1000_versions_is_cheap() -> None:
    rows = [{"name": f"m{i % 7}", "version": i, "stage": "development", "aliases": [],
             "created_at": datetime(2026, 1, 1, tzinfo=UTC), "created_by": "alice",
             "description": "", "tags": [], "metrics.auc": 0.5 + i / 4000,
             "metrics.ks": None if i % 3 else 0.3} for i in range(1, 1001)]
    started = time.perf_counter()
    ordered = sort_rows(rows, "metrics.ks", descending=True)
    html = rows_html(ordered, ["metrics.auc", "metrics.ks"])
    ms = (time.perf_counter() - started) * 1000
    print(f"\nbrowser table for 1,000 versions: {ms:.1f} ms, {len(html) // 1024} KiB of HTML")
    assert html.count("<tr>") == 1001
    assert [r["metrics.ks"] for r in ordered[-2:]] == [None, None]  # missing metric sorts last


def test_browser_names_an_unknown_model(reg: nbr.Registry) -> None:
    browser = RegistryBrowser(reg, name="nope")
    assert browser.failed and "no model named 'nope'" in browser.status
    assert len(browser.rows) == 4


def test_browser_has_a_static_snapshot(reg: nbr.Registry) -> None:
    bundle = RegistryBrowser(reg)._repr_mimebundle_()
    assert bundle is not None
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "credit" in bundle["text/html"] and "<script" not in bundle["text/html"]
    assert bundle["text/plain"].startswith("<RegistryBrowser")


# -- comparison ---------------------------------------------------------------------------------
def test_comparison_panel_tabs_and_version_picks(reg: nbr.Registry) -> None:
    panel = ComparisonPanel(reg, "credit", [1, 3], chart=False)
    assert panel.tabs.titles == ("Metrics", "Parameters", "Features", "Model card", "Lineage")
    metrics, params = panel.pages[0].value, panel.pages[1].value
    assert "0.78" in metrics and "0.8" in metrics and "<svg" not in metrics
    assert "7.8" in params and "identical" in panel.pages[2].value
    panel.versions.value = (2,)
    assert panel.failed and "at least two" in panel.status
    panel.versions.value = (1, 2, 3)
    assert not panel.failed and panel.comparison is not None
    assert [mv.version for mv in panel.comparison.versions] == [1, 2, 3]
    panel.model.value = "churn"
    assert panel.versions.options == (("v1", 1),) and panel.failed
    panel.chart.value = True  # still one version: nothing drawn, no crash


def test_comparison_panel_card_diff_and_chart(reg: nbr.Registry) -> None:
    reg.set_card("credit", 2, CARD)
    panel = ComparisonPanel(reg, "credit", [1, 2])
    assert "<svg" in panel.pages[0].value  # the altair chart, rendered offline
    assert "retail scoring" in panel.pages[3].value and "(absent)" in panel.pages[3].value
    assert "<svg" in panel.snapshot_html()


def test_comparison_panel_unknown_model_is_a_message(reg: nbr.Registry) -> None:
    panel = ComparisonPanel(reg, "nope", [1, 2], chart=False)
    assert panel.failed and "no model named 'nope'" in panel.status


# -- promotion ------------------------------------------------------------------------------------
def test_promotion_gates_checklist_follows_the_card(reg: nbr.Registry) -> None:
    panel = PromotionPanel(reg, "credit", 2, stage="production")
    assert "card_fields" in panel.gates.value and "✘ fail" in panel.gates.value
    assert "intended_use" in panel.gates.value  # the evidence: what is missing
    reg.set_card("credit", 2, CARD)
    panel.refresh_button.click()
    assert "✔ pass" in panel.gates.value and "✘" not in panel.gates.value
    assert panel.status == "Re-read the registry."


def test_self_approval_is_refused_in_the_panel_then_bob_approves(reg: nbr.Registry) -> None:
    reg.set_card("credit", 2, CARD)
    reg.grant_role("alice", "validator")
    mine = PromotionPanel(reg, "credit", 2)
    assert mine.stage.value == "staging"  # the first move the policy allows
    mine.request_button.click()
    assert not mine.failed and "promoted" in mine.status
    mine.stage.value = "production"
    mine.reason.value = "beats v1"
    mine.request_button.click()
    assert mine.request is not None and mine.request.status == "open"
    mine.approve_button.click()
    assert mine.failed and "Refused by policy: self-approval refused" in mine.status
    assert "self-approval" in mine.message.value and "#cf222e" in mine.message.value
    assert reg.get("credit", 2).stage == "staging"

    bobs = PromotionPanel(_as(reg, "bob"), "credit", 2)
    assert bobs.stage.value == "production" and "acting as <b>bob</b>" in bobs.header.value
    assert "beats v1" in bobs.request_view.value
    bobs.comment.value = "gates pass"
    bobs.approve_button.click()
    assert not bobs.failed and "Approved by bob" in bobs.status
    assert reg.get("credit", 2).stage == "production"
    [request] = reg.requests("credit", status="promoted")[-1:]
    assert [(a.user, a.comment) for a in request.approvals] == [("bob", "gates pass")]
    mine.refresh_button.click()
    assert "promoted" in mine.request_view.value and "bob" in mine.request_view.value


def test_reject_needs_a_comment_and_a_role(reg: nbr.Registry) -> None:
    reg.set_card("credit", 3, CARD)
    reg.request_promotion("credit", 3, "staging")
    reg.request_promotion("credit", 3, "production")
    carol = PromotionPanel(_as(reg, "carol"), "credit", 3)
    carol.comment.value = "no"
    carol.reject_button.click()
    assert carol.failed and "'carol' may not reject" in carol.status
    bobs = PromotionPanel(_as(reg, "bob"), "credit", 3)
    bobs.reject_button.click()
    assert bobs.failed and "needs a comment" in bobs.status
    bobs.comment.value = "ks too low for production"
    bobs.reject_button.click()
    assert not bobs.failed and "Rejected by bob" in bobs.status
    assert reg.requests("credit", status="rejected")[0].version == 3


def test_failed_gate_and_read_only_view_are_messages(reg: nbr.Registry) -> None:
    panel = PromotionPanel(reg, "credit", 1, stage="staging")
    panel.stage.value = "production"
    panel.request_button.click()
    assert panel.failed and "policy does not allow development -> production" in panel.status
    with pytest.raises(nbr.ReadOnlyError, match="read-only"):
        PromotionPanel(reg.as_of(datetime.now(UTC)), "credit", 1,  # type: ignore[arg-type]
                       stage="staging")
    assert panel._repr_mimebundle_() is not None
    assert repr(panel) == "<PromotionPanel credit v1 as alice>"


def test_promotion_panel_follows_other_users_changes(reg: nbr.Registry) -> None:
    import time

    reg.set_card("credit", 2, CARD)
    reg.request_promotion("credit", 2, to="staging")
    reg.request_promotion("credit", 2, to="production")
    watching = PromotionPanel(nbr.open_registry(reg.uri, user="alice"), "credit", 2,
                              stage="production", auto_refresh=0.05)
    try:
        assert watching.request is not None and watching.request.status == "open"
        _as(reg, "bob").approve("credit", 2, comment="approved elsewhere")
        deadline = time.monotonic() + 10
        while watching.request.status != "promoted" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watching.request.status == "promoted"
        assert "approved elsewhere" in watching.request_view.value
    finally:
        watching.close()
    assert watching._stop.is_set()


# -- monitoring dashboard ------------------------------------------------------------------
def test_monitoring_dashboard_shows_drift_performance_fairness_and_checks(
        registry_uri: str) -> None:
    from monitored import monitored
    from nbregistry.notebook.panels import MonitoringDashboard

    reg = monitored(registry_uri, policy={"on_alert": "retrain", "window": "1d"})
    panel = MonitoringDashboard(reg, "credit", window="2d")
    assert not panel.failed, panel.status
    drift, perf, fair, alerts = (page.value for page in panel.pages)
    assert "<svg" in drift and "debt_ratio" in drift  # heatmap plus the table
    assert "<svg" in perf and "roc_auc" in perf
    assert "adverse impact ratio" in fair and "four_fifths" in fair
    assert "no check recorded yet" in alerts and panel.tabs.titles[-1] == "Alerts"
    panel.check_button.click()
    assert not panel.failed and "retrain_requested" in panel.status
    assert "debt_ratio" in panel.pages[3].value  # the new alert is listed
    assert panel.tabs.titles[-1] == "Alerts (2)"
    assert reg.get("credit", 1).status.get("retrain_requested")
    assert "<svg" in panel._repr_mimebundle_()["text/html"]  # static fallback


def test_dashboard_header_agrees_with_the_drift_table_before_any_check(
        registry_uri: str) -> None:
    """Two features in alert and no check yet: the header says so, not "0 alert(s)"."""
    from monitored import monitored
    from nbregistry.notebook.panels import MonitoringDashboard

    reg = monitored(registry_uri, policy={"window": "1d"})
    panel = MonitoringDashboard(reg, "credit", heatmap=False)
    header = panel.header.value
    assert "2 features in drift alert (debt_ratio, score), no check recorded yet" in header
    assert "0 alert" not in header
    assert panel.view is not None and panel.view.in_alert() == ["debt_ratio", "score"]
    assert "no check recorded yet" in panel.snapshot_html()


def test_run_check_shows_progress_then_everything_at_once(registry_uri: str) -> None:
    """While the check runs the buttons are disabled and a spinner says so; its outcome is
    announced only once the header and the Alerts tab show it (the browser's screenshot
    once read "check recorded 2 alert(s)" under a header of "0 alert(s)")."""
    from monitored import monitored
    from nbregistry.notebook.panels import MonitoringDashboard

    reg = monitored(registry_uri, policy={"on_alert": "retrain", "window": "1d"})
    panel = MonitoringDashboard(reg, "credit", heatmap=False)
    seen: list[tuple[str, object]] = []
    panel.check_button.observe(lambda c: seen.append(("disabled", c["new"])), "disabled")
    panel.refresh_button.observe(lambda c: seen.append(("refresh", c["new"])), "disabled")
    panel.check_button.observe(lambda c: seen.append(("icon", c["new"])), "icon")
    panel.message.observe(lambda c: seen.append(("message", c["new"])), "value")
    at_outcome: list[tuple[str, str, tuple[str, ...]]] = []
    panel.observe(lambda c: at_outcome.append((c["new"], panel.header.value,
                                               panel.tabs.titles)), "status")
    panel.check_button.click()
    assert seen[:3] == [("disabled", True), ("refresh", True), ("icon", "spinner spin")]
    assert "fa-spinner" in str(seen[3][1]) and "Running the policy" in str(seen[3][1])
    assert seen[-3:] == [("icon", "heartbeat"), ("disabled", False), ("refresh", False)]
    assert not panel.busy
    [(status, header, titles)] = at_outcome
    assert status == "check recorded 2 alert(s) and retrain_requested"
    seal = reg.last_check("credit")
    assert seal is not None
    assert f"by alice (event {seal.seq}): 2 alert(s), retraining requested" in header
    assert titles[-1] == "Alerts (2)"
    assert "fa-spinner" not in panel.message.value


def test_refresh_says_so_and_clears_its_spinner(registry_uri: str) -> None:
    from monitored import monitored
    from nbregistry.notebook.panels import MonitoringDashboard

    reg = monitored(registry_uri, policy={"window": "1d"})
    panel = MonitoringDashboard(reg, "credit", heatmap=False)
    spinning: list[bool] = []
    panel.refresh_button.observe(lambda c: spinning.append(c["new"] == "spinner spin"), "icon")
    panel.refresh_button.click()
    assert spinning == [True, False] and not panel.busy
    assert panel.status.startswith("Re-read") and "fa-spinner" not in panel.message.value


@pytest.mark.slow
def test_progress_bars_stay_inside_the_dashboard(registry_uri: str, tmp_path: Path) -> None:
    """In a real kernel tqdm.auto draws widget bars; the dashboard's questions draw theirs
    in the panel's own output area, not as outputs above (or below) the panel."""
    import nbclient
    import nbformat

    from monitored import monitored

    monitored(registry_uri, policy={"window": "1d"})
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"%load_ext nbregistry\n%registry {registry_uri}"),
                nbformat.v4.new_code_cell("panel = %monitor credit --panel\npanel"),
                nbformat.v4.new_code_cell("panel.check_button.click()\npanel.status")]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown, checked = ([o.get("output_type") for o in cell.outputs] for cell in nb.cells[1:])
    assert shown == ["execute_result"]  # the panel, and nothing else
    assert checked == ["execute_result"]
    assert "check recorded" in nb.cells[2].outputs[0]["data"]["text/plain"]


def test_dashboard_headline_says_what_the_tabs_show() -> None:
    import pyarrow as pa

    from nbregistry.notebook.monitoring import MonitoringView

    def view(statuses: list[str], **kw: object) -> MonitoringView:
        drift = pa.table({"feature": [f"f{i}" for i in range(len(statuses))],
                          "status": statuses})
        return MonitoringView("m", 2, "1d", drift=drift, **kw)  # type: ignore[arg-type]

    assert MonitoringView("m", 2, "1d").headline() == (
        "no drift figures yet, no check recorded yet")
    assert view(["ok", "warn"]).headline() == "no feature in drift alert, no check recorded yet"
    assert view(["alert"]).headline().startswith("1 feature in drift alert (f0),")
    assert "6 features in drift alert (f0, f1, f2, f3, …)" in view(["alert"] * 6).headline()
    check = {"seq": 9, "ts": datetime(2026, 3, 1, 9, 30, tzinfo=UTC), "actor": "bob",
             "alerts": 1, "version": 1}
    assert view(["alert"], last_check=check, status={"retrain_requested": "x"}).headline() == (
        "1 feature in drift alert (f0); last check of v1 2026-03-01 09:30 UTC by bob "
        "(event 9): 1 alert(s)")  # v1's check: v2's retraining request is not its outcome
    check["version"] = 2
    assert view([], last_check=check, status={"retrain_requested": "x"}).headline().endswith(
        "last check 2026-03-01 09:30 UTC by bob (event 9): 1 alert(s), retraining requested")


def test_the_dashboard_follows_a_watcher(registry_uri: str) -> None:
    """Following, it re-reads only when a watcher records something new, and shows the open
    episodes with when they started."""
    from monitored import monitored
    from nbregistry.notebook.panels import MonitoringDashboard
    from nbregistry.watch.watcher import Watcher

    reg = monitored(registry_uri, policy={"window": "1d", "short_window": "1d",
                                          "tick": "1s"})
    panel = MonitoringDashboard(reg, "credit", heatmap=False)
    panel.follow_button.value = True
    assert panel.poll() is False  # nothing new: no re-read
    tick = Watcher(reg.monitor("credit")).tick()
    assert tick.opened
    assert panel.poll() is True and "Open episodes" in panel.pages[3].value
    assert "debt_ratio" in panel.pages[3].value and panel.poll() is False
    deadline = time.monotonic() + 30
    panel.follow_button.value = False
    assert panel._stop.is_set() and time.monotonic() < deadline
