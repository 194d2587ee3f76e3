"""``reg.monitor(name)``: capture predictions and outcomes, and ask monitoring questions.

The use-case side of monitoring: it knows the model's versions, feature schemas and frozen
baselines (from the registry) and where the tables are (the store), and hands the
statistics to ``nbregistry.monitoring``. Every question reads exactly one Delta snapshot of
each table it uses; which versions it read is kept on the result (``.schema.metadata``) so
a report can pin them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..domain import validate
from ..domain.canonical import canonical_json
from ..domain.entities import Event, ModelVersion
from ..domain.errors import InvalidInputError, NotFoundError
from ..domain.extras import require
from ..domain.timefmt import parse_time, shifted
from ..monitoring import capture
from ..monitoring.buffer import PredictionBuffer
from ..store import Snapshot, monitoring_tables, seal
from . import reference
from .state import RegistryState

if TYPE_CHECKING:
    from ..domain.monitoring_policy import MonitoringPolicy
    from .registry import Registry
    from .replay import ReplayResult


class Monitor:
    """Monitoring of one model: its prediction, outcome and metric tables."""

    def __init__(self, registry: Registry, name: str) -> None:
        self.name = validate.model_name(name)
        registry.get(self.name)  # an unknown model is a NotFoundError now, not later
        self.registry = registry
        self.tables = monitoring_tables(registry._location, self.name)
        self._con: Any = None

    def __repr__(self) -> str:
        return f"<Monitor {self.name} in {self.registry.uri}>"

    @property
    def policy(self) -> MonitoringPolicy:
        return self.registry.policy.monitoring

    def version(self, version: int | str | None = None) -> ModelVersion:
        """The version meant: the one given, else production's, else the latest."""
        if version is not None:
            return self.registry.get(self.name, version)
        try:
            return self.registry.get(self.name, stage="production")
        except NotFoundError:
            return self.registry.get(self.name)

    # -- capture -------------------------------------------------------------------------
    def log_predictions(self, features: Any, predictions: Any, *, ids: Any = None,
                        ts: Any = None, version: int | str | None = None,
                        attributes: Any = None, labels: Any = None,
                        positive: int | None = None) -> capture.PredictionReceipt:
        """Append scored rows to the prediction log (pandas, polars or Arrow).

        Columns are checked against the version's feature schema (recorded at register): a
        missing or mistyped column is an ``InvalidInputError`` naming it and nothing is
        written. Columns that are not features are not logged (the receipt lists them)
        unless named in ``attributes`` (e.g. a segment or a protected group). ``predictions``
        is a 1-D array of scores (or labels), or ``predict_proba`` output (the positive
        column is kept as ``score``, the arg-max as ``label``). ``ids`` default to
        time-ordered unique ids, ``ts`` to now (UTC), ``version`` to production's.
        """
        mv = self.version(version)
        return capture.log_predictions(
            self.tables.predictions, features, predictions, schema=mv.features or None,
            version=mv.version, ids=ids, ts=ts, attributes=attributes, labels=labels,
            positive=positive)

    def log_outcomes(self, ids: Any, actuals: Any, *, ts: Any = None
                     ) -> capture.OutcomeReceipt:
        """Record actual outcomes, joined to predictions by id (labels arrive late). Unknown
        ids are written and counted; an id already resolved is not written again and is
        counted as a duplicate: the receipt says how many of each."""
        if not self.tables.predictions.exists():
            raise InvalidInputError(f"{self.name!r} has logged no predictions yet: log them "
                                    "with mon.log_predictions(...) before their outcomes",
                                    field="ids")
        return capture.log_outcomes(self.tables, ids, actuals, ts=ts)

    def logger(self, *, version: int | str | None = None, attributes: Sequence[str] = (),
               flush_rows: int = 10_000, flush_interval: float = 10.0,
               capacity: int = 100_000) -> PredictionBuffer:
        """A buffered, thread-safe logger for a scoring service: ``log(features_dict,
        score)`` returns at once; rows are written every ``flush_rows`` rows or
        ``flush_interval`` seconds and at exit. A crash loses only unwritten rows."""
        mv = self.version(version)
        if not mv.features:
            raise InvalidInputError(f"{self.name} v{mv.version} has no feature schema: "
                                    "register it with reference_data=...", field="version")
        return PredictionBuffer(self.tables.predictions.append, schema=mv.features,
                                version=mv.version, attributes=attributes,
                                flush_rows=flush_rows, flush_interval=flush_interval,
                                capacity=capacity)

    def predict(self, features: Any, *, alias: str | None = None,
                version: int | str | None = None, ids: Any = None,
                attributes: Any = None, trusted: bool | Sequence[str] = False) -> Any:
        """Score ``features`` with the production version (or ``alias`` / ``version``), log
        the predictions, and return them: one line in a scoring job."""
        ref = f"{self.name}@{alias}" if alias else self.name
        mv = (self.registry.get(ref) if alias else self.version(version))
        model = self.registry.load(ref if alias else self.name, None if alias else mv.version,
                                   trusted=trusted)
        names = [f["name"] for f in mv.features]
        inputs = features[names] if names and hasattr(features, "columns") else features
        output = (model.predict_proba(inputs) if hasattr(model, "predict_proba")
                  else model.predict(inputs))
        self.log_predictions(features, output, ids=ids, version=mv.version,
                             attributes=attributes)
        return output

    # -- baselines -----------------------------------------------------------------------
    def baseline(self, version: int | str | None = None) -> dict[str, Any]:
        """The version's frozen baseline: built once from its reference data (deterministic)
        and recorded in the audit log (``set_baseline``), then read back by hash."""
        mv = self.version(version)
        recorded = self.registry._current().baselines.get((self.name, mv.version))
        if recorded is not None:
            return dict(json.loads(self.registry._blobs.get(recorded["sha256"])))
        if mv.reference is None:
            raise InvalidInputError(
                f"{self.name} v{mv.version} has no reference data, so there is no baseline to "
                "compare with: register it with reference_data=... (and reference_target)",
                field="version")
        built = _build(self.registry._blobs.get(mv.reference["sha256"]))
        built["importance"] = self._importance(mv)
        sha = self.registry._blobs.put(canonical_json(built).encode())

        def build(state: RegistryState) -> tuple[int | None, dict[str, Any]] | None:
            if (self.name, mv.version) in state.baselines:
                return None  # another process froze it first: the same bytes
            return mv.version, {"sha256": sha,
                                "source": {"reference": mv.reference["sha256"]}}  # type: ignore[index]

        self.registry._commit("set_baseline", self.name, build)
        return built

    def _importance(self, mv: ModelVersion) -> dict[str, Any] | None:
        """The model's own importances (or permutation importance on the reference rows),
        when the model loads without trusting its registrant; else None."""
        from ..monitoring.importance import feature_importance

        assert mv.reference is not None
        table = reference.thaw(self.registry._blobs.get(mv.reference["sha256"]))
        target = (table[reference.TARGET_COLUMN].to_numpy()
                  if reference.TARGET_COLUMN in table.column_names else None)
        inputs = table.drop_columns([c for c in reference.RESERVED if c in table.column_names])
        try:
            model = self.registry.load(self.name, mv.version)
            found = feature_importance(model, inputs, target)
        except Exception:  # an untrusted or unusual model: drift is still computed
            return None
        return {"method": found.method, "values": found.values}

    def importance(self, version: int | str | None = None) -> dict[str, float]:
        """Feature importance of the version, frozen with its baseline (empty when it could
        not be computed without trusting the model's registrant)."""
        found = self.baseline(version).get("importance") or {}
        return dict(found.get("values", {}))

    # -- questions -----------------------------------------------------------------------
    def connection(self) -> Any:
        if self._con is None:
            require("monitoring", "duckdb")
            from ..monitoring import duck

            self._con = duck.connect()
        return self._con

    def snapshots(self, start: Any = None, end: Any = None) -> tuple[Snapshot, Snapshot]:
        begin, stop = _time(start, "start"), _time(end, "end")
        return (self.tables.predictions.snapshot(begin, stop),
                self.tables.outcomes.snapshot())

    def drift(self, start: Any = None, end: Any = None,
              version: int | str | None = None) -> pa.Table:
        """One row per feature and for the score: ``feature, psi, ks, ks_pvalue, js,
        wasserstein, chi2_pvalue, status, drifted`` (and more), for the version's logged
        predictions in ``[start, end)`` against its frozen baseline."""
        from ..monitoring.drift import drift

        mv = self.version(version)
        predictions = self.tables.predictions.snapshot(_time(start, "start"), _time(end, "end"))
        _require_rows(predictions, self.name)
        baseline = self.baseline(mv.version)
        table = drift(self.connection(), predictions.relation(), baseline,
                      where=f"version = {mv.version}")
        if baseline.get("importance"):
            from ..monitoring.importance import Importance, rank_drift

            table = rank_drift(table, Importance(baseline["importance"]["method"],
                                                 baseline["importance"]["values"]))
        return _pinned(table, predictions=predictions.version)

    def drift_windows(self, window: str = "1d", *, start: Any = None, end: Any = None,
                      version: int | str | None = None, progress: bool | None = None
                      ) -> pa.Table:
        """PSI per feature for each window in ``[start, end)`` (default: the last 14 windows
        up to the newest prediction): ``window_start, feature, psi, status, drifted``.
        Windows without predictions are left out."""
        from tqdm.auto import tqdm

        from .checks import window_length

        step = window_length(window)
        mv = self.version(version)
        stop = _time(end, "end") or shifted(_newest(self.tables.predictions.read(
            columns=["ts"]), self.name), timedelta(microseconds=1))
        begin = _time(start, "start") or shifted(stop, -14 * step, field="start")
        edges = [begin + i * step for i in range(int((stop - begin) / step) + 1)]
        rows: list[dict[str, Any]] = []
        quiet = None if progress is None else not progress  # None: a bar only where it shows
        for left in tqdm(edges, desc=f"drift of {self.name}", disable=quiet):
            right = min(shifted(left, step), stop)
            try:
                table = self.drift(left, right, version=mv.version)
            except InvalidInputError:
                continue  # no predictions in this window
            rows += [{"window_start": left, **r} for r in table.select(
                ["feature", "psi", "status", "drifted"]).to_pylist()]
        return pa.Table.from_pylist(rows, schema=pa.schema([
            ("window_start", pa.timestamp("us", "UTC")), ("feature", pa.string()),
            ("psi", pa.float64()), ("status", pa.string()), ("drifted", pa.bool_())]))

    def performance(self, window: str | None = "1d", *, by: Sequence[str] | None = None,
                    start: Any = None, end: Any = None,
                    version: int | str | None = None) -> pa.Table:
        """Metrics per window over predictions joined with their outcomes (the first outcome
        per id): accuracy, precision, recall, f1, roc_auc, log_loss, brier for classifiers;
        rmse, mae, r2 for regressors. ``version=None`` covers every version (add
        ``by=["version"]`` to split them)."""
        from ..monitoring.performance import performance

        predictions, outcomes = self.snapshots(start, end)
        _require_rows(predictions, self.name)
        where = None if version is None else f"version = {self.version(version).version}"
        task = self.task(version)
        table = performance(self.connection(), joined(predictions, outcomes), task=task,
                            where=where, window=window, by=by)
        return _pinned(table, predictions=predictions.version, outcomes=outcomes.version)

    def fairness(self, group: str, favorable: Any = 1, *, reference: Any = None,
                 start: Any = None, end: Any = None,
                 version: int | str | None = None, outcome: str = "label") -> pa.Table:
        """Selection rate per value of ``group`` (an attribute logged with the predictions),
        the adverse impact ratio against the reference group with the four-fifths flag,
        counts and a significance test (error-rate parity when outcomes exist)."""
        from ..monitoring.fairness import fairness

        predictions, outcomes = self.snapshots(start, end)
        _require_rows(predictions, self.name)
        where = None if version is None else f"version = {self.version(version).version}"
        table = fairness(self.connection(), joined(predictions, outcomes, inner=False),
                         group=group, favorable=favorable, outcome=outcome,
                         reference=reference, where=where)
        return _pinned(table, predictions=predictions.version, outcomes=outcomes.version)

    def task(self, version: int | str | None = None) -> Any:
        """"classification" or "regression", from the frozen baseline (else the outcomes)."""
        mv = self.version(version)
        if mv.reference is not None:
            task = self.baseline(mv.version).get("task")
            if task:
                return task
        return "classification"

    def replay(self, version: int | str, start: Any = None, end: Any = None, *,
               served: int | str | None = None, trusted: bool | Sequence[str] = False,
               ) -> ReplayResult:
        """Score the served version's logged traffic in ``[start, end)`` with ``version``
        and compare both on the same matured outcomes (DeLong for AUC, paired bootstrap for
        the rest)."""
        from .replay import replay

        return replay(self, version, start, end, served=served, trusted=trusted)

    def seal(self) -> Event:
        """Record each monitoring table's Delta version and the hash of its newest commit in
        the audit log: rows deleted or rewritten afterwards are caught by ``verify()``."""
        return self.registry._record("seal", self.name, lambda s: (None, self.seals()))

    def seals(self) -> dict[str, Any]:
        return {"tables": {t.key: seal(t) for t in self.tables if t.exists()}}

    def check(self, *, now: Any = None) -> Any:
        """Compute the policy's window (drift, performance, fairness), append it to the
        metrics table, seal the tables, record an ``alert`` per breach and apply the
        policy's action (``retrain_requested`` or an automatic rollback)."""
        from .checks import check

        return check(self, now=None if now is None else parse_time(now, field="now"))


