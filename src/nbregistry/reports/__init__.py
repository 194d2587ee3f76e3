"""Compliance reports: papermill templates run for a model version, exported to HTML/PDF,
recorded as ``report`` events and re-verifiable later (``reverify``).

Importing this package loads the registry; papermill and nbconvert load when a report runs.
"""

from __future__ import annotations

from .execute import ReportFailedError
from .pack import Pack, run_pack
from .reverify import ReverifyResult, reverify
from .run import Report, run_report

__all__ = ["Pack", "Report", "ReportFailedError", "ReverifyResult", "reverify", "run_pack",
           "run_report"]
