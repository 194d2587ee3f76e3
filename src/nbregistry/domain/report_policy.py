"""The policy's ``[reports]`` and ``[fair_lending]`` sections.

```toml
[reports]
roles = ["validator", "risk_officer", "admin"]   # who may record a report (default: anyone
                                                # holding a role the policy names)
[reports.templates]                             # custom templates an admin approved, by the
quarterly_review = "3f5a…64 hex digits"         # sha256 of their .ipynb (shipped ones count)

[fair_lending]
control = { sex = "M", race = "White", age = "<62" }   # the control group of each basis
```

A report event counts as evidence (for a ``reports = [...]`` gate, for the SOX report and
for ``nbr.reverify``, which runs only such templates) when its template's sha256 is a
shipped template's or one listed here, and its recorder held a reporting role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The usual control groups under ECOA / Reg B testing: men, non-Hispanic White applicants,
# applicants under 62 (the age from which Reg B treats an applicant as elderly).
DEFAULT_CONTROL = {"sex": "M", "race": "White", "age": "<62"}
# ECOA / Reg B's prohibited bases (12 CFR 1002.2(z)); "public assistance" is receipt of
# income from a public assistance program.
PROHIBITED_BASES = ("race", "color", "religion", "national_origin", "sex", "marital_status",
                    "age", "public_assistance")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class ReportsPolicy:
    """Who may record a report (``None``: anyone holding a role) and the custom templates
    an admin registered (name -> sha256 of the .ipynb)."""

    roles: tuple[str, ...] | None = None
    templates: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FairLendingPolicy:
    """The control group of each basis (``sex``, ``race``, ``age``, ...)."""

    control: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CONTROL))


def parse_reports(body: Any, roles: tuple[str, ...], errors: list[str],
                  unknown: list[str]) -> ReportsPolicy:
    if not isinstance(body, dict):
        errors.append("[reports] must be a table")
        return ReportsPolicy()
    unknown += [f"reports.{k}" for k in sorted(set(body) - {"roles", "templates"})]
    allowed: tuple[str, ...] | None = None
    if "roles" in body:
        value = body["roles"]
        if not isinstance(value, list) or not value or not all(
                isinstance(r, str) and r for r in value):
            errors.append(f"reports.roles must be a non-empty list of roles, got {value!r}")
        else:
            allowed = tuple(value)
            errors += [f"reports.roles names unknown role {r!r}" for r in allowed
                       if r not in roles]
    templates = body.get("templates", {})
    if not isinstance(templates, dict):
        errors.append("[reports.templates] must map a template's name to its sha256")
        templates = {}
    for name, digest in templates.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            errors.append(f"reports.templates.{name} must be the 64 hex digits of the "
                          f"template's sha256 (sha256sum template.ipynb), got {digest!r}")
    return ReportsPolicy(allowed, {str(k): str(v) for k, v in templates.items()})


def parse_fair_lending(body: Any, errors: list[str], unknown: list[str]
                       ) -> FairLendingPolicy:
    if not isinstance(body, dict):
        errors.append("[fair_lending] must be a table")
        return FairLendingPolicy()
    unknown += [f"fair_lending.{k}" for k in sorted(set(body) - {"control"})]
    control = body.get("control", DEFAULT_CONTROL)
    if not isinstance(control, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in control.items()):
        errors.append("fair_lending.control must map each basis to its control group, e.g. "
                      f"{DEFAULT_CONTROL}, got {control!r}")
        return FairLendingPolicy()
    return FairLendingPolicy(dict(control))
