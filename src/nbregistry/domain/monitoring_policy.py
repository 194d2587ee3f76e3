"""The policy's ``[monitoring]`` section: windows, bands, actions, promotion-gate settings.

```toml
[monitoring]
window = "7d"                 # what check() evaluates, ending now
maturity_days = 30            # an outcome is due this long after its prediction
min_rows = 200                # fewer rows in a window: "insufficient", never an alert
on_alert = "retrain"          # "none" | "retrain" | "rollback" (the production version)
action_roles = ["admin", "risk_officer"]  # who may run a check that rolls production back
max_missing = 0.5             # a feature missing in more of a window's rows: data quality
short_window = "10m"          # the watcher (mon.watch) also judges the last 10 minutes
tick = "30s"                  # and looks every 30 seconds
fairness_group = "sex"        # check() and the fairness gate look at this attribute
fairness_favorable = 0        # the favorable predicted label (0 = no default)
replay_margin = 0.01          # the replay gate: the candidate's AUC may trail by this much

[monitoring.thresholds]       # warn / alert bands; direction "above" (default) or "below"
psi = { warn = 0.1, alert = 0.25 }
roc_auc = { warn = 0.70, alert = 0.65, direction = "below" }
```

Gates that use monitoring are listed per stage: ``[stages.production] monitoring =
["no_drift_alert", "replay", "fairness"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .canonical import is_finite_number, shown
from .errors import InvalidInputError
from .timefmt import parse_window

Direction = Literal["above", "below"]
Action = Literal["none", "retrain", "rollback"]
MONITORING_GATES = ("no_drift_alert", "replay", "fairness")
MAX_DAYS = 36_500  # longer durations mean nothing here, and time arithmetic on them overflows


@dataclass(frozen=True, slots=True)
class Band:
    """Warn and alert thresholds for one metric; ``below`` means small values are bad."""

    warn: float
    alert: float
    direction: Direction = "above"

    def status(self, value: float | None) -> str:
        """``ok``, ``warn`` or ``alert`` (``unknown`` for no value). An "above" band alerts
        at its threshold and over it (PSI 0.25 is an alert); a "below" band alerts strictly
        under it (an AIR of exactly 0.8 passes the four-fifths rule)."""
        if value is None or value != value:
            return "unknown"
        def worse(threshold: float) -> bool:
            return value >= threshold if self.direction == "above" else value < threshold

        if worse(self.alert):
            return "alert"
        return "warn" if worse(self.warn) else "ok"


DEFAULT_BANDS = {
    "psi": Band(0.1, 0.25),
    "dataset_drift": Band(0.3, 0.5),
    "air": Band(0.9, 0.8, "below"),
}


@dataclass(frozen=True, slots=True)
class MonitoringPolicy:
    window: str = "7d"
    maturity_days: float = 30.0
    min_rows: int = 200
    on_alert: Action = "none"
    fairness_group: str | None = None
    fairness_favorable: Any = 1
    replay_margin: float = 0.01
    thresholds: dict[str, Band] = field(default_factory=lambda: dict(DEFAULT_BANDS))
    action_roles: tuple[str, ...] = ("admin", "risk_officer")
    max_missing: float = 0.5
    short_window: str = "10m"     # the watcher's second, short window
    tick: str = "30s"             # how often the watcher looks


def parse_monitoring(body: Any, errors: list[str], unknown: list[str]) -> MonitoringPolicy:
    if not isinstance(body, dict):
        errors.append("[monitoring] must be a table")
        return MonitoringPolicy()
    known = {"window", "maturity_days", "min_rows", "on_alert", "fairness_group",
             "fairness_favorable", "replay_margin", "thresholds", "action_roles", "max_missing",
             "short_window", "tick"}
    unknown += [f"monitoring.{k}" for k in sorted(set(body) - known)]
    window = body.get("window", "7d")
    try:
        parse_window(window, field="monitoring.window")
    except InvalidInputError as exc:
        errors.append(f"monitoring.window: {exc}")
        window = "7d"
    numbers = {k: body.get(k, default) for k, default in
               (("maturity_days", 30.0), ("min_rows", 200), ("replay_margin", 0.01))}
    for key, value in numbers.items():
        if not is_finite_number(value) or value < 0:
            errors.append(f"monitoring.{key} must be a finite number >= 0, got {shown(value)}")
            numbers[key] = MonitoringPolicy.__dataclass_fields__[key].default
    if numbers["maturity_days"] > MAX_DAYS:
        errors.append(f"monitoring.maturity_days must be at most {MAX_DAYS:,} (a century), got "
                      f"{shown(numbers['maturity_days'])}")
        numbers["maturity_days"] = MAX_DAYS
    action = body.get("on_alert", "none")
    if action not in ("none", "retrain", "rollback"):
        errors.append(f"monitoring.on_alert must be none, retrain or rollback, got {action!r}")
        action = "none"
    group = body.get("fairness_group")
    if group is not None and (not isinstance(group, str) or not group):
        errors.append("monitoring.fairness_group must be a column name")
    roles = body.get("action_roles", ["admin", "risk_officer"])
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        errors.append("monitoring.action_roles must be a list of role names")
        roles = ["admin"]
    missing = body.get("max_missing", 0.5)
    if isinstance(missing, bool) or not isinstance(missing, int | float) or not 0 < missing <= 1:
        errors.append(f"monitoring.max_missing must be a share in (0, 1], got {missing!r}")
        missing = 0.5
    watching = {key: body.get(key, default) for key, default in
                (("short_window", "10m"), ("tick", "30s"))}
    for key, value in list(watching.items()):
        try:
            parse_window(value, field=f"monitoring.{key}")
        except InvalidInputError as exc:
            errors.append(f"monitoring.{key}: {exc}")
            watching[key] = "10m" if key == "short_window" else "30s"
    return MonitoringPolicy(window, float(numbers["maturity_days"]), int(numbers["min_rows"]),
                            action, group, body.get("fairness_favorable", 1),
                            float(numbers["replay_margin"]),
                            {**DEFAULT_BANDS, **_bands(body.get("thresholds", {}), errors)},
                            tuple(roles), float(missing), watching["short_window"],
                            watching["tick"])


def _bands(body: Any, errors: list[str]) -> dict[str, Band]:
    if not isinstance(body, dict):
        errors.append("monitoring.thresholds must be a table of {warn, alert[, direction]}")
        return {}
    out = {}
    for metric, spec in body.items():
        where = f"monitoring.thresholds.{metric}"
        if not isinstance(spec, dict) or not {"warn", "alert"} <= set(spec):
            errors.append(f"{where} needs warn and alert, e.g. {{ warn = 0.1, alert = 0.25 }}")
            continue
        direction = spec.get("direction", "above")
        warn, alert = spec["warn"], spec["alert"]
        if direction not in ("above", "below"):
            errors.append(f"{where}.direction must be above or below")
        elif not all(is_finite_number(v) for v in (warn, alert)):
            errors.append(f"{where}: warn and alert must be finite numbers")
        elif (direction == "above" and warn > alert) or (direction == "below" and warn < alert):
            errors.append(f"{where}: warn must come before alert ({direction}: warn "
                          f"{'<=' if direction == 'above' else '>='} alert)")
        else:
            out[metric] = Band(float(warn), float(alert), direction)
    return out
