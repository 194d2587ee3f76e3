"""Registry browser: every version in one sortable, filterable table, and a version's card."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...domain.errors import NbRegistryError
from ...domain.html import STAGE_COLORS, esc, fmt
from .. import parsing
from ..display import VersionsTable, describe_error, version_card_html
from .base import Panel

if TYPE_CHECKING:
    from ...registry import RegistryView

FIXED = ("name", "version", "stage", "aliases", "created_at", "created_by")
SORTS = [("name, version", "name"), ("created", "created_at"), ("stage", "stage"),
         ("author", "created_by")]
# One scoped <style> instead of inline styles per cell keeps 1,000 rows ≈5× smaller on the
# wire; the class prefix keeps it from touching the rest of the page.
STYLE = (
    "<style>.nbr-b{max-height:420px;overflow:auto;border:1px solid #d0d7de}"
    ".nbr-b table{border-collapse:collapse;font:12px -apple-system,Segoe UI,Helvetica,Arial,"
    "sans-serif;width:100%}.nbr-b th{position:sticky;top:0;background:#f6f8fa;"
    "text-align:left;padding:3px 8px;border-bottom:2px solid #d0d7de;white-space:nowrap}"
    ".nbr-b td{padding:2px 8px;border-bottom:1px solid #eaeef2;white-space:nowrap}"
    ".nbr-b .st{border:1px solid;border-radius:10px;padding:0 6px;font-size:11px}</style>")


class RegistryBrowser(Panel):
    """Models and versions as a table: filter by model, stage, text and metric bounds; sort
    by any column or metric; pick a version to see its card and history."""

    def __init__(self, registry: RegistryView, *, name: str | None = None, where: str = "",
                 max_rows: int = 5000) -> None:
        self.max_rows = max_rows
        self.rows: list[dict[str, Any]] = []
        self._quiet = False
        self.model = widgets.Dropdown(description="model")
        self.stage = widgets.Dropdown(description="stage", options=[("any", "")])
        self.text = widgets.Text(description="filter", continuous_update=False,
                                 placeholder="name, alias, tag, author, description")
        self.where = widgets.Text(value=where, description="metrics", continuous_update=False,
                                  placeholder="auc>=0.8, ks<=0.3")
        self.sort = widgets.Dropdown(description="sort by", options=SORTS)
        self.descending = widgets.Checkbox(description="descending", indent=False)
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.count = widgets.HTML()
        self.table = widgets.HTML()
        self.version = widgets.Dropdown(description="card of", options=[("—", None)])
        self.card = widgets.HTML()
        box = {"flex_flow": "row wrap"}
        super().__init__(registry, [
            widgets.HBox([self.model, self.stage, self.text], layout=box),
            widgets.HBox([self.where, self.sort, self.descending, self.refresh_button],
                         layout=box),
            self.count, self.table, self.version, self.card])
        self._load_choices(name or "")
        for control in (self.model, self.stage, self.text, self.where, self.sort,
                        self.descending):
            control.observe(self._changed, names="value")
        self.version.observe(lambda _: self.show_card(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.render()
        if name and self.model.value != name:
            self.say(f"no model named {name!r}; showing all models", ok=False)

    def __repr__(self) -> str:
        return f"<RegistryBrowser {self.registry.uri} {len(self.rows)} versions shown>"

    def _changed(self, _: Any) -> None:
        if not self._quiet:
            self.render()

    def _load_choices(self, model: str) -> None:
        """Model and stage choices come from the registry; keep the user's picks if valid."""
        self._quiet = True
        try:
            models = self.registry.models()
            self.model.options = [("all models", ""), *((m, m) for m in models)]
            self.model.value = model if model in models else ""
            stages = list(self.registry.policy.stages)
            keep = self.stage.value if self.stage.value in stages else ""
            self.stage.options = [("any", ""), *((s, s) for s in stages)]
            self.stage.value = keep
        finally:
            self._quiet = False

    def refresh(self) -> None:
        self.reread()
        self._load_choices(self.model.value)
        self.render()
        self.show_card()

    def render(self) -> None:
        """Query the registry with the filters, then sort and draw the table."""
        try:
            low, high = parsing.where([self.where.value])
            table = self.registry.search(self.model.value or None, stage=self.stage.value or None,
                                         min_metrics=low or None, max_metrics=high or None)
        except NbRegistryError as exc:
            self.say(describe_error(exc), ok=False)
            return
        self.say("", ok=True)
        metrics = [c for c in table.column_names if c.startswith("metrics.")]
        self._offer_metric_sorts(metrics)
        needle = self.text.value.strip().lower()
        rows = [r for r in table.to_pylist() if not needle or needle in _haystack(r)]
        self.rows = sort_rows(rows, self.sort.value, descending=self.descending.value)
        shown = self.rows[: self.max_rows]
        more = f" (showing the first {len(shown)})" if len(shown) < len(self.rows) else ""
        with self.hold_sync():
            self.count.value = f"<b>{len(self.rows)}</b> versions match{more}"
            self.table.value = rows_html(shown, metrics)
            picked = self.version.value
            choices = [(f"{r['name']} v{r['version']}", (r["name"], r["version"]))
                       for r in shown]
            self._quiet = True
            self.version.options = [("—", None), *choices]
            self.version.value = picked if picked in dict(choices).values() else None
            self._quiet = False

    def _offer_metric_sorts(self, metrics: list[str]) -> None:
        options = SORTS + [(m.removeprefix("metrics."), m) for m in metrics]
        if list(self.sort.options) != options:
            self._quiet = True
            current = self.sort.value
            self.sort.options = options
            self.sort.value = current if current in dict(options).values() else "name"
            self._quiet = False

    def show_card(self) -> None:
        picked = self.version.value
        if picked is None:
            self.card.value = ""
            return
        name, number = picked
        mv = self.attempt(lambda: self.registry.get(name, number), lambda _: "")
        if mv is not None:
            self.card.value = version_card_html(mv, self.registry.history(name, version=number))

    def snapshot_html(self) -> str:
        table = self.registry.search(self.model.value or None)
        card: str = self.card.value
        return VersionsTable(table)._repr_html_() + card


