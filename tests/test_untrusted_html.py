"""Text from the registry is shown, never run.

Anyone who can write the registry's folder can put markup in a card field, a description, a
comment, a user's name, a logged attribute value or (past the writer's checks) a model name.
Reports and notebook displays escape every value; report pages carry a Content-Security-
Policy that forbids script and every load but data: images; and headless Chromium confirms,
on reports built from such a registry, that no script runs and no request leaves the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import nbregistry as nbr
from nbregistry.reports import export, helpers
from nbregistry.reports.pack import index_page
from reportworld import NOW, PAYLOADS, hostile

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CSP_META = re.compile(r"<head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
                      r"content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline';")


# -- without a browser -----------------------------------------------------------------------
def test_a_value_that_looks_like_a_badge_is_shown_as_text() -> None:
    shown = helpers.table([{"item": p, "rag": helpers.rag("alert")} for p in PAYLOADS]
                          ).data["text/html"]
    assert not [p for p in PAYLOADS if p in shown]
    assert "&lt;span style=&#x27;x&#x27;&gt;&lt;img src=x onerror=" in shown
    assert shown.count("<span style='background:#cf222e;color:#fff") == len(PAYLOADS)
    assert ">RED</span>" in shown  # the badge is still a coloured badge
    assert export.external_references(shown) == []
    odd = helpers.table([{"rag": helpers.rag("<b>new</b>")}]).data
    assert "&lt;B&gt;NEW&lt;/B&gt;" in odd["text/html"] and "<B>NEW</B>" in odd["text/plain"]


def test_the_guard_finds_whatever_could_run_or_load() -> None:
    for payload in [*PAYLOADS, "<video poster=//attacker.invalid/p.png>",
                    "<img srcset='data:image/png;base64,AA 1x, //attacker.invalid/x 2x'>",
                    "<a href=' JaVa\tScRiPt:alert(1)'>x</a>", "<style>@import 'x.css'</style>",
                    "<div style='background:u\\72l(//attacker.invalid/x)'>x</div>",
                    "<svg><image href='https://attacker.invalid/i.png'/></svg>",
                    "<meta http-equiv=refresh content='0;url=https://attacker.invalid'>",
                    "<form action=https://attacker.invalid><button>go</button></form>",
                    "<iframe srcdoc='x'></iframe>", "<object data=x.swf></object>",
                    "<svg><rect fill='url(https://attacker.invalid/p.svg#p)'/></svg>"]:
        assert export.external_references(payload), payload
    for fine in ["<a href='#section-2'>2</a>", "<a href='validation.html'>report</a>",
                 "<img src='data:image/png;base64,AAAA'>", "<svg><use href='#a'/>"
                 "<rect clip-path='url(#clip1)' style='fill:#fff'/></svg>",
                 "<span style='background:#cf222e;color:#fff'>RED</span>"]:
        assert export.external_references(fine) == [], fine


def test_report_pages_and_the_pack_index_carry_the_policy_first() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title")]
    assert CSP_META.search(export.to_html(nb, title="t"))
    assert CSP_META.search(index_page("credit", 1, {}))
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": PAYLOADS[3]})]
    nb.cells.append(cell)
    with pytest.raises(nbr.InvalidInputError, match="srcset"):
        export.to_html(nb, title="t")  # raw markup from a template is refused, not written


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "data").mkdir()
    uri = str(root / "registry")
    return {**hostile(uri, root / "data"), "uri": uri, "root": root}


def displays(world: dict[str, Any]) -> dict[str, str]:
    """The HTML of every notebook display, over the hostile registry."""
    from nbregistry.notebook.comparison import Comparison
    from nbregistry.notebook.display import (
        Gates,
        HistoryTable,
        VersionsTable,
        registry_html,
        version_card_html,
    )
    from nbregistry.notebook.monitoring import gather
    from nbregistry.notebook.panels import (
        ComparisonPanel,
        MonitoringDashboard,
        PromotionPanel,
        RegistryBrowser,
    )

    reg = nbr.open_registry(world["uri"], user=PAYLOADS[3])  # mallory, an admin by now
    mon = reg.monitor("credit")
    mv = reg.get("credit", 1)
    browser = RegistryBrowser(reg)
    browser.version.value = ("credit", 1)
    shown = {
        "version": mv._repr_html_(),
        "card": version_card_html(mv, reg.history("credit", version=1)),
        "versions": VersionsTable(reg.search())._repr_html_(),
        "history": HistoryTable(reg.history(), reg.verify())._repr_html_(),
        "requests": "".join(r._repr_html_() for r in reg.requests(status="all")),
        "gates": Gates(reg.check_gates("credit", 2, "production"))._repr_html_(),
        "comparison": Comparison([mv, reg.get("credit", 2)])._repr_html_(),
        "registry": registry_html(reg),
        "monitoring": gather(mon, window="30d", version=1)._repr_html_(),
        "check": mon.check(now=NOW)._repr_html_(),
        "replay": mon.replay(2, served=1)._repr_html_(),
        "browser": browser.count.value + browser.table.value + browser.card.value,
        "promotion": PromotionPanel(reg, "credit", 1).snapshot_html(),
        "dashboard": MonitoringDashboard(reg, "credit", window="30d").snapshot_html(),
        "compare": "".join(p.value for p in ComparisonPanel(reg, "credit", [1, 2]).pages),
    }
    dashboard = MonitoringDashboard(reg, "credit", window="30d")
    shown["dashboard"] += dashboard.header.value + "".join(p.value for p in dashboard.pages)
    return shown


def test_notebook_displays_escape_what_the_registry_holds(world: dict[str, Any]) -> None:
    shown = displays(world)
    for name, page in shown.items():
        assert [p for p in PAYLOADS if p in page] == [], name
        assert export.external_references(page) == [], name
    # every display but two shows planted text (escaped); those two show none of it
    assert [name for name, page in shown.items() if "&lt;" not in page] == ["gates", "replay"]


# -- in headless Chromium --------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium; install it with "
                    "`apt-get install -y chromium` (CI does) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Recorded in the page before anything of its own runs (devtools' init scripts run whatever
# the page's policy says): what the policy blocked, so a test can tell a blocked attempt
# from a page that never tried.
WATCH = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"""


