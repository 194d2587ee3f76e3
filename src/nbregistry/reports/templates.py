"""Where the report templates are: the installed wheel's ``nbregistry/templates`` or the
source tree's ``templates/``; a path to any ``.ipynb`` with a ``parameters`` cell works too."""

from __future__ import annotations

import os
from pathlib import Path

from ..domain.errors import NotFoundError
from ..registry.reporting import shipped_dir

TEMPLATES = ("validation", "monitoring", "fair_lending", "sox_change")


def template_dir() -> Path:
    """The folder of the shipped templates (wheel first, then the source checkout)."""
    found = shipped_dir()
    if found is not None:
        return found
    raise NotFoundError("the report templates are not installed (no nbregistry/templates "
                        "folder): reinstall nbregistry, or pass the path of an .ipynb")


def available() -> list[str]:
    """Names of the shipped templates."""
    return sorted(p.stem for p in template_dir().glob("*.ipynb"))


def template_path(template: str | os.PathLike[str]) -> Path:
    """A shipped template by name (``"validation"``) or a notebook by path."""
    text = os.fspath(template)
    if text.endswith(".ipynb"):
        path = Path(text)
        if not path.is_file():
            raise NotFoundError(f"no report template at {text}", ref=text)
        return path
    path = template_dir() / f"{text}.ipynb"
    if not path.is_file():
        raise NotFoundError(f"no report template {text!r}; the templates are: "
                            f"{', '.join(available())} (or pass the path of an .ipynb)",
                            ref=text)
    return path


def template_name(template: str | os.PathLike[str]) -> str:
    return Path(os.fspath(template)).stem