def _haystack(row: dict[str, Any]) -> str:
    tags = " ".join(f"{k}={v}" for k, v in row.get("tags") or [])
    return " ".join([row["name"], f"v{row['version']}", row["stage"], *row["aliases"],
                     row["created_by"], row["description"] or "", tags]).lower()


def sort_rows(rows: list[dict[str, Any]], column: str, *, descending: bool
              ) -> list[dict[str, Any]]:
    """Sort for display; rows lacking the column (a metric a version lacks) go last."""
    if column == "name":
        return sorted(rows, key=lambda r: (r["name"], r["version"]), reverse=descending)
    present = [r for r in rows if r.get(column) is not None]
    absent = [r for r in rows if r.get(column) is None]
    return sorted(present, key=lambda r: r[column], reverse=descending) + absent


def rows_html(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    """The table, built as one string join: 1,000 rows take a few milliseconds."""
    head = "".join(f"<th>{esc(c)}</th>" for c in (*FIXED, *(m[8:] for m in metrics)))
    body = []
    for r in rows:
        color = STAGE_COLORS.get(r["stage"], "#57606a")
        cells = [esc(r["name"]), str(r["version"]),
                 f"<span class=st style='color:{color}'>{esc(r['stage'])}</span>",
                 esc(", ".join(r["aliases"])), esc(fmt(r["created_at"])), esc(r["created_by"])]
        cells += [esc(fmt(r[m])) for m in metrics]
        body.append("<tr><td>" + "</td><td>".join(cells) + "</td></tr>")
    return (f"{STYLE}<div class=nbr-b><table><thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + "</tbody></table></div>")
