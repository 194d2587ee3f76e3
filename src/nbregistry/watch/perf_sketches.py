"""Performance sketches: what ``check()`` and the watcher need of performance, counted once
per (prediction file, outcome file) pair, so a check costs its new files, not its window.

Performance joins each prediction with its outcome, and outcomes arrive late, in data files
of their own (immutable, as every Delta data file). When an outcome file is counted, the
rows it resolves are counted per prediction file and model version: rows, positives,
confusion counts at the threshold, the log-loss and Brier sums and the rows and positives
per cell of a uniform grid of ``GRID`` cells on the score (classification), or the sums
regression needs. Counts of disjoint rows add up, so a window of whole prediction files sums
the pairs of its files over the outcome files live now.

Every figure equals the raw-row figure (the same sums, in another order) except ROC AUC: the
grid cannot order two rows of one cell, so the AUC comes with its bound (half the
positive-negative pairs that share a cell, over P*N), and ``check()`` computes the raw
figure whenever a band's edge lies within it.

The sum equals the raw join only when each prediction has at most one outcome. An outcome
file is checked when it is counted (ids unique within it and in no other live outcome file);
one that is not (two loggers racing, a direct write) sends performance back to the raw rows,
which take the first outcome. Outcomes whose prediction was not logged yet are listed (up to
``MAX_UNMATCHED``) and joined at question time. A prediction file rewritten after its
outcomes were counted (compaction) gets those outcome files counted again. Derived data, as
the drift sketches: never evidence, rebuilt by deleting the sketches table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..monitoring import duck
from ..monitoring.performance import EPS, binary_metrics
from ..store import Snapshot
from .sketches import SketchStore, split

GRID = 4096
MAX_UNMATCHED = 1_000


@dataclass
class Perf:
    """Performance sums over some matured rows (classification and regression alike)."""

    n: int = 0
    pos: float = 0.0
    bad: int = 0          # outcomes that are not 0/1 (classification refuses them)
    out: int = 0          # scores outside [0, 1]
    tp: float = 0.0
    fp: float = 0.0
    loss: float = 0.0
    brier: float = 0.0
    sse: float = 0.0
    sae: float = 0.0
    mean: float = 0.0     # of the outcome, with m2 (Chan's parallel variance)
    m2: float = 0.0
    cells: dict[int, list[float]] = field(default_factory=dict)  # cell -> [rows, positives]

    def add(self, other: Perf) -> None:
        if not other.n:
            return
        total = self.n + other.n
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.n * other.n / total
        self.mean += delta * other.n / total
        self.n = total
        for name in ("pos", "bad", "out", "tp", "fp", "loss", "brier", "sse", "sae"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for cell, (rows, positives) in other.cells.items():
            mine = self.cells.get(cell)
            if mine is None:
                self.cells[cell] = [rows, positives]
            else:
                mine[0] += rows
                mine[1] += positives

    def dumps(self) -> str:
        data = asdict(self)
        cells = sorted(self.cells.items())
        data["cells"] = [[c for c, _ in cells], [v[0] for _, v in cells],
                         [v[1] for _, v in cells]]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Perf:
        data = json.loads(text)
        keys, rows, positives = data.pop("cells")
        return cls(**data, cells={c: [r, p] for c, r, p in zip(keys, rows, positives,
                                                                 strict=True)})

    def metrics(self, task: str) -> tuple[dict[str, Any], float] | None:
        """The figures ``performance(None)`` gives over the same rows and the AUC's bound;
        None when the raw path must answer (no rows, or values it refuses with an error)."""
        if not self.n or self.bad or self.out:
            return None
        if task == "regression":
            return {"n": self.n, "rmse": (self.sse / self.n) ** 0.5, "mae": self.sae / self.n,
                    "r2": 1 - self.sse / self.m2 if self.m2 else None}, 0.0
        below = u = shared = 0.0
        for cell in sorted(self.cells):
            rows, positives = self.cells[cell]
            negatives = rows - positives
            u += positives * (below + 0.5 * negatives)
            shared += positives * negatives
            below += negatives
        found = binary_metrics(self.n, self.pos, 0, 0, self.tp, self.fp, u, self.loss,
                               self.brier)
        pairs = self.pos * (self.n - self.pos)
        return found, 0.5 * shared / pairs if pairs else 0.0


def _spec(task: str, threshold: float) -> str:
    return f"{task}|{threshold!r}"


def _marker(spec: str, gen: int) -> str:
    return f"perfo|{spec}|{gen}"


def _pair(spec: str, gen: int, outcome_file: str) -> str:
    return f"perfp|{spec}|{gen}|{outcome_file}"


@dataclass
class Index:
    """The performance sketches of one spec: per live outcome file its newest marker."""

    markers: dict[str, tuple[int, dict[str, Any]]]   # outcome file -> (gen, facts)
    pairs: dict[tuple[str, int, str], str]           # (outcome file+gen key, ...) -> text


def index(store: SketchStore, spec: str) -> Index:
    markers: dict[str, tuple[int, dict[str, Any]]] = {}
    pairs: dict[tuple[str, int, str], str] = {}
    marker_head, pair_head = f"perfo|{spec}|", f"perfp|{spec}|"
    for (file, version, baseline), text in store.lookup_extra().items():
        if baseline.startswith(marker_head):
            gen = int(baseline[len(marker_head):])
            if file not in markers or markers[file][0] < gen:
                markers[file] = (gen, json.loads(text))
        elif baseline.startswith(pair_head):
            pairs[(file, version, baseline)] = text
    return Index(markers, pairs)


def _stale(facts: dict[str, Any], live: set[str]) -> bool:
    return any(path not in live for path in facts["matched"])


def keep(con: Any, predictions: Snapshot, outcomes: Snapshot, *, task: str,
         threshold: float, store: SketchStore) -> int:
    """Count the live outcome files not counted yet (or whose prediction files were
    rewritten since) against every prediction; how many outcome files were counted."""
    if predictions.version < 0 or outcomes.version < 0:
        return 0
    spec = _spec(task, threshold)
    found = index(store, spec)
    live = {entry.path for entry in predictions.entries}
    todo = [i for i, entry in enumerate(outcomes.entries)
            if entry.path not in found.markers or _stale(found.markers[entry.path][1], live)]
    if not todo:
        return 0
    gen = predictions.version
    local = {loc: entry.path for loc, entry in zip(outcomes.files, outcomes.entries,
                                                   strict=True)}
    new = _files(outcomes, todo)
    others = _files(outcomes, [i for i in range(len(outcomes.files)) if i not in todo])
    pairs = count_pairs(con, predictions, new.relation(filename=True), task=task,
                        threshold=threshold)
    facts = _facts(con, predictions, new, others)
    rows: dict[tuple[str, int, str], tuple[int, str]] = {}
    matched: dict[str, set[str]] = {local[str(f)]: set() for f in new.files}
    for (file, version, outcome_file), perf in pairs.items():
        rows[(file, version, _pair(spec, gen, local[outcome_file]))] = (perf.n, perf.dumps())
        matched[local[outcome_file]].add(file)
    for outcome_local, fact in facts.items():
        path = local[outcome_local]
        rows[(path, -1, _marker(spec, gen))] = (fact["rows"], json.dumps(
            {**fact, "matched": sorted(matched[path])}, separators=(",", ":")))
    store.add_extra(rows)
    return len(todo)


def _files(snapshot: Snapshot, indexes: list[int]) -> Snapshot:
    from .sketches import subset

    return subset(snapshot, indexes, whole=True)


def count_pairs(con: Any, predictions: Snapshot, outcomes: str, *, task: str,
                threshold: float) -> dict[tuple[str, int, str], Perf]:
    """Perf per (prediction file path, model version, outcome file as read) of the rows
    ``outcomes`` (a relation with ``filename``) resolves."""
    by_local = {loc: e.path for loc, e in zip(predictions.files, predictions.entries,
                                              strict=True)}
    joined = (f"(SELECT p.__file, p.__v, o.__ofile, p.__s, o.__y FROM (SELECT filename AS "
              "__file, version AS __v, prediction_id AS __id, CAST(score AS DOUBLE) AS __s "
              f"FROM {predictions.relation(filename=True)} WHERE score IS NOT NULL AND "
              "isfinite(CAST(score AS DOUBLE))) AS p JOIN (SELECT filename AS __ofile, "
              "prediction_id AS __id, CAST(actual AS DOUBLE) AS __y FROM "
              f"{outcomes} WHERE actual IS NOT NULL) AS o "
              "ON p.__id = o.__id)")
    out: dict[tuple[str, int, str], Perf] = {}
    for row in con.execute(_sums(joined, task, threshold)).fetchall():
        key = (by_local[str(row[0])], int(row[1]), str(row[2]))
        perf = out.get(key)
        if perf is None:
            perf = out[key] = Perf()
        perf.add(_perf(task, row[3:]))
    return out


def _sums(joined: str, task: str, threshold: float) -> str:
    if task == "regression":
        return (f"SELECT __file, __v, __ofile, count(*), sum((__y - __s) * (__y - __s)), "
                "sum(abs(__y - __s)), avg(__y), var_pop(__y) * count(*) "
                f"FROM {joined} AS j GROUP BY 1, 2, 3")
    t, hi, lo = duck.number(threshold), duck.number(1 - EPS), duck.number(EPS)
    return (f"SELECT __file, __v, __ofile, CAST(least(greatest(floor(__s * {GRID}), 0), "
            f"{GRID - 1}) AS BIGINT) AS __c, count(*), sum(__y), "
            "count(*) FILTER (WHERE __y NOT IN (0, 1)), "
            "count(*) FILTER (WHERE __s < 0 OR __s > 1), "
            f"sum(CASE WHEN __s >= {t} THEN __y ELSE 0 END), "
            f"sum(CASE WHEN __s >= {t} THEN 1 - __y ELSE 0 END), "
            f"sum(-__y * ln(greatest(least(__s, {hi}), {lo})) - (1 - __y) * "
            f"ln(greatest(least(1 - __s, {hi}), {lo}))), "
            "sum(__y * (1 - __s) * (1 - __s) + (1 - __y) * __s * __s) "
            f"FROM {joined} AS j GROUP BY 1, 2, 3, 4")


def _perf(task: str, values: tuple[Any, ...]) -> Perf:
    if task == "regression":
        n, sse, sae, mean, m2 = values
        return Perf(n=int(n), sse=float(sse), sae=float(sae), mean=float(mean),
                    m2=float(m2 or 0.0))
    cell, n, pos, bad, out, tp, fp, loss, brier = values
    return Perf(n=int(n), pos=float(pos), bad=int(bad), out=int(out), tp=float(tp),
                fp=float(fp), loss=float(loss), brier=float(brier),
                cells={int(cell): [int(n), float(pos)]})


def _facts(con: Any, predictions: Snapshot, new: Snapshot, others: Snapshot
           ) -> dict[str, dict[str, Any]]:
    """Per new outcome file (as read): rows, whether its ids are unique (within it, across
    the new files and against the other live outcome files) and its unmatched ids."""
    rel = new.relation(filename=True)
    per_file = {str(f): {"rows": int(n), "unique": int(n) == int(d)} for f, n, d in
                con.execute(f"SELECT filename, count(*), count(DISTINCT prediction_id) "
                            f"FROM {rel} GROUP BY 1").fetchall()}
    across = duck.one(con, f"SELECT count(*) = count(DISTINCT prediction_id) FROM {rel}")[0]
    clash = False
    if others.files:
        clash = bool(duck.one(con, f"SELECT count(*) FROM {others.relation()} WHERE "
                                   f"prediction_id IN (SELECT prediction_id FROM {rel})")[0])
    ids = f"(SELECT DISTINCT prediction_id AS __id FROM {rel})"
    known = (f"(SELECT DISTINCT prediction_id AS __id FROM {predictions.relation()} WHERE "
             f"prediction_id IN (SELECT __id FROM {ids}))")
    missing: dict[str, list[str]] = {}
    for path, found in con.execute(
            f"SELECT o.filename, o.prediction_id FROM {rel} AS o LEFT JOIN {known} AS k "
            f"ON o.prediction_id = k.__id WHERE k.__id IS NULL "
            f"LIMIT {MAX_UNMATCHED + 1}").fetchall():
        missing.setdefault(str(path), []).append(str(found))
    too_many = sum(map(len, missing.values())) > MAX_UNMATCHED
    return {path: {**fact, "unique": fact["unique"] and bool(across) and not clash,
                   "unmatched": None if too_many else missing.get(path, [])}
            for path, fact in per_file.items()}


def window(con: Any, predictions: Snapshot, every: Snapshot, outcomes: Snapshot, *,
           version: int, task: str, threshold: float, store: SketchStore
           ) -> tuple[dict[str, Any], float] | None:
    """Performance of ``version`` over ``predictions`` (a window of whole files; ``every``
    is the table's whole snapshot) from the sketches, and the AUC's bound; None when the
    raw rows must answer (a file cut by the window, an outcome file not counted, stale or
    doubtful, too many outcomes waiting for their prediction)."""
    inside, edge = split(predictions, predictions.start, predictions.end)
    if edge or outcomes.version < 0:
        return None
    found = index(store, _spec(task, threshold))
    live = {entry.path for entry in every.entries}
    total, waiting = Perf(), []
    files = {predictions.entries[i].path for i in inside}
    for entry in outcomes.entries:
        marker = found.markers.get(entry.path)
        if marker is None or _stale(marker[1], live) or not marker[1]["unique"] \
                or marker[1]["unmatched"] is None:
            return None
        gen, facts = marker
        waiting += facts["unmatched"]
        baseline = _pair(_spec(task, threshold), gen, entry.path)
        for path in facts["matched"]:
            text = found.pairs.get((path, version, baseline))
            if path in files and text is not None:
                total.add(Perf.loads(text))
    if len(waiting) > MAX_UNMATCHED:
        return None
    if waiting:   # outcomes whose prediction was logged after they were counted
        late = ", ".join(f"'{w.replace(chr(39), chr(39) * 2)}'" for w in waiting)
        resolved = (f"(SELECT * FROM {outcomes.relation(filename=True)} WHERE prediction_id "
                    f"IN ({late}))")
        for (_, v, _), perf in count_pairs(con, _files(predictions, inside), resolved,
                                           task=task, threshold=threshold).items():
            if v == version:
                total.add(perf)
    return total.metrics(task)

