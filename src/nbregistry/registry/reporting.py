"""Which report runs count as evidence: the rules the writer (``record_report``), the fold,
the ``reports = [...]`` gates, the SOX report and ``nbr.reverify`` share.

A runner's mark cannot be secret inside a process that anyone may drive through the Python
API, so a report counts for what can be checked: its recorder held a reporting role when
it was recorded, its template is a known one (shipped with nbregistry, or registered by an
admin in the policy, by sha256), and its outputs are in the artifact store. Whether its
figures follow from the data is what ``nbr.reverify`` re-runs to show.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from ..domain.errors import PolicyViolationError
from ..domain.policy import Policy


def shipped_dir() -> Path | None:
    """The folder of the shipped templates: the wheel's ``nbregistry/templates`` or the
    source checkout's ``templates/``."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "templates", package.parents[1] / "templates"):
        if candidate.is_dir() and any(candidate.glob("*.ipynb")):
            return candidate
    return None


@functools.cache
def shipped_templates() -> dict[str, str]:
    """sha256 of each shipped template's ``.ipynb`` -> its name (read once a process)."""
    folder = shipped_dir()
    if folder is None:
        return {}
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p.stem
            for p in sorted(folder.glob("*.ipynb"))}


@functools.cache
def past_templates() -> dict[str, str]:
    """sha256 -> name of every version of the shipped templates this project has released
    (``templates/HISTORY.json``): a report recorded before an upgrade changed its template
    still counts as made by a reviewed template."""
    folder = shipped_dir()
    history = folder / "HISTORY.json" if folder is not None else None
    if history is None or not history.is_file():
        return {}
    found: dict[str, str] = json.loads(history.read_text())
    return found


def known_template(policy: Policy, sha256: str | None) -> str | None:
    """The name of the template with this sha256: shipped now or in an earlier release, or
    registered in the policy."""
    if not sha256:
        return None
    shipped = shipped_templates().get(sha256) or past_templates().get(sha256)
    if shipped is not None:
        return shipped
    return next((n for n, s in policy.reports.templates.items() if s == sha256), None)


def may_record(policy: Policy, roles: set[str]) -> bool:
    """Whether a user holding ``roles`` may record a report under ``policy``."""
    allowed = policy.reports.roles
    return bool(roles & set(allowed)) if allowed is not None else bool(roles)


def check_recorder(policy: Policy, user: str, roles: set[str]) -> None:
    if not may_record(policy, roles):
        needed = (", ".join(policy.reports.roles) if policy.reports.roles is not None
                  else "any role the policy names")
        raise PolicyViolationError(
            f"{user!r} may not record a report: it needs {needed} ([reports] roles in the "
            f"policy); an admin can grant one with reg.grant_role({user!r}, ...)",
            rule="report_role")


def check_template(policy: Policy, template: str, sha256: str | None) -> str:
    """The known template's name, or a refusal saying how an admin registers it."""
    name = known_template(policy, sha256)
    if name is None:
        raise PolicyViolationError(
            f"the report template {template!r} (sha256 {sha256 or 'not given'}) is neither "
            "shipped with this nbregistry nor registered in the policy: an admin registers "
            f"a reviewed template with [reports.templates] {Path(template).stem} = "
            '"<its sha256>"', rule="report_template")
    return name