def joined(predictions: Snapshot, outcomes: Snapshot, *, inner: bool = True) -> str:
    """Predictions with ``actual``: the first outcome recorded per prediction id."""
    first = (f"(SELECT prediction_id, arg_min(actual, ts) AS actual FROM "
             f"{outcomes.relation()} GROUP BY prediction_id)")
    how = "JOIN" if inner else "LEFT JOIN"
    return (f"(SELECT p.*, o.actual FROM {predictions.relation()} AS p {how} {first} AS o "
            "USING (prediction_id))")


def _build(blob: bytes) -> dict[str, Any]:
    require("monitoring", "duckdb")
    from ..monitoring.baseline import build_baseline

    table = reference.thaw(blob)
    target = table[reference.TARGET_COLUMN] if reference.TARGET_COLUMN in table.column_names \
        else None
    scores = table[reference.SCORE_COLUMN] if reference.SCORE_COLUMN in table.column_names \
        else None
    inputs = table.drop_columns([c for c in reference.RESERVED if c in table.column_names])
    return build_baseline(inputs, target=None if target is None else target.combine_chunks(),
                          scores=None if scores is None else scores.combine_chunks(),
                          task=_task(target))


def _task(target: Any) -> Any:
    if target is None:
        return None
    kind = target.type
    if pa.types.is_boolean(kind):
        return "classification"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = set(target.drop_null().unique().to_pylist())
        return "classification" if values <= {0, 1} else "regression"
    return None


def _time(value: Any, what: str) -> datetime | None:
    return None if value is None else parse_time(value, field=what)


def _newest(table: pa.Table, name: str) -> datetime:
    if table.num_rows == 0:
        raise InvalidInputError(f"{name!r} has logged no predictions yet", field="model")
    import pyarrow.compute as pc

    try:
        newest: datetime = pc.max(table["ts"]).as_py()
    except OverflowError as exc:  # a row dated past year 9999, not logged by nbregistry
        raise InvalidInputError(f"{name!r} has predictions dated after year 9999: pass end= "
                                "to leave them out", field="end") from exc
    return newest


def _require_rows(snapshot: Snapshot, name: str) -> None:
    if snapshot.version < 0:
        raise InvalidInputError(f"{name!r} has logged no predictions yet: log them with "
                                "mon.log_predictions(...) or mon.logger()", field="model")


def _pinned(table: pa.Table, **versions: int) -> pa.Table:
    """Record which Delta version of each table the answer read (reports pin them)."""
    metadata = dict(table.schema.metadata or {})
    metadata[b"nbregistry.tables"] = json.dumps(versions).encode()
    return table.replace_schema_metadata(metadata)
