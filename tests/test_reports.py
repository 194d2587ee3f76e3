"""Compliance reports end to end: parameters, the four templates on registries the tests
build, offline HTML, the report event, reverify, the pack and the CLI.

Tests that start a Jupyter kernel are marked ``slow``; the pack fixture runs the four
templates once on one kernel and the tests read its outputs."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_ratio
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

import nbregistry as nbr
from nbregistry.cli import main
from nbregistry.registry.reporting import shipped_templates
from nbregistry.reports import export, helpers, params
from nbregistry.reports.execute import ReportFailedError
from nbregistry.reports.reverify import same
from nbregistry.reports.run import collect
from nbregistry.reports.templates import TEMPLATES, available, template_path
from nbregistry.store import write_table
from reportworld import FEATURES, governed, monitored


class Links(HTMLParser):
    """Every script, stylesheet link and URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, Any]] = []
        self.links: list[dict[str, Any]] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found)
        if tag == "link":
            self.links.append(found)
        self.urls += [v for k, v in attrs if k in ("src", "href", "data", "action") and v
                      and (v.startswith(("http:", "https:", "//")))]


def _offline(page: str) -> Links:
    parser = Links()
    parser.feed(page)
    return parser


# -- without a kernel ------------------------------------------------------------------------
def test_the_four_templates_ship_with_model_and_version_parameters() -> None:
    assert set(TEMPLATES) <= set(available())
    for name in TEMPLATES:
        spec = params.declared(template_path(name))
        assert spec["model"]["required"] and spec["version"]["type"] == "int"
        assert not spec["pin"]["required"] and "registry_uri" in spec


def test_parameters_are_checked_before_anything_runs(registry_uri: str,
                                                     tmp_path: Path) -> None:
    reg = nbr.open_registry(registry_uri, user="alice")
    before = reg.head
    out = tmp_path / "out"
    with pytest.raises(nbr.InvalidInputError) as caught:
        nbr.run_report("validation", output_dir=out, uri=registry_uri, modle="credit",
                       version="2", materiality=3)
    message = str(caught.value)
    assert "unknown parameter 'modle'" in message and "missing required parameter 'model'" \
        in message and "version must be int" in message and "materiality must be str" in message
    assert not out.exists() and reg.refresh().head == before
    with pytest.raises(nbr.InvalidInputError, match="unknown parameter 'pin'"):
        nbr.run_report("sox_change", output_dir=out, uri=registry_uri, model="m", version=1,
                       pin={})
    with pytest.raises(nbr.NotFoundError, match="no model named 'credit'"):
        nbr.run_report("sox_change", output_dir=out, uri=registry_uri, model="credit",
                       version=1)
    assert not out.exists()


def test_command_line_values_are_coerced_to_the_declared_types() -> None:
    path = template_path("fair_lending")
    values = params.validate(path, {"model": "credit", "version": "3", "favorable": "1",
                                    "continuous": '["price"]', "proxy": '{"F": "p_f"}'},
                             coerce=True)
    assert values["version"] == 3 and values["favorable"] == 1
    assert values["continuous"] == ["price"] and values["proxy"] == {"F": "p_f"}
    assert values["group"] == "sex" and values["control"] is None


