"""``mon.watch()`` / ``nbregistry watch NAME``: continuous monitoring between scheduled checks.

At each tick (the policy's ``tick``, default 30 s) the watcher sketches the prediction files
added since the last tick, measures drift over the policy's ``short_window`` (default 10
min) and its ``window`` from the sketches (so a tick costs the new rows, not the window),
measures performance and fairness over the ``window`` every ``full_every`` ticks, runs the
Page-Hinkley and ADWIN detectors over the newest matured outcomes (concept drift: a rise of
the error), and records alerts as **episodes**: one ``alert`` event when a figure enters its
alert band, one (``status = "ok"``) when it leaves, never one per tick. Whether an episode
is open is read from the audit log, so a restarted watcher does not repeat it, and the
decision to open or close is taken inside the ledger's compare-and-swap, so two watchers
never record it twice. A newly opened episode about the model applies the policy's action,
under the same rules as ``check()`` (roles, one automatic rollback per episode).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..domain.entities import Event
from ..domain.errors import InvalidInputError, NbRegistryError
from ..domain.timefmt import parse_window, ts_text
from . import checks

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import pyarrow as pa

    from .ports import MonitoringWrites, Questions

    class Watched(Questions, Protocol):
        """What the watcher uses of a ``Monitor`` (declared here: monitor.py imports this
        module, so this module does not import it)."""

        def _writer(self, what: str) -> MonitoringWrites: ...

        def sketch(self, version: int | str | None = None, *, start: Any = None,
                   end: Any = None) -> int: ...

        def errors(self, *, limit: int = 20_000) -> pa.Table: ...

        def seals(self) -> dict[str, Any]: ...

        def _use_sketches(self) -> bool: ...

        def from_rows(self) -> AbstractContextManager[None]: ...

log = logging.getLogger("nbregistry.watch")
DETECTOR_ROWS = 20_000


@dataclass
class Tick:
    """What one tick did."""

    at: datetime
    sketched: int = 0
    figures: int = 0
    opened: list[Event] = field(default_factory=list)
    closed: list[Event] = field(default_factory=list)
    actions: list[Event] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __repr__(self) -> str:
        return (f"<Tick {ts_text(self.at)}: {self.sketched} file(s) sketched, {self.figures} "
                f"figures, {len(self.opened)} opened, {len(self.closed)} closed, "
                f"{len(self.actions)} action(s), {self.seconds:.2f} s>")


class Watcher:
    """Ticks over one model's monitoring; ``run()`` until stopped (SIGTERM, SIGINT or
    ``stop()``)."""

    def __init__(self, mon: Watched, *, every: str | None = None,
                 short_window: str | None = None, full_every: int = 10) -> None:
        policy = mon.policy
        self.mon = mon
        self.every = parse_window(every or policy.tick, field="every")
        self.short = parse_window(short_window or policy.short_window, field="short_window")
        self.window = parse_window(policy.window)
        if full_every < 1:
            raise InvalidInputError("full_every must be at least 1", field="full_every")
        self.full_every = full_every
        self.ticks = 0
        self._stop = threading.Event()
        self._detected_until: datetime | None = None

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, ticks: int | None = None,
            on_tick: Callable[[Tick], None] | None = None) -> None:
        """Tick every ``every`` until stopped (or ``ticks`` times). SIGTERM and SIGINT stop
        it cleanly after the current tick when it runs in the main thread."""
        previous = self._handle_signals()
        try:
            while not self._stop.is_set() and (ticks is None or self.ticks < ticks):
                began = time.monotonic()
                try:
                    done = self.tick()
                except NbRegistryError as exc:  # a bad tick is logged; the next one retries
                    log.error("watch tick of %s failed: %s", self.mon.name, exc)
                else:
                    if on_tick is not None:
                        on_tick(done)
                self._stop.wait(max(0.0, self.every.total_seconds()
                                    - (time.monotonic() - began)))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: self._stop.set())
        return previous

    def tick(self, now: datetime | None = None) -> Tick:
        """One pass: sketch, measure, open and close episodes, act."""
        began = time.monotonic()
        now = now or datetime.now(UTC)
        self.ticks += 1
        mon, result = self.mon, Tick(now)
        writes = mon._writer("watch")
        mv = mon.version()
        result.sketched = mon.sketch(mv.version, start=now - max(self.window, self.short))
        full = self.ticks % self.full_every == 1 or self.full_every == 1
        open_now = _open_episodes(mon)
        figures, decision, breaching, notes = self._judge(mv.version, now, full)
        opening = [breaching[k] for k in set(breaching) - set(open_now)]
        if mon._use_sketches() and decision.action is not None and any(
                a["kind"] != "data_quality" for a in opening):
            # an episode that opens about the model applies the policy's action (it may move
            # production): judged again from the rows, so a rewritten sketch cannot act
            with mon.from_rows():
                figures, decision, breaching, notes = self._judge(mv.version, now, full)
        result.figures, result.notes = len(figures), notes
        for key, payload in breaching.items():
            if key not in open_now:
                event = writes.open_alert(mon.name, mv.version, {**payload,
                                                                 "episode": "open"})
                if event is not None:
                    result.opened.append(event)
        for key in _closing(open_now, breaching, figures):
            closed = writes.close_alert(mon.name, mv.version, {
                **open_now[key].payload, "status": "ok", "episode": "close",
                "window": [ts_text(now - self.window), ts_text(now)]})
            if closed is not None:
                result.closed.append(closed)
        self._act(result, decision, mv.version)
        if result.opened or result.closed:
            writes.seal(mon.name, {**mon.seals(), "check": {
                "window": [ts_text(now - self.window), ts_text(now)],
                "version": mv.version, "metrics": len(figures),
                "alerts": len(result.opened)}})
        result.seconds = time.monotonic() - began
        return result

    def _judge(self, version: int, now: datetime, full: bool
               ) -> tuple[list[checks.Figure], checks.Decision, Breaching, list[str]]:
        """The figures, the decision on them, what breaches (the detectors too), notes."""
        notes: list[str] = []
        figures = self._measure(version, now, full, notes)
        decision = checks.decide(figures, self.mon.policy, window=(now - self.window, now))
        breaching = {_key(a): a for a in decision.alerts}
        breaching.update(self._concept(now, notes))
        return figures, decision, breaching, notes

    def _measure(self, version: int, now: datetime, full: bool, notes: list[str]
                 ) -> list[checks.Figure]:
        figures = []
        for span, parts in ((self.short, ("drift",)),
                            (self.window, ("drift", "performance", "fairness") if full
                             else ("drift",))):
            found, more = checks.measure(self.mon, version, now - span, now, parts=parts)
            figures += found
            notes += more
        return figures

    def _concept(self, now: datetime, notes: list[str]) -> dict[tuple[str, str | None],
                                                                dict[str, Any]]:
        """Page-Hinkley and ADWIN over the newest matured outcomes' errors: an episode per
        detector while it signals a rise of the error within the short window."""
        from ..monitoring.concept import adwin, page_hinkley

        stream = self.mon.errors(limit=DETECTOR_ROWS)
        if stream.num_rows < 100:
            return {}
        errors = stream["error"].to_numpy()
        times = stream["outcome_ts"].to_pylist()
        out: dict[tuple[str, str | None], dict[str, Any]] = {}
        for found in (page_hinkley(errors), adwin(errors)):
            # Page-Hinkley watches a rise only; ADWIN cuts on any change: a fall is no alarm
            recent = [i for i in found.drifts if times[i] >= now - self.short
                      and _rose(errors, i)]
            if not recent:
                continue
            notes.append(f"{found.method} signalled at outcome {ts_text(times[recent[-1]])}")
            out[(found.method, None)] = {
                "kind": "concept_drift", "metric": found.method, "feature": None,
                "value": float(errors[recent[-1]:].mean()), "status": "alert",
                "window": [ts_text(now - self.short), ts_text(now)], "action": None,
                "band": {"warn": 0.0, "alert": 0.0, "direction": "above"}}
        return out

    def _act(self, result: Tick, decision: checks.Decision, version: int) -> None:
        about_model = [e for e in result.opened if e.payload["kind"] != "data_quality"]
        if not about_model or decision.action is None:
            return
        summary = checks.CheckResult(self.mon.name, version, (result.at, result.at),
                                     checks.figures_table([], version,
                                                          (result.at, result.at)),
                                     alerts=about_model)
        writes = self.mon._writer("act")
        result.actions.append(checks.act(writes, summary, decision))
        result.notes += summary.notes


DETECTORS = frozenset({"page_hinkley", "adwin"})
RECENT = 200   # errors that tell whether a change a detector found was a rise


def _rose(errors: Any, at: int) -> bool:
    """Whether the errors up to ``at`` (the last ``RECENT``) are higher than before them."""
    begin = max(0, at + 1 - RECENT)
    return begin > 0 and float(errors[begin:at + 1].mean()) > float(errors[:begin].mean())


Breaching = dict[tuple[str, str | None], dict[str, Any]]


def _closing(open_now: dict[tuple[str, str | None], Event], breaching: Breaching,
             figures: list[checks.Figure]) -> list[tuple[str, str | None]]:
    """The open episodes whose figure was measured (or whose detector ran) and no longer
    breaches."""
    measured = {(f.metric, checks.label(f.feature)) for f in figures}
    return [key for key in open_now
            if key not in breaching and (key in measured or key[0] in DETECTORS)]


def _key(payload: dict[str, Any]) -> tuple[str, str | None]:
    return str(payload["metric"]), payload.get("feature")


def _open_episodes(mon: Watched) -> dict[tuple[str, str | None], Event]:
    """The newest alert per (metric, feature) whose status is still ``alert``."""
    latest: dict[tuple[str, str | None], Event] = {}
    for event in mon.catalog.alerts(mon.name):
        latest[_key(event.payload)] = event
    return {k: e for k, e in latest.items() if e.payload.get("status") == "alert"}


def watch(mon: Watched, *, every: str | None = None, short_window: str | None = None,
          ticks: int | None = None, on_tick: Callable[[Tick], None] | None = None) -> Watcher:
    watcher = Watcher(mon, every=every, short_window=short_window)
    watcher.run(ticks=ticks, on_tick=on_tick)
    return watcher


