"""What every panel shares: the registry it acts on, a message line, a static snapshot."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets
from traitlets import Bool, Unicode

from ...domain.errors import NbRegistryError
from ...domain.html import FONT, MUTED, esc, message_html
from ..display import describe_error

if TYPE_CHECKING:
    from ...registry import RegistryView

T = TypeVar("T")
# ipywidgets gives HTML widgets the 28 px line height of a form row, which spreads tables
# apart; a hidden <style> scoped to our panels keeps them dense (no front-end build needed).
PANEL_STYLE = ("<style>.nbr-panel .widget-html-content{line-height:1.35}"
               ".nbr-panel .widget-html-content table{margin:2px 0}</style>")


class Panel(widgets.VBox):  # type: ignore[misc]
    """A VBox bound to one registry. ``status``/``failed`` mirror the last outcome as plain
    traits so scripts and headless tests can read what the user saw."""

    status = Unicode("", help="plain text of the last outcome shown in the panel")
    failed = Bool(False, help="whether the last action was refused or failed")
    busy = Bool(False, help="whether an action is running (its buttons are disabled)")

    def __init__(self, registry: RegistryView, children: Sequence[widgets.Widget],
                 **kwargs: Any) -> None:
        self.registry = registry
        self.message = widgets.HTML()
        style = widgets.HTML(PANEL_STYLE, layout={"display": "none"})
        super().__init__(children=[style, *children, self.message], **kwargs)
        self.add_class("nbr-panel")

    def attempt(self, action: Callable[[], T],
                done: Callable[[T], str] | None = None) -> T | None:
        """Run one registry call; show its outcome (``done``; None leaves the message to the
        caller), or its refusal, as the panel message."""
        try:
            result = action()
        except NbRegistryError as exc:
            self.say(describe_error(exc), ok=False)
            return None
        if done is not None:
            self.say(done(result), ok=True)
        return result

    @contextmanager
    def working(self, text: str, buttons: Sequence[widgets.Button]) -> Iterator[None]:
        """While one action runs: its buttons disabled, a spinner on the first and ``text``
        as the message, so nobody clicks twice or reads a half-updated panel. The action
        replaces the message with its outcome (else the spinner line is cleared)."""
        saved = [(b, b.icon, b.disabled) for b in buttons]
        spinner = (f"<div style='{FONT};color:{MUTED};padding:4px 8px'>"
                   f"<i class='fa fa-spinner fa-spin'></i> {esc(text)}</div>")
        self.busy = True
        for button in buttons:
            button.disabled = True
        buttons[0].icon = "spinner spin"  # the front end draws fa-spinner fa-spin
        self.message.value = spinner
        try:
            yield
        finally:
            for button, icon, disabled in saved:
                button.icon, button.disabled = icon, disabled
            if self.message.value == spinner:
                self.message.value = ""
            self.busy = False

    def say(self, text: str, *, ok: bool) -> None:
        self.status, self.failed = text, not ok
        self.message.value = message_html(text, ok=ok) if text else ""

    def watch(self, interval: float, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` (in a daemon thread) whenever the registry's head moves, i.e.
        another notebook or user wrote; stops when the panel is closed. ipywidgets trait
        updates from a thread are sent on the kernel's thread-safe IOPub channel."""
        self._stop = threading.Event()
        seen = self.registry.head

        def loop() -> None:
            nonlocal seen
            while not self._stop.wait(interval):
                try:
                    head = self.registry.head
                except NbRegistryError:
                    continue
                if head != seen:
                    seen = head
                    on_change()

        threading.Thread(target=loop, name=f"nbregistry-watch-{id(self)}", daemon=True).start()

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        super().close()

    def reread(self) -> None:
        """Fold in what other users committed since (a view of the past never changes)."""
        refresh = getattr(type(self.registry), "refresh", None)
        if refresh is not None:
            refresh(self.registry)

    def snapshot_html(self) -> str:
        """Static HTML of what the panel shows, for saved notebooks opened without a kernel
        (nbconvert, GitHub); JupyterLab prefers the live widget view."""
        return ""

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle: dict[str, Any] | None = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/html"] = self.snapshot_html() + self.message.value
        return bundle