def test_html_export_is_self_contained_and_hides_code() -> None:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("secret_code_line = 1")
    code.outputs = [nbformat.v4.new_output(
        "display_data", data={"text/html": "<b>figure</b>", "image/svg+xml": "<svg></svg>",
                              "application/javascript": "alert(1)",
                              "application/vnd.vegalite.v5+json": {"mark": "bar"}})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title $x^2$"), code]
    page = export.to_html(nb, title="t")
    links = _offline(page)
    assert links.scripts == [] and links.links == [] and links.urls == []
    assert "secret_code_line" not in page and "<b>figure</b>" in page and "alert(1)" not in page
    assert "secret_code_line" in export.to_html(nb, title="t", show_code=True)
    assert export.external_references('<script src="https://cdn.example/x.js"></script>')
    assert export.external_references("<link href='//cdn.example/a.css'>")


def test_figures_and_head_are_read_back_from_outputs() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    shown = [helpers.figures({"auc": np.float64(0.75), "n": np.int64(3), "x": float("nan")}),
             helpers.Output({helpers.HEAD_MIME: {"seq": 7, "hash": "ab" * 32}}),
             helpers.Output({helpers.TABLES_MIME: {"monitoring/m/predictions": 4}})]
    cell.outputs = [nbformat.v4.new_output("display_data", data=o._repr_mimebundle_())
                    for o in shown]
    nb.cells = [cell]
    found = collect(nb, "t")
    assert found == {"figures": {"auc": 0.75, "n": 3, "x": None}, "head": (7, "ab" * 32),
                     "tables": {"monitoring/m/predictions": 4}, "provenance": None}
    with pytest.raises(nbr.InvalidInputError, match="never showed the registry head"):
        collect(nbformat.v4.new_notebook(), "t")


def test_figures_compare_with_a_float_tolerance() -> None:
    assert same(0.1 + 0.2, 0.3) and same([1, {"a": 2.0}], [1, {"a": 2}])
    assert not same(0.3, 0.3001) and not same(True, 1) and not same("a", "b")


def test_record_report_validates_its_payload(registry_uri: str) -> None:
    from conftest import TinyModel

    reg = nbr.open_registry(registry_uri, user="alice")
    reg.register(TinyModel(), "credit")
    shipped = next(s for s, n in shipped_templates().items() if n == "validation")
    stored = reg.ledger.blobs.put(b"the executed notebook")
    good = {"model": "credit", "version": 1, "parameters": {"model": "credit"},
            "tables": {"t": 0}, "head": list(reg.head), "outputs": {"a.ipynb": stored},
            "sha256": stored, "output_dir": "/tmp/x", "template_sha256": shipped}
    event = reg.record_report("validation", **good)  # type: ignore[arg-type]
    assert event.action == "report" and event.payload["head"] == good["head"]
    for bad in ({"head": [1]}, {"tables": {"t": -1}}, {"sha256": "zz"}, {"version": 9},
                {"sha256": "cd" * 32}, {"template_sha256": "ef" * 32},
                {"outputs": {"a.ipynb": stored, "b.html": "cd" * 32}}):
        with pytest.raises(nbr.NbRegistryError):
            reg.record_report("validation", **{**good, **bad})  # type: ignore[arg-type]


# -- with a kernel ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pack")
    uri = str(root / "registry")
    (root / "data").mkdir()
    world = monitored(uri, root / "data")
    alice = world["alice"]
    alice.record_deployment("credit", 1, "scoring-eu")
    source = alice.policy.source
    stages = {**source["stages"], "production": {**source["stages"]["production"],
                                                 "reports": ["validation"]}}
    alice.set_policy({**source, "stages": stages})
    assert not alice.check_gates("credit", 1, "production")[-1].passed  # no report yet
    pack = nbr.run_pack("credit", 1, output_dir=root / "out", uri=uri, user="alice",
                        progress=False)
    return {**world, "uri": uri, "pack": pack, "root": root}


@pytest.mark.slow
def test_the_pack_writes_four_reports_with_an_index(packed: dict[str, Any]) -> None:
    pack = packed["pack"]
    assert list(pack.reports) == list(TEMPLATES)
    index = pack.index.read_text()
    for name, report in pack.reports.items():
        assert report.files["html"].name in index and report.event is not None
        for path in report.files.values():
            assert path.is_file() and path.stat().st_size > 0
        links = _offline(report.files["html"].read_text())
        assert links.scripts == [] and links.links == [] and links.urls == [], name
        assert "import " not in report.files["html"].read_text()  # the code is hidden
    assert pack.seconds < 120


@pytest.mark.slow
def test_each_run_is_a_report_event_with_head_tables_and_hashes(packed: dict[str, Any]
                                                                ) -> None:
    reg = nbr.open_registry(packed["uri"], user="alice")
    history = reg.history("credit").to_pylist()
    reports = [json.loads(r["payload"]) for r in history if r["action"] == "report"]
    assert [r["template"] for r in reports] == list(TEMPLATES)
    monitoring = packed["pack"].reports["monitoring"]
    payload = monitoring.event.payload
    assert payload["tables"] == {"monitoring/credit/outcomes": 0,
                                 "monitoring/credit/predictions": 0}
    assert payload["parameters"]["model"] == "credit" and "registry_uri" not in \
        payload["parameters"]
    for name, digest in payload["outputs"].items():
        assert reg.ledger.blobs.get(digest)  # a copy is kept in the artifact store
        assert name.startswith("monitoring.")
    validation = packed["pack"].reports["validation"].event.payload
    assert validation["tables"][packed["table"]] == 0  # the pinned training table version
    # the head printed in the report detects a cut log later
    head = tuple(payload["head"])
    assert f"--expected-head {head[0]}:{head[1]}" in monitoring.files["html"].read_text()
    assert reg.verify(expected_head=head).ok  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_report_gate_passes_after_the_run(packed: dict[str, Any]) -> None:
    reg = nbr.open_registry(packed["uri"], user="alice")
    gate = [g for g in reg.check_gates("credit", 1, "production")
            if g.gate == "report:validation"]
    assert gate[0].passed and gate[0].evidence["seq"] == \
        packed["pack"].reports["validation"].event.seq
    assert not next(g for g in reg.check_gates("credit", 2, "production")
                if g.gate == "report:validation").passed


@pytest.mark.slow
def test_validation_figures_equal_sklearn_and_scipy(packed: dict[str, Any]) -> None:
    figures = packed["pack"].reports["validation"].figures
    model, frame = packed["model"], packed["frame"]
    for sample in ("train", "test"):
        part = frame[frame.split == sample]
        score = model.predict_proba(part[FEATURES])[:, 1]
        assert figures[f"auc_{sample}"] == pytest.approx(roc_auc_score(part["default"], score),
                                                         rel=1e-12)
        ks = ks_2samp(score[part["default"] == 1], score[part["default"] == 0]).statistic
        assert figures[f"ks_{sample}"] == pytest.approx(ks, rel=1e-12)
    live = packed["live"]
    expected = roc_auc_score(live["default"], model.predict_proba(live[FEATURES])[:, 1])
    assert figures["auc_production"] == pytest.approx(expected, rel=1e-9)
    assert figures["rows"] == 3000 and figures["approvals"] == 1


@pytest.mark.slow
def test_monitoring_figures_equal_the_library_and_the_peers(packed: dict[str, Any]) -> None:
    figures = packed["pack"].reports["monitoring"].figures
    mon = packed["mon"]
    drift = mon.drift(version=1)
    assert figures["psi_max_pooled"] == pytest.approx(max(drift.column("psi").to_pylist()),
                                                      rel=1e-9)
    perf = mon.performance(None, version=1).to_pylist()[0]
    assert figures["roc_auc"] == pytest.approx(perf["roc_auc"], rel=1e-12)
    live, model = packed["live"], packed["model"]
    assert figures["roc_auc"] == pytest.approx(
        roc_auc_score(live["default"], model.predict_proba(live[FEATURES])[:, 1]), rel=1e-9)
    label = model.predict_proba(live[FEATURES]).argmax(axis=1)
    dpr = demographic_parity_ratio(live["default"], label == 0, sensitive_features=live["sex"])
    assert figures["air_min"] == pytest.approx(dpr, rel=1e-9)
    assert figures["predictions"] == 3000 and figures["outcomes"] == 3000
    assert figures["red"] == 0 and figures["alerts"] == 0


@pytest.mark.slow
def test_fair_lending_figures_equal_the_monitor_and_fairlearn(packed: dict[str, Any]) -> None:
    """Every group against the control group (men, by the policy's default), not the most
    favoured: here women are, and their AIR against men is above 1."""
    figures = packed["pack"].reports["fair_lending"].figures
    fair = {r["group"]: r for r in packed["mon"].fairness("sex", 0, reference="M",
                                                          version=1).to_pylist()}
    assert figures["air_sex_F"] == pytest.approx(fair["F"]["air"], rel=1e-12)
    assert figures["air_sex_F"] > 1 and "air_sex_M" not in figures
    assert figures["p_value_sex_F"] == pytest.approx(fair["F"]["p_value"], rel=1e-9)
    live, model = packed["live"], packed["model"]
    label = model.predict_proba(live[FEATURES]).argmax(axis=1)
    approved = {g: (label[live["sex"] == g] == 0).mean() for g in ("F", "M")}
    assert figures["air_min"] == pytest.approx(approved["F"] / approved["M"], rel=1e-9)
    assert 1 / figures["air_min"] == pytest.approx(demographic_parity_ratio(
        live["default"], label == 0, sensitive_features=live["sex"]), rel=1e-9)
    assert figures["four_fifths_failures"] == 0 and figures["shortfall"] == 0
    assert figures["bases_tested"] == ["sex"] and "race" in figures["bases_not_tested"]
    assert figures["lda_chosen"] == "model as reviewed" and figures["lda_alternatives"] >= 4
    page = packed["pack"].reports["fair_lending"].files["html"].read_text()
    assert "four_fifths_rule" in page and ">pass<" in page and ">control<" in page
    assert "Search for a less discriminatory alternative" in page


@pytest.mark.slow
def test_fair_lending_with_a_proxy_and_an_age_basis(packed: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """Race by proxy probabilities (BISG-like) and age by a recorded column: each against
    its control group, the proxy's bias stated next to its figures, untested bases named."""
    rng = np.random.default_rng(4)
    live = packed["live"].copy()
    n = len(live)
    p_black = rng.beta(0.6, 0.6, n)
    black = rng.random(n) < p_black
    score = packed["model"].predict_proba(live[FEATURES])[:, 1]
    live = live.assign(label=((score + np.where(black, 0.12, 0.0)) >= 0.5).astype(int),
                       actual=live["default"], p_black=p_black, p_white=1 - p_black,
                       age=rng.integers(20, 80, n).astype(float))
    table = str(tmp_path / "applications")
    write_table(table, live)
    report = nbr.run_report("fair_lending", output_dir=tmp_path / "out", uri=packed["uri"],
                            model="credit", version=1, data=table,
                            bases={"sex": "sex", "age": "age"},
                            proxy={"Black": "p_black", "White": "p_white"},
                            proxy_method="BISG (surname and geography)", progress=False,
                            pdf=False)
    figures = report.figures
    assert figures["bases_tested"] == ["age", "race", "sex"]
    assert "national_origin" in figures["bases_not_tested"]
    favored = (live["label"] == 0).to_numpy(dtype=float)
    weighted = (p_black * favored).sum() / p_black.sum() / (
        ((1 - p_black) * favored).sum() / (1 - p_black).sum())
    assert figures["air_race_Black"] == pytest.approx(weighted, rel=1e-9)
    old = live["age"] >= 62
    assert figures["air_age_62+"] == pytest.approx(
        favored[old].mean() / favored[~old].mean(), rel=1e-9)
    page = report.files["html"].read_text()
    assert "race: the proxy&#x27;s bias" in page or "race: the proxy's bias" in page
    assert "pulled towards 1" in page and "z, weighted" in page


@pytest.mark.slow
def test_a_failing_cell_names_the_template_and_the_cell(registry_uri: str,
                                                        tmp_path: Path) -> None:
    from conftest import TinyModel

    nbr.open_registry(registry_uri, user="alice").register(TinyModel(), "credit")
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("registry_uri: str = None\npin: dict = None\n"
                                           "model: str = None\nversion: int = None")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# Broken\n## Data section"), parameters,
                nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("# load\nraise ValueError('the data is gone')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, str(path))
    _register_template(nbr.open_registry(registry_uri, user="alice"), "broken", path)
    with pytest.raises(ReportFailedError) as caught:
        nbr.run_report(str(path), output_dir=tmp_path / "out", uri=registry_uri,
                       model="credit", version=1, progress=False, pdf=False)
    error = caught.value
    assert error.template == "broken" and error.cell == 3 and error.ename == "ValueError"
    assert "template cell 3 (section 'Broken')" in str(error)
    assert "raise ValueError" in str(error) and "the data is gone" in str(error)
    events = nbr.open_registry(registry_uri).events()
    assert not any(e.action == "report" for e in events)


@pytest.mark.slow
def test_the_sox_report_lists_an_unapproved_hash_from_the_command_line(
        registry_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = governed(registry_uri)
    out = tmp_path / "sox"
    code = main(["report", "sox_change", "-p", "model=credit", "-p", "version=1",
                 "-p", "end=2099-01-01",
                 "--output-dir", str(out), "--uri", registry_uri, "--quiet", "--no-pdf"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "recorded the sox_change report as event" in printed
    notebook = nbformat.read(str(out / "sox_change.ipynb"), as_version=4)
    figures = collect(notebook, "sox_change")["figures"]
    assert figures["hash_mismatches"] == 1 and figures["unratified_emergencies"] == 1
    reg = world["alice"].refresh()
    assert figures["deployments"] == reg.deployments("credit").num_rows
    assert figures["verify_ok"] is reg.verify().ok is True
    page = (out / "sox_change.html").read_text()
    assert "deployed_hash" in page and "abababababab" in page
    exceptions = page[page.index("exception(s) found"):]
    assert re.search(rf">{world['bad_deploy'].seq}</td>.*?deployed_hash", exceptions, re.S)
    assert not (out / "sox_change.pdf").exists()
    assert main(["report", "sox_change", "-p", "model", "--output-dir", str(out),
                 "--uri", registry_uri]) == 1  # a usage mistake the parser cannot see


@pytest.mark.slow
def test_a_challenger_is_replayed_on_production_traffic(packed: dict[str, Any],
                                                        tmp_path: Path) -> None:
    report = nbr.run_report("validation", output_dir=tmp_path, uri=packed["uri"],
                            model="credit", version=2, progress=False, pdf=False)
    replay = packed["mon"].replay(2, served=1)
    assert report.figures["challenger_auc_diff"] == pytest.approx(replay.diff, rel=1e-9)
    assert report.figures["challenger_p_value"] == pytest.approx(replay.p_values["roc_auc"],
                                                                 rel=1e-9)
    assert "auc_production" not in report.figures  # v2 served no traffic
    assert not (tmp_path / "validation.pdf").exists()


def _custom_template(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(
        "from typing import Optional\nregistry_uri: str = None\npin: Optional[dict] = None\n"
        "model: str = None\nversion: int = None\nfactor: float = 2.0")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path


def _register_template(admin: nbr.Registry, name: str, path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    admin.set_policy({**admin.policy.source, "reports": {"templates": {name: digest}}})


@pytest.mark.slow
def test_a_custom_template_is_recorded_by_path_and_reverified(registry_uri: str,
                                                              tmp_path: Path) -> None:
    """A custom template runs and is recorded only once an admin registered its sha256;
    reverify runs it again only while the file at the recorded path still has that sha256
    (a swapped notebook is refused, never executed)."""
    from conftest import TinyModel

    alice = nbr.open_registry(registry_uri, user="alice")
    alice.register(TinyModel(), "credit")
    path = _custom_template(tmp_path / "mine.ipynb", (
        "from nbregistry.reports import helpers as h\nctx = h.open_report(registry_uri, pin)\n"
        "h.record_figures({'events': ctx.head[0] * factor, 'model': model})\nh.close(ctx)"))
    with pytest.raises(nbr.PolicyViolationError, match=r"neither shipped .* nor registered"):
        nbr.run_report(str(path), output_dir=tmp_path / "out", uri=registry_uri,
                       model="credit", version=1, progress=False, pdf=False)
    assert not (tmp_path / "out").exists()  # refused before any kernel started
    _register_template(alice, "mine", path)
    report = nbr.run_report(str(path), output_dir=tmp_path / "out", uri=registry_uri,
                            model="credit", version=1, factor=3, progress=False, pdf=False)
    assert report.event is not None and report.event.payload["template"] == str(path)
    assert report.figures == {"events": 9.0, "model": "credit"}
    alice.comment("credit", 1, "later event")
    again = nbr.reverify(report, progress=False)
    assert again.ok and again.rerun is not None and again.rerun.head == report.head
    assert "registered in the policy" in again.template_check
    marker = tmp_path / "ran"
    _custom_template(path, f"open({str(marker)!r}, 'w').write('pwned')")
    swapped = nbr.reverify(report, progress=False)
    assert not swapped.ok and swapped.rerun is None and not marker.exists()
    assert swapped.error is not None and "will not run it" in swapped.error


@pytest.mark.slow
def test_reverify_checks_the_files_it_is_given_and_names_the_figure(
        packed: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An edited copy of the monitoring report (its AUC changed) sent as a folder or a zip
    is reported by figure, whatever the original folder holds."""
    import zipfile

    report = packed["pack"].reports["monitoring"]
    copy = tmp_path / "sent"
    copy.mkdir()
    for path in report.files.values():
        shutil.copy(path, copy / path.name)
    page = (copy / "monitoring.html").read_text()
    shown = helpers.fmt(report.figures["roc_auc"])
    edited = re.sub(rf"(roc_auc</td><td[^>]*>){re.escape(shown)}<", r"\g<1>0.7999<", page)
    assert edited != page
    (copy / "monitoring.html").write_text(edited)
    with pytest.raises(nbr.InvalidInputError, match="name the registry"):
        nbr.reverify(copy, progress=False)  # never the registry the files name
    result = nbr.reverify(copy, uri=packed["uri"], progress=False)
    assert not result.ok and result.figures_unchanged and result.seq == report.event.seq
    assert {f["file"]: f["status"] for f in result.files}["monitoring.html"] == "modified"
    named = [d for d in result.differences if d["where"].endswith("roc_auc › value")]
    assert named and named[0]["recorded"] == shown and named[0]["given"] == "0.7999"
    archive = tmp_path / "sent.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in copy.iterdir():
            z.write(path, arcname=f"examiner/{path.name}")
    zipped = nbr.reverify(archive, uri=packed["uri"], progress=False)
    assert not zipped.ok and [d["where"] for d in zipped.differences] == [
        d["where"] for d in result.differences]
    assert main(["reverify", str(archive), "--uri", packed["uri"], "--quiet", "--json"]) == 4
    printed = json.loads(capsys.readouterr().out)
    assert not printed["ok"] and printed["differences"][0]["given"] == "0.7999"
    assert nbr.reverify(report, progress=False).ok  # the original files are untouched
    with pytest.raises(nbr.InvalidInputError, match="belong to several reports"):
        nbr.reverify(report.output_dir, uri=packed["uri"], progress=False)  # it holds four


@pytest.mark.slow
def test_a_re_recorded_run_with_an_edited_page_fails_reverify(packed: dict[str, Any],
                                                              tmp_path: Path) -> None:
    """Issue 16.9: someone with a reporting role edits the HTML, stores it and records the
    run again with the edited page's hash: the page is compared with the rendering of the
    notebook it claims to come from, and the edited figure is named."""
    report = packed["pack"].reports["sox_change"]
    alice = nbr.open_registry(packed["uri"], user="alice")
    page = report.files["html"].read_text()
    edited = re.sub(r"(deployments</td><td[^>]*>)1<", r"\g<1>0<", page)
    assert edited != page
    digest = alice.ledger.blobs.put(edited.encode())
    payload = report.event.payload
    forged = alice.record_report(
        payload["template"], model="credit", version=1, parameters=payload["parameters"],
        tables=payload["tables"], head=payload["head"],
        outputs={**payload["outputs"], "sox_change.html": digest}, sha256=payload["sha256"],
        output_dir=str(tmp_path), template_sha256=payload["template_sha256"],
        provenance=payload["provenance"])
    for path in report.files.values():
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "sox_change.html").write_text(edited)
    result = nbr.reverify(forged.seq, uri=packed["uri"], progress=False)
    assert result.files_unchanged and result.figures_unchanged and not result.ok
    assert [(d["where"].split(" › ")[-2:], d["recorded"], d["given"]) for d in
            result.rendering] == [(["deployments", "value"], "1", "0")]


@pytest.mark.slow
def test_every_report_shows_and_records_who_when_and_with_what(packed: dict[str, Any]
                                                                ) -> None:
    from nbregistry.registry.reporting import shipped_templates

    reg = nbr.open_registry(packed["uri"], user="alice")
    reference = reg.get("credit", 1).reference["sha256"]  # type: ignore[index]
    for name, report in packed["pack"].reports.items():
        assert report.event is not None
        p = report.event.payload
        assert shipped_templates()[p["template_sha256"]] == name
        assert p["provenance"]["by"] == report.event.actor == "alice"
        assert p["provenance"]["nbregistry"] == nbr.__version__
        assert p["provenance"]["template_sha256"] == p["template_sha256"]
        assert p["provenance"]["baseline"]["reference"] == reference
        page = report.files["html"].read_text()
        for shown in ("run by", p["provenance"]["started"], p["template_sha256"], reference,
                      f"<code>{nbr.__version__}</code>"):
            assert shown in page, (name, shown)


@pytest.mark.slow
def test_reverify_detects_a_changed_table_and_an_edited_output(packed: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """Runs last in this module: it rewrites the training table the pack read."""
    report = packed["pack"].reports["validation"]
    unchanged = nbr.reverify(report, output_dir=tmp_path / "again", progress=False)
    assert unchanged.ok, unchanged
    assert unchanged.rerun is not None and unchanged.rerun.tables == report.tables
    # the training table's version 0 now holds other rows; the HTML was edited
    table = packed["table"]
    frame = packed["frame"].copy()
    frame.loc[frame.split == "test", "default"] = 1 - frame.loc[frame.split == "test", "default"]
    shutil.rmtree(table)
    write_table(table, frame)
    html = report.files["html"]
    html.write_text(html.read_text().replace("Model validation", "Model validated OK"))
    changed = nbr.reverify(report.event.seq, uri=packed["uri"], progress=False)
    assert not changed.ok
    assert "auc_test" in changed.changed() and "rows" not in changed.changed()
    files = {Path(f["file"]).name: f["status"] for f in changed.files}
    assert files["validation.html"] == "modified" and files["validation.ipynb"] == "unchanged"
    assert "CHANGED" in repr(changed) and "auc_test" in changed._repr_html_()


# -- who may record a report, and which reports count (no kernel) --------------------------
def _report_payload(reg: nbr.Registry, template: str = "validation") -> dict[str, Any]:
    from nbregistry.registry.reporting import shipped_templates

    stored = reg.ledger.blobs.put(b"an executed notebook")
    return {"template": template, "parameters": {"model": "credit", "version": 1},
            "tables": {}, "head": list(reg.head), "outputs": {f"{template}.ipynb": stored},
            "sha256": stored, "output_dir": "/tmp/x",
            "template_sha256": next(s for s, n in shipped_templates().items()
                                    if n == template)}


def test_recording_a_report_needs_a_reporting_role(registry_uri: str, tmp_path: Path) -> None:
    from conftest import TinyModel

    alice = nbr.open_registry(registry_uri, user="alice")
    alice.register(TinyModel(), "credit")
    mallory = nbr.open_registry(registry_uri, user="mallory")
    with pytest.raises(nbr.PolicyViolationError, match="'mallory' may not record a report"):
        mallory.record_report(**_report_payload(mallory), model="credit", version=1)
    with pytest.raises(nbr.PolicyViolationError, match="may not record a report"):
        nbr.run_report("sox_change", output_dir=tmp_path / "out", uri=registry_uri,
                       user="mallory", model="credit", version=1)
    assert not (tmp_path / "out").exists()  # refused before any kernel started
    alice.grant_role("dora", "data_scientist")
    alice.set_policy({**alice.policy.source, "reports": {"roles": ["validator"]}})
    with pytest.raises(nbr.PolicyViolationError, match="it needs validator"):
        nbr.open_registry(registry_uri, user="dora").record_report(
            **_report_payload(alice), model="credit", version=1)
    with pytest.raises(nbr.InvalidInputError, match=r"reports\.roles names unknown role"):
        alice.set_policy({**alice.policy.source, "reports": {"roles": ["auditor"]}})


def test_a_report_gate_counts_only_reports_recorded_as_evidence(registry_uri: str) -> None:
    """Written straight into storage (past record_report's checks): a report by a user with
    no reporting role is not applied, one without its template's sha256 (an older writer's)
    does not count for the gate and cannot hide one that does."""
    from conftest import TinyModel

    alice = nbr.open_registry(registry_uri, user="alice")
    alice.register(TinyModel(), "credit", card={"intended_use": "a", "limitations": "b"})
    source = alice.policy.source
    stages = {**source["stages"], "production": {**source["stages"]["production"],
                                                 "reports": ["validation"]}}
    alice.set_policy({**source, "stages": stages})

    def planted(reg: nbr.Registry, payload: dict[str, Any]) -> nbr.Event:
        return reg.ledger.record("report", "credit", lambda s: (1, payload))

    def gate() -> nbr.GateResult:
        return next(g for g in alice.refresh().check_gates("credit", 1, "production")
                    if g.gate == "report:validation")

    mallory = nbr.open_registry(registry_uri, user="mallory")
    planted(mallory, _report_payload(mallory))
    assert not gate().passed
    assert any(p.kind == "malformed" and "no reporting role" in p.message
               for p in alice.verify().problems)
    old_style = {k: v for k, v in _report_payload(alice).items() if k != "template_sha256"}
    old = planted(alice, old_style)
    assert not gate().passed and f"event {old.seq} does not count" in gate().detail
    good = alice.record_report(**_report_payload(alice), model="credit", version=1)
    assert gate().passed and gate().evidence["seq"] == good.seq
    planted(alice, old_style)  # an older-style event later does not replace it
    assert gate().passed and gate().evidence["seq"] == good.seq


def test_every_shipped_template_is_in_the_history() -> None:
    from nbregistry.registry.reporting import past_templates, shipped_templates

    missing = {n for s, n in shipped_templates().items() if past_templates().get(s) != n}
    assert not missing, (f"{sorted(missing)} changed: run python tools/build_templates.py, "
                         "which adds each built template to templates/HISTORY.json")


def test_a_report_of_an_earlier_template_counts_and_reverify_says_why_it_cannot_rerun(
        registry_uri: str) -> None:
    from conftest import TinyModel
    from nbregistry.registry.reporting import past_templates, shipped_templates
    from nbregistry.reports.reverify import template_to_run

    earlier = next(s for s, n in past_templates().items()
                   if n == "validation" and s not in shipped_templates())
    alice = nbr.open_registry(registry_uri, user="alice")
    alice.register(TinyModel(), "credit")
    event = alice.record_report(**{**_report_payload(alice), "template_sha256": earlier},
                                model="credit", version=1)
    assert event.payload["template_sha256"] == earlier   # a reviewed template: it counts
    with pytest.raises(nbr.PolicyViolationError, match="template of an earlier nbregistry"):
        template_to_run(alice, event.payload)
    forged = "0" * 64   # never shipped: refused as before
    with pytest.raises(nbr.PolicyViolationError, match="neither shipped"):
        alice.record_report(**{**_report_payload(alice), "template_sha256": forged},
                            model="credit", version=1)
