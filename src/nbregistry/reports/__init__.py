"""Compliance reports: papermill templates run for a model version, exported to HTML/PDF,
recorded as ``report`` events and re-verifiable later (``reverify``).

This package loads papermill, nbconvert and the registry on first use of a function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .execute import ReportFailedError
    from .pack import Pack, run_pack
    from .reverify import ReverifyResult, reverify
    from .run import Report, run_report

__all__ = ["Pack", "Report", "ReportFailedError", "ReverifyResult", "reverify", "run_pack",
           "run_report"]

_WHERE = {"run_report": "run", "Report": "run", "reverify": "reverify",
          "ReverifyResult": "reverify", "run_pack": "pack", "Pack": "pack",
          "ReportFailedError": "execute"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        from ..domain.extras import require

        require("reports", "papermill")
        module = importlib.import_module(f".{_WHERE[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nbregistry.reports' has no attribute {name!r}")
