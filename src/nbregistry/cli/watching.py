"""``nbregistry watch NAME``: a long-running process (a systemd service, a Kubernetes
sidecar) that watches a model between scheduled checks and records alert episodes; it stops
cleanly on SIGTERM or SIGINT after the tick it is in."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..domain.timefmt import ts_text
from .options import OK, add_writer, command, open_existing
from .tables import clean


def add(sub: Any) -> None:
    watch = command(sub, "watch", "watch a model continuously: every tick sketch the new "
                    "predictions, judge the short and the policy's windows and the "
                    "concept-drift detector, record alert episodes (stops on SIGTERM)",
                    "nbregistry watch credit_risk --uri s3://bank-models/registry",
                    "nbregistry watch credit_risk --every 10s --short-window 5m")
    watch.add_argument("model")
    watch.add_argument("--every", default=None, metavar="LENGTH",
                       help="how often to look (default: the policy's tick, 30s)")
    watch.add_argument("--short-window", default=None, metavar="LENGTH",
                       help="the short window judged besides the policy's (default 10m)")
    watch.add_argument("--ticks", type=int, default=None,
                       help="stop after this many ticks (default: run until stopped)")
    add_writer(watch, "who the watcher records as")
    watch.set_defaults(run=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    mon = open_existing(args).monitor(args.model)
    print(f"watching {args.model} in {mon.catalog.uri}: Ctrl-C or SIGTERM stops",
          flush=True)
    mon.watch(every=args.every, short_window=args.short_window, ticks=args.ticks,
              on_tick=_report)
    print("stopped", flush=True)
    return OK


def _report(tick: Any) -> None:
    lines = [f"{ts_text(tick.at)[:19]} {tick.sketched} file(s) sketched, {tick.figures} "
             f"figures, {tick.seconds:.2f} s"]
    for event in tick.opened:
        p = event.payload
        lines.append(f"  ALERT {p['kind']} {p['metric']} {p['feature'] or ''} = "
                     f"{p['value']:.4g} (event {event.seq})")
    for event in tick.closed:
        p = event.payload
        lines.append(f"  cleared {p['metric']} {p['feature'] or ''} (event {event.seq})")
    lines += [f"  action: {e.action} (event {e.seq})" for e in tick.actions]
    print("\n".join(clean(line) for line in lines), file=sys.stdout, flush=True)