def visit(browser: Any, path: Path) -> dict[str, Any]:
    """Open ``path``, click every link, and report what ran, loaded and was blocked."""
    page = browser.new_page()
    own = path.resolve().as_uri()
    requests: list[str] = []

    def record(route: Any) -> None:
        """Sees what the page's policy let through (a blocked load never gets here), and
        aborts it: nothing leaves the machine even when the test fails."""
        if route.request.url == own:
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort()

    page.route("**/*", record)
    page.add_init_script(WATCH)
    try:
        page.goto(own, wait_until="load")
        title = page.title()
        for link in page.locator("a[href^='javascript' i]").all():
            link.click()
        page.wait_for_timeout(300)
        return {"title": title, "now": page.title(), "requests": requests,
                "violations": page.evaluate("window.__violations"),
                "text": page.inner_text("body")}
    finally:
        page.close()


@pytest.fixture(scope="module")
def pack(world: dict[str, Any]) -> Any:
    return nbr.run_pack("credit", 1, output_dir=world["root"] / "out", uri=world["uri"],
                        user="alice", progress=False, pdf=False,
                        parameters={"sox_change": {"all_models": True}})


@pytest.mark.browser
@pytest.mark.slow
def test_reports_from_a_hostile_registry_run_nothing_and_load_nothing(
        pack: Any, chromium: Any) -> None:
    pages = {name: r.files["html"] for name, r in pack.reports.items()}
    assert list(pages) == ["validation", "monitoring", "fair_lending", "sox_change"]
    for name, path in {**pages, "index": pack.index}.items():
        seen = visit(chromium, path)
        assert seen["now"] == seen["title"] != "pwned", name
        assert seen["requests"] == [], name
        assert seen["violations"] == [], name  # escaped: nothing even tried
    text = {name: visit(chromium, path)["text"] for name, path in pages.items()}
    assert PAYLOADS[1] in text["validation"]  # the approver's comment, shown as text
    assert PAYLOADS[0] in text["validation"]  # a card field that looks like a badge
    assert PAYLOADS[0] in text["monitoring"] and PAYLOADS[0] in text["fair_lending"]
    assert PAYLOADS[4] in text["sox_change"]  # the deployment target
    assert re.search(r"\b(GREEN|AMBER|RED)\b", text["monitoring"])  # badges still show


@pytest.mark.browser
@pytest.mark.slow
def test_the_policy_alone_stops_script_and_loads(pack: Any, chromium: Any,
                                                 tmp_path: Path) -> None:
    """Defence in depth: markup that escaped the escaping still neither runs nor loads."""
    raw = "".join(PAYLOADS) + (
        "<img src='http://attacker.invalid/i.png'><iframe src='http://attacker.invalid/f'>"
        "</iframe><style>@import 'http://attacker.invalid/s.css';</style>"
        "<link rel=stylesheet href='http://attacker.invalid/l.css'>"
        "<object data='http://attacker.invalid/o'></object>"
        "<svg><image href='http://attacker.invalid/s.png'/></svg>"
        "<a href=\"javascript:void(document.title='pwned')\">plain link</a>")
    for name, report in pack.reports.items():
        path = tmp_path / f"{name}.html"
        path.write_text(report.files["html"].read_text().replace("<body>\n",
                                                                 f"<body>\n{raw}", 1))
        seen = visit(chromium, path)
        assert seen["now"] == seen["title"] != "pwned", name
        assert seen["requests"] == [], name
        assert seen["violations"], name  # the policy did the blocking
    bare = tmp_path / "bare.html"  # the same page without the policy: the test can fail
    bare.write_text(path.read_text().replace("http-equiv='Content-Security-Policy'", ""))
    seen = visit(chromium, bare)
    assert seen["now"] == "pwned" and seen["requests"]


@pytest.mark.browser
@pytest.mark.slow
def test_notebook_displays_run_nothing_in_chromium(world: dict[str, Any], chromium: Any,
                                                   tmp_path: Path) -> None:
    """The notebook's HTML has no policy to fall back on (JupyterLab trusts its outputs):
    only the escaping stands between a planted string and the reader's browser."""
    body = "".join(f"<h2>{name}</h2>{html}" for name, html in displays(world).items())
    path = tmp_path / "displays.html"
    path.write_text(f"<!DOCTYPE html><html><head><title>displays</title></head><body>{body}"
                    "</body></html>")
    seen = visit(chromium, path)
    assert seen["now"] == seen["title"] == "displays"
    assert seen["requests"] == [] and seen["violations"] == []
    assert PAYLOADS[2] in seen["text"]
