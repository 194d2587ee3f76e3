"""``reg.monitor(name)``: capture predictions and outcomes, and ask monitoring questions.

The orchestration side of monitoring. It reads what it needs from the registry through a
``Catalog`` (versions, policy, artifacts, frozen baselines), its tables through a
``TableSource`` (one Delta snapshot per table per question, pinned for reports), records
events through ``MonitoringWrites``, and hands the statistics to ``nbregistry.monitoring``.
Questions never write: a read in a report, a gate or a panel leaves the audit log as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from ..domain import validate
from ..domain.entities import Event, ModelVersion
from ..domain.errors import InvalidInputError, NotFoundError, ReadOnlyError
from ..domain.extras import require
from ..domain.monitoring_policy import DEFAULT_BANDS
from ..domain.timefmt import parse_time, parse_window, shifted
from ..monitoring.engines import resolve_engine
from ..store import MonitoringTables, MonitorTable, Snapshot, seal
from . import baselines, checks, sketches
from .capturing import Capturing
from .ports import Catalog, MonitoringWrites, Reads, TableSource
from .queries import as_time, error_stream, joined, require_rows
from .replay import ReplayResult, replay
from .results import (
    DriftResult,
    FairnessResult,
    PerformanceResult,
    drift_summary,
    fairness_summary,
    metadata,
)
from .sketching import Sketching

Task = Literal["classification", "regression"]

if TYPE_CHECKING:
    from ..domain.monitoring_policy import MonitoringPolicy


class Monitor(Capturing, Sketching):
    """Monitoring of one model: its prediction, outcome and metric tables."""

    def __init__(self, catalog: Catalog, name: str, *, tables: MonitoringTables,
                 source: TableSource, writes: MonitoringWrites | None = None,
                 engine: Any = None) -> None:
        self.name = validate.model_name(name)
        self.catalog = catalog
        self.tables = tables
        self.source = source
        self.writes = writes
        self.engine = resolve_engine(engine)  # None: DuckDB in this process
        self._con: Any = None
        self._read: dict[str, int] = {}  # the versions the last rows() read
        self.sketches = sketches.SketchStore(MonitorTable(
            tables.predictions.location, self.name, "sketches",
            cache=tables.predictions.cache))
        self._baselines: dict[int, baselines.Baseline] = {}
        self._errors: tuple[tuple[Any, ...], pa.Table] | None = None

    def __repr__(self) -> str:
        mode = "" if self.writes is not None else " (read-only)"
        return f"<Monitor {self.name} in {self.catalog.uri}{mode}>"

    @property
    def registry(self) -> Catalog:
        """The registry (or the pinned view of it) this monitor reads."""
        return self.catalog

    @property
    def policy(self) -> MonitoringPolicy:
        return self.catalog.policy.monitoring

    def version(self, version: int | str | None = None) -> ModelVersion:
        """The version meant: the one given, else production's, else the latest."""
        if version is not None:
            return self.catalog.get(self.name, version)
        try:
            return self.catalog.get(self.name, stage="production")
        except NotFoundError:
            return self.catalog.get(self.name)

    def _writer(self, what: str) -> MonitoringWrites:
        if self.writes is None:
            raise ReadOnlyError(f"this monitor of {self.name!r} reads pinned data (a report) "
                                f"and cannot {what}: use reg.monitor({self.name!r})")
        return self.writes

    # -- baselines -----------------------------------------------------------------------
    def baseline(self, version: int | str | None = None) -> dict[str, Any]:
        """The version's baseline: the frozen one (recorded by ``register`` with reference
        data, the first logged predictions, a ``check()`` or ``freeze_baseline()``), else
        computed in memory from its reference data, recording nothing."""
        return dict(self._baseline(self.version(version)).spec)

    def freeze_baseline(self, version: int | str | None = None) -> Event | None:
        """Record the version's baseline in the audit log (None: it was frozen already)."""
        writes = self._writer("freeze a baseline")
        mv = self.version(version)
        if self.catalog.frozen_baseline(self.name, mv.version) is not None:
            return None
        built = self._baseline(mv)
        event = baselines.freeze(writes, self.name, mv, built)
        self._baselines.pop(mv.version, None)
        return event

    def _freeze_quietly(self, mv: ModelVersion) -> None:
        """Freeze the baseline with a write that writes anyway, when it can be built here
        (reference data, and the ``monitoring`` extra)."""
        if (mv.reference is None or self.writes is None or not baselines.can_build()
                or self.catalog.frozen_baseline(self.name, mv.version) is not None):
            return
        self.freeze_baseline(mv.version)

    def _baseline(self, mv: ModelVersion) -> baselines.Baseline:
        # kept per version; one computed in memory is read again once someone froze it
        found = self._baselines.get(mv.version)
        if found is None or (not found.frozen and self.catalog.frozen_baseline(
                self.name, mv.version) is not None):
            found = self._baselines[mv.version] = baselines.resolve(self.catalog, self.name, mv)
        return found

    def importance(self, version: int | str | None = None) -> dict[str, float]:
        """Feature importance of the version, kept with its baseline (empty when it could
        not be computed without trusting the model's registrant)."""
        found = self.baseline(version).get("importance") or {}
        return dict(found.get("values", {}))

    # -- questions -----------------------------------------------------------------------
    def connection(self) -> Any:
        """Where the heavy pass runs: the in-process DuckDB connection, or the engine."""
        if self.engine is not None:
            return self.engine
        if self._con is None:
            require("monitoring", "duckdb")
            from ..monitoring import duck

            self._con = duck.connect()
        return self._con

    def _reads(self) -> Reads:
        # an engine of its own reads the store itself: nothing to fetch to this machine
        return self.source.reads(fetch=self.engine is None)

    def _relation(self, snapshot: Snapshot) -> str:
        """The rows of a snapshot, as the engine names them in SQL."""
        if self.engine is None:
            return snapshot.relation()
        return str(self.engine.relation(snapshot))

    def _arrow(self, query: str) -> pa.Table:
        if self.engine is None:
            table: pa.Table = self.connection().sql(query).to_arrow_table()
            return table
        return self.engine.arrow(query)

    def sql(self, query: str, **views: Any) -> pa.Table:
        """Your own question in SQL (DuckDB's dialect) over one snapshot of each table:
        ``{predictions}`` and ``{outcomes}`` in ``query`` name them; other ``{name}``s are
        the Arrow tables (or pandas frames) passed as ``name=...``. Runs on the monitor's
        engine, so the same text runs on Spark."""
        reads = self._reads()
        names = {kind: self._relation(reads.snapshot(kind)) for kind in ("predictions",
                                                                         "outcomes")}
        for name, data in views.items():
            names[name] = self._register(name, data)
        return self._arrow(query.format(**names))

    def bins(self, feature: str, version: int | str | None = None) -> pa.Table:
        """The baseline's PSI bins of a numeric feature: ``bin, lower, upper`` (null: no
        bound) and ``reference_share``, for PSI in your own SQL (see docs/monitoring.md)."""
        spec = self.baseline(version)["features"].get(feature)
        if spec is None or spec["kind"] != "numeric" or spec.get("grid") is None:
            raise InvalidInputError(f"{feature!r} is not a numeric feature of the baseline",
                                    field="feature", value=feature)
        edges, counts = spec["deciles"]["edges"], spec["deciles"]["counts"]
        total = float(sum(counts))
        return pa.table({"bin": list(range(len(counts))),
                         "lower": pa.array([None, *edges], pa.float64()),
                         "upper": pa.array([*edges, None], pa.float64()),
                         "reference_share": [c / total for c in counts]})

    def _register(self, name: str, data: Any) -> str:
        if not re.fullmatch(r"[A-Za-z_]\w{0,62}", name):
            raise InvalidInputError(f"a view name is letters, digits and _, got {name!r}",
                                    field="views", value=name)
        view = f"nbregistry_view_{name}"
        if self.engine is None:
            self.connection().register(view, pa.table(data))
        else:
            self.engine.register(view, pa.table(data))
        return view

    def has_predictions(self) -> bool:
        """Whether any prediction was logged (a report says so instead of failing)."""
        return self.source.exists("predictions")

    def rows(self, start: Any = None, end: Any = None, *,
             version: int | str | None = None, matured: bool = False,
             limit: int | None = None) -> pa.Table:
        """The logged predictions in ``[start, end)`` (of ``version``), each with its first
        recorded outcome as ``actual`` (null while it has not matured; ``matured=True``:
        only rows with a score and an outcome), oldest first, at most ``limit``."""
        reads = self._reads()
        predictions = reads.snapshot("predictions", as_time(start, "start"),
                                     as_time(end, "end"))
        if predictions.version < 0:
            return pa.table({})
        outcomes = reads.snapshot("outcomes")
        if matured:
            query = (f"SELECT * FROM {self._joined(predictions, outcomes)} "
                     "WHERE score IS NOT NULL AND actual IS NOT NULL")
        elif outcomes.version >= 0:
            query = f"SELECT * FROM {self._joined(predictions, outcomes, inner=False)} WHERE TRUE"
        else:
            query = (f"SELECT *, CAST(NULL AS DOUBLE) AS actual FROM "
                     f"{self._relation(predictions)} WHERE TRUE")
        if version is not None:
            query += f" AND version = {self.version(version).version}"
        order = " ORDER BY ts, prediction_id" + (f" LIMIT {int(limit)}" if limit else "")
        table = self._arrow(query + order)
        self._read = dict(reads.versions)
        return table

    def _newest(self, snapshot: Snapshot, *, before: datetime) -> datetime:
        """The newest ``ts`` of the rows dated before ``before`` (a row from a fast clock
        or a forged one dated in the future does not move a default period)."""
        from ..store.snapshot import sql_timestamp

        require_rows(snapshot, self.name)
        rows = self.connection().execute(
            f"SELECT epoch_us(max(ts)) FROM {self._relation(snapshot)} "
            f"WHERE ts < {sql_timestamp(before)}").fetchall()
        if not rows or rows[0][0] is None:
            raise InvalidInputError(f"{self.name!r} has logged no predictions yet",
                                    field="model")
        return shifted(EPOCH, timedelta(microseconds=int(rows[0][0])), field="end")

    def errors(self, *, limit: int = 20_000) -> pa.Table:
        """The newest ``limit`` matured predictions in the order their outcomes arrived:
        ``outcome_ts``, ``score``, ``actual`` and ``error`` (a wrong class at 0.5 for
        classifiers, the absolute error for regressors): the concept-drift detectors'
        stream. Kept per outcomes version: a watcher's tick without new outcomes reads
        nothing, and one with new outcomes joins only the newest ``limit`` of them."""
        reads = self._reads()
        predictions, outcomes = reads.snapshot("predictions"), reads.snapshot("outcomes")
        if predictions.version < 0 or outcomes.version < 0:
            return pa.table({"outcome_ts": pa.array([], pa.timestamp("us", "UTC")),
                             "error": pa.array([], pa.float64())})
        key = (outcomes.table, outcomes.version, int(limit), self.task())
        if self._errors is not None and self._errors[0] == key:
            return self._errors[1]
        found, complete = error_stream(self._arrow, self._relation(predictions),
                                       self._relation(outcomes), limit=int(limit),
                                       task=key[3])
        if not complete:   # an outcome's prediction is not logged yet: valid for this read
            self._errors = None
            return found
        self._errors = (key, found)
        return found

    def watch(self, *, every: str | None = None, short_window: str | None = None,
              ticks: int | None = None, on_tick: Any = None) -> Any:
        """Watch continuously: every ``every`` (the policy's ``tick``) sketch the new rows,
        judge the short and the policy's windows and the concept-drift detector, and record
        alert episodes (see ``watch.watcher``). Runs until SIGTERM/SIGINT (or ``ticks``)."""
        from .watcher import watch

        return watch(self, every=every, short_window=short_window, ticks=ticks,
                     on_tick=on_tick)

    def last_read(self) -> dict[str, int]:
        """The Delta version of each table the last ``rows()`` read."""
        return dict(self._read)

    def _joined(self, predictions: Snapshot, outcomes: Snapshot, *, inner: bool = True
                ) -> str:
        return joined(self._relation(predictions), self._relation(outcomes), inner=inner)

    def drift(self, start: Any = None, end: Any = None,
              version: int | str | None = None) -> DriftResult:
        """One row per feature and for the score: ``feature, psi, ks, ks_pvalue, js,
        wasserstein, chi2_pvalue, p_adjusted, status, drifted`` (and more), for the
        version's logged predictions in ``[start, end)`` against its baseline."""
        mv = self.version(version)
        reads = self._reads()
        predictions = self._predictions(reads, start, end)
        return self._drift(reads, predictions, mv, f"version = {mv.version}")

    def _predictions(self, reads: Reads, start: Any, end: Any) -> Snapshot:
        found = reads.snapshot("predictions", as_time(start, "start"), as_time(end, "end"))
        require_rows(found, self.name)
        return found

    def _drift(self, reads: Reads, predictions: Snapshot, mv: ModelVersion,
               where: str) -> DriftResult:
        from ..monitoring.drift import METADATA_KEY

        found = self._baseline(mv)
        table = self._drift_table(predictions, mv, found, where)
        if found.spec.get("importance"):
            from ..monitoring.importance import Importance, rank_drift

            table = rank_drift(table, Importance(found.spec["importance"]["method"],
                                                 found.spec["importance"]["values"]))
        return DriftResult(table, dict(reads.versions), drift_summary(table, METADATA_KEY),
                           found.info)

    def _drift_table(self, predictions: Snapshot, mv: ModelVersion,
                     found: baselines.Baseline, where: str) -> pa.Table:
        """From the sketches of the files wholly in the window plus the raw rows of the
        rest, when the baseline is frozen and DuckDB runs in this process; else raw."""
        from ..monitoring import drift as drifts

        band = self.policy.thresholds.get("psi") or DEFAULT_BANDS["psi"]
        if not self._use_sketches() or found.info.sha256 is None:
            return drifts.drift(self.connection(), self._relation(predictions), found.spec,
                                where=where, band=band)
        return sketches.drift_table(self.connection(), predictions, self._relation,
                                    found.spec, version=mv.version,
                                    baseline=found.info.sha256, store=self.sketches,
                                    band=band)

    def drift_windows(self, window: str = "1d", *, start: Any = None, end: Any = None,
                      version: int | str | None = None, progress: bool | None = None
                      ) -> DriftResult:
        """Drift per feature for each window in ``[start, end)`` (default: the last 14
        windows up to the newest prediction), all counted in one scan of one snapshot:
        ``window_start, feature, n, psi, p_adjusted, status, drifted``. Windows without
        predictions are left out. (``progress`` is accepted for compatibility: one scan
        has no steps to show.)"""
        from ..monitoring.drift import drift_by

        step = parse_window(window)
        mv = self.version(version)
        reads = self._reads()
        stop = as_time(end, "end")
        if stop is None:  # up to the newest row, but never into the future (a bad clock)
            last = self._newest(reads.snapshot("predictions"),
                                before=datetime.now(UTC) + CLOCK_SLACK)
            stop = shifted(last, timedelta(microseconds=1), field="end")
        begin = as_time(start, "start") or shifted(stop, -14 * step, field="start")
        if (stop - begin) / step > MAX_WINDOWS:
            raise InvalidInputError(f"{(stop - begin) / step:,.0f} windows of {window} from "
                                    f"{begin:%Y-%m-%d} to {stop:%Y-%m-%d}: at most "
                                    f"{MAX_WINDOWS:,}; pass a longer window or a shorter "
                                    "start/end", field="window", value=window)
        predictions = reads.snapshot("predictions", begin, stop)
        require_rows(predictions, self.name)
        found = self._baseline(mv)
        band = self.policy.thresholds.get("psi") or DEFAULT_BANDS["psi"]
        if self._use_sketches() and found.info.sha256 is not None:
            windows = sketches.windows_tables(
                self.connection(), predictions, self._relation, found.spec,
                version=mv.version, baseline=found.info.sha256, store=self.sketches,
                band=band, step=step)
        else:
            micros = timedelta(microseconds=1)
            bucket = (f"CAST(floor((epoch_us(ts) - {(begin - EPOCH) // micros}) / "
                      f"{step // micros}) AS BIGINT)")
            windows = drift_by(self.connection(), self._relation(predictions), found.spec,
                               keys=[(bucket, "window")], where=f"version = {mv.version}",
                               band=band)
        rows: list[dict[str, Any]] = []
        for (index,), table in sorted(windows.items()):
            rows += [{"window_start": begin + index * step, **r} for r in table.select(
                ["feature", "n", "psi", "p_adjusted", "status", "drifted"]).to_pylist()]
        return DriftResult(pa.Table.from_pylist(rows, schema=WINDOWS_SCHEMA),
                           dict(reads.versions), None, self._baseline(mv).info)

    def performance(self, window: str | None = "1d", *, by: Sequence[str] | None = None,
                    start: Any = None, end: Any = None,
                    version: int | str | None = None) -> PerformanceResult:
        """Metrics per window over predictions joined with their outcomes (the first outcome
        per id): accuracy, precision, recall, f1, roc_auc, log_loss, brier for classifiers;
        rmse, mae, r2 for regressors. ``version=None`` covers every version (add
        ``by=["version"]`` to split them)."""
        from ..monitoring.performance import ECE_KEY, performance

        reads = self._reads()
        predictions = self._predictions(reads, start, end)
        outcomes = reads.snapshot("outcomes")
        where = None if version is None else f"version = {self.version(version).version}"
        task = self.task(version)
        table = performance(self.connection(), self._joined(predictions, outcomes), task=task,
                            where=where, window=window, by=by)
        return PerformanceResult(table, dict(reads.versions), task, metadata(table, ECE_KEY))

    def fairness(self, group: str, favorable: Any = 1, *, reference: Any = None,
                 start: Any = None, end: Any = None,
                 version: int | str | None = None, outcome: str = "label",
                 error_rates: bool = True) -> FairnessResult:
        """Selection rate per value of ``group`` (an attribute logged with the predictions),
        the adverse impact ratio against the reference group with the four-fifths flag (the
        policy's ``air`` alert level), counts and a significance test, and error-rate
        parity when outcomes exist (``error_rates=False``: selection only, which reads the
        predictions alone, as ``check()`` does)."""
        from ..monitoring.fairness import FOUR_FIFTHS, METADATA_KEY, fairness

        reads = self._reads()
        predictions = self._predictions(reads, start, end)
        outcomes = reads.snapshot("outcomes")
        where = None if version is None else f"version = {self.version(version).version}"
        band = self.policy.thresholds.get("air")
        joined = error_rates or outcome == "actual"
        source = (self._joined(predictions, outcomes, inner=False) if joined
                  else self._relation(predictions))
        table = fairness(self.connection(), source, group=group, favorable=favorable,
                         outcome=outcome, reference=reference, where=where,
                         error_rates=None if error_rates else False,
                         floor=FOUR_FIFTHS if band is None else band.alert)
        return FairnessResult(table, dict(reads.versions), fairness_summary(table, METADATA_KEY))

    def task(self, version: int | str | None = None) -> Task:
        """"classification" or "regression", from the baseline (else classification)."""
        mv = self.version(version)
        if mv.reference is not None:
            task = self._baseline(mv).spec.get("task")
            if task == "regression":
                return "regression"
        return "classification"

    def replay(self, version: int | str, start: Any = None, end: Any = None, *,
               served: int | str | None = None, trusted: bool | Sequence[str] = False,
               ) -> ReplayResult:
        """Score the served version's logged traffic in ``[start, end)`` with ``version``
        and compare both on the same matured outcomes (DeLong for AUC, paired bootstrap for
        the rest)."""
        return replay(self, version, start, end, served=served, trusted=trusted)

    # -- writing evidence ----------------------------------------------------------------
    def seal(self) -> Event:
        """Record each monitoring table's Delta version and the hash of its newest commit in
        the audit log: rows deleted or rewritten afterwards are caught by ``verify()``."""
        return self._writer("seal tables").seal(self.name, self.seals())

    def seals(self) -> dict[str, Any]:
        return {"tables": {t.key: seal(t) for t in self.tables if t.exists()}}

    def check(self, *, now: Any = None, window: str | None = None) -> checks.CheckResult:
        """Measure the policy's window (or ``window``) ending ``now`` (drift, performance,
        fairness), decide under the policy, then append the figures to the metrics table,
        seal the tables, record an ``alert`` per breach and apply the policy's action
        (``retrain_requested`` or an automatic rollback)."""
        writes = self._writer("run a check")
        clock = datetime.now(UTC)
        end = clock if now is None else parse_time(now, field="now")
        if end > clock + CLOCK_SLACK:
            raise InvalidInputError(f"now={end.isoformat()} is in the future: a check is "
                                    "recorded for a window that has happened (pass an earlier "
                                    "now= to backfill)", field="now")
        start = end - parse_window(window or self.policy.window)
        mv = self.version()
        self._freeze_quietly(mv)
        self.sketch(mv.version, start=start, end=end)  # the window's new files, kept
        figures, notes = checks.measure(self, mv.version, start, end)
        decision = checks.decide(figures, self.policy, window=(start, end))
        if decision.alerts and self._use_sketches():
            # an alert is evidence and its action may move production: judged again from
            # the rows, so a sketch rewritten in the bucket can neither raise one nor act
            with self.from_rows():
                figures, notes = checks.measure(self, mv.version, start, end)
            decision = checks.decide(figures, self.policy, window=(start, end))
        result = checks.CheckResult(self.name, mv.version, (start, end),
                                    checks.figures_table(figures, mv.version, (start, end)),
                                    notes=notes)
        return checks.record(writes, self.tables, result, decision, self.seals())


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SLACK = timedelta(minutes=5)  # as the ledger's clock check allows
MAX_WINDOWS = 2_000
WINDOWS_SCHEMA = pa.schema([
    ("window_start", pa.timestamp("us", "UTC")), ("feature", pa.string()), ("n", pa.int64()),
    ("psi", pa.float64()), ("p_adjusted", pa.float64()), ("status", pa.string()),
    ("drifted", pa.bool_())])
