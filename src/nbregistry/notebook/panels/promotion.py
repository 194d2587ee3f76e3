"""Promotion panel: request a stage, see the policy's gates, approve or reject.

The panel acts as the registry's user (``%registry --user bob``); the registry decides who
may do what, and its refusals (self-approval, missing role, failed gate) are shown as
messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from ...domain.errors import NbRegistryError, ReadOnlyError
from ...domain.html import FONT, badge, esc, section
from ..display import describe_error, gates_html
from .base import Panel

if TYPE_CHECKING:
    from ...domain.entities import PromotionRequest
    from ...registry import Registry


class PromotionPanel(Panel):
    registry: Registry  # requests and approvals write

    def __init__(self, registry: Registry, name: str, version: int, *,
                 stage: str | None = None, auto_refresh: float | None = None) -> None:
        """``auto_refresh``: seconds between checks for other users' changes (re-rendering
        the panel when the registry moved); None leaves it to the Refresh button."""
        from ...registry import Registry

        if not isinstance(registry, Registry):
            raise ReadOnlyError("the promotion panel writes requests and approvals: open it "
                                "on the registry from open_registry(), not on a read-only "
                                "as_of view")
        self.name, self.version = name, int(version)
        self.request: PromotionRequest | None = None
        self.header = widgets.HTML()
        self.stage = widgets.Dropdown(description="to stage")
        self.emergency = widgets.Checkbox(description="emergency: promote now, approve later",
                                          style={"description_width": "initial"})
        self.reason = widgets.Textarea(description="reason", layout={"width": "60%"},
                                       placeholder="Why should this version be promoted?")
        self.request_button = widgets.Button(description="Request promotion", icon="arrow-up",
                                             button_style="primary", layout={"width": "auto"})
        self.gates = widgets.HTML()
        self.request_view = widgets.HTML()
        self.comment = widgets.Textarea(description="comment", layout={"width": "60%"},
                                        placeholder="What you checked, or why you reject")
        self.approve_button = widgets.Button(description="Approve", button_style="success",
                                             icon="check")
        self.reject_button = widgets.Button(description="Reject", button_style="danger",
                                            icon="times")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        super().__init__(registry, [
            self.header, widgets.HTML(section("Request", "")),
            widgets.HBox([self.stage, self.emergency]), self.reason,
            widgets.HBox([self.request_button]),  # an HBox keeps the button its own width
            widgets.HTML(section("Gates", "")), self.gates,
            widgets.HTML(section("Approval", "")), self.request_view, self.comment,
            widgets.HBox([self.approve_button, self.reject_button, self.refresh_button])])
        self.stage.options = list(registry.policy.stages)
        self.stage.value = stage if stage in self.stage.options else self._next_stage()
        self.stage.observe(lambda _: self.render(), names="value")
        self.request_button.on_click(lambda _: self.request_promotion())
        self.approve_button.on_click(lambda _: self.approve())
        self.reject_button.on_click(lambda _: self.reject())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.render()
        if auto_refresh:
            self.watch(auto_refresh, self.render)

    def __repr__(self) -> str:
        return f"<PromotionPanel {self.name} v{self.version} as {self.registry.user}>"

    def _next_stage(self) -> str:
        """Default to the first stage the policy lets this version move to."""
        policy = self.registry.policy
        current = self.registry.get(self.name, self.version).stage
        allowed = policy.transitions.get(current, ())
        return next(iter(allowed), policy.stages[0])

    # -- actions: one registry call each ----------------------------------------------
    def request_promotion(self) -> None:
        reg, to = self.registry, self.stage.value
        self.attempt(lambda: reg.request_promotion(self.name, self.version, to,
                                                   comment=self.reason.value,
                                                   emergency=self.emergency.value),
                     lambda r: f"Requested {to} for v{self.version}: {r.status}")
        self.render()

    def approve(self) -> None:
        to = self.request.to if self.request else None
        self.attempt(lambda: self.registry.approve(self.name, self.version, to=to,
                                                   comment=self.comment.value),
                     lambda r: f"Approved by {self.registry.user}: request {r.status} "
                               f"({len(r.approvals)}/{r.required} approvals)")
        self.render()

    def reject(self) -> None:
        to = self.request.to if self.request else None
        self.attempt(lambda: self.registry.reject(self.name, self.version, to=to,
                                                  comment=self.comment.value),
                     lambda r: f"Rejected by {self.registry.user}: {r.comment or 'see comment'}")
        self.render()

    def refresh(self) -> None:
        self.reread()
        self.render()
        self.say("Re-read the registry.", ok=True)

    # -- display ----------------------------------------------------------------------
    def _current_request(self) -> PromotionRequest | None:
        """The open request for this version (to the chosen stage first), else its latest."""
        mine = [r for r in self.registry.requests(self.name, status="all")
                if r.version == self.version]
        live = [r for r in mine if r.status == "open"]
        chosen = [r for r in live if r.to == self.stage.value] or live or mine[-1:]
        return chosen[0] if chosen else None

    def render(self) -> None:
        """Re-read what the panel shows; keeps the last action's message unless this fails."""
        reg = self.registry
        try:
            mv = reg.get(self.name, self.version)
            self.request = self._current_request()
            gates = reg.check_gates(self.name, self.version, self.stage.value)
        except NbRegistryError as exc:
            self.say(describe_error(exc), ok=False)
            return
        roles = ", ".join(reg.roles().get(reg.user, [])) or "no roles"
        with self.hold_sync():
            self.header.value = (
                f"<div style='{FONT}'><b style='font-size:14px'>{esc(self.name)}</b> "
                f"v{self.version} {badge(mv.stage)} — acting as <b>{esc(reg.user)}</b> "
                f"({esc(roles)})</div>")
            self.gates.value = gates_html(gates)
            self.request_view.value = (self.request._repr_html_() if self.request else
                                       f"<i style='{FONT}'>no promotion request yet</i>")

    def snapshot_html(self) -> str:
        shown: str = self.header.value + self.gates.value + self.request_view.value
        return shown
