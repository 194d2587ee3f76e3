"""Monitoring orchestration: ``Monitor`` (capture and questions), ``check()`` (measure,
decide, record), challenger replay and the promotion gates measured on monitoring data.

It depends on the rest of nbregistry only through the protocols in ``watch.ports``.
"""

from .checks import CheckResult
from .monitor import Monitor
from .replay import ReplayResult
from .results import DriftResult, FairnessResult, PerformanceResult, TableResult
from .sources import LiveSource, PinnedSource

__all__ = ["CheckResult", "DriftResult", "FairnessResult", "LiveSource", "Monitor",
           "PerformanceResult", "PinnedSource", "ReplayResult", "TableResult"]
