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
from .sketches import Key, SketchStore, split, subset

GRID = 4096
BATCH_ROWS = 4_000_000   # outcome rows counted per query (the join holds them)
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
    pairs: dict[Key, str]    # (prediction file, model version, pair key) -> text


def index(store: SketchStore, spec: str) -> Index:
    markers: dict[str, tuple[int, dict[str, Any]]] = {}
    pairs: dict[Key, str] = {}
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
    rewritten since) against every prediction, ``BATCH_ROWS`` outcome rows at a time (one
    append each, so a long first count keeps what it did); how many files were counted."""
    if predictions.version < 0 or outcomes.version < 0:
        return 0
    spec = _spec(task, threshold)
    found = index(store, spec)
    live = {entry.path for entry in predictions.entries}
    todo = [i for i, entry in enumerate(outcomes.entries)
            if entry.path not in found.markers or _stale(found.markers[entry.path][1], live)]
    batch: list[int] = []
    for n, i in enumerate(todo):
        batch.append(i)
        if n == len(todo) - 1 or sum(outcomes.entries[j].rows for j in batch) \
                + outcomes.entries[todo[n + 1]].rows > BATCH_ROWS:
            store.add_extra(_count(con, predictions, outcomes, batch, spec=spec, task=task,
                                   threshold=threshold))
            batch = []
    return len(todo)


def _count(con: Any, predictions: Snapshot, outcomes: Snapshot, batch: list[int], *,
           spec: str, task: str, threshold: float) -> dict[Key, tuple[int, str]]:
    """The pair sketches and the markers of the outcome files at ``batch``."""
    gen = predictions.version
    paths = [outcomes.entries[i].path for i in batch]
    union = _numbered(outcomes, batch)
    pairs, matched_rows = count_pairs(con, predictions, union, task=task,
                                      threshold=threshold)
    others = subset(outcomes, [i for i in range(len(outcomes.files)) if i not in batch],
                    whole=True)
    facts = _facts(con, predictions, others, union, matched_rows)
    out: dict[Key, tuple[int, str]] = {}
    matched: dict[int, set[str]] = {k: set() for k in range(len(batch))}
    for (file, version, k), perf in pairs.items():
        out[(file, version, _pair(spec, gen, paths[k]))] = (perf.n, perf.dumps())
        matched[k].add(file)
    for k, fact in facts.items():
        out[(paths[k], -1, _marker(spec, gen))] = (fact["rows"], json.dumps(
            {**fact, "matched": sorted(matched[k])}, separators=(",", ":")))
    return out


def _numbered(snapshot: Snapshot, indexes: list[int]) -> str:
    """The rows of the files at ``indexes``, each with its position in the list as ``__o``
    (an integer: a join keeps it for every row, where a path would cost its length)."""
    parts = [f"SELECT {k} AS __o, prediction_id, actual FROM "
             f"{subset(snapshot, [i], whole=True).from_clause()}"
             for k, i in enumerate(indexes)]
    return "(" + " UNION ALL ".join(parts) + ")"


def count_pairs(con: Any, predictions: Snapshot, outcomes: str, *, task: str,
                threshold: float) -> tuple[dict[tuple[str, int, int], Perf], dict[int, int]]:
    """Perf per (prediction file path, model version, ``__o`` of the outcome) of the rows
    ``outcomes`` (a relation with ``__o``, ``prediction_id``, ``actual``) resolves, and the
    outcome rows with an actual that found their prediction, per ``__o``."""
    by_local = {loc: e.path for loc, e in zip(predictions.files, predictions.entries,
                                              strict=True)}
    joined = (f"(SELECT p.__file, p.__v, o.__o, p.__s, p.__ok, o.__y FROM (SELECT filename "
              "AS __file, version AS __v, prediction_id AS __id, CAST(score AS DOUBLE) AS "
              "__s, coalesce(isfinite(CAST(score AS DOUBLE)), false) AS __ok FROM "
              f"{predictions.relation(filename=True)}) AS p JOIN (SELECT __o, prediction_id "
              f"AS __id, CAST(actual AS DOUBLE) AS __y FROM {outcomes} WHERE actual IS NOT "
              "NULL) AS o ON p.__id = o.__id)")
    out: dict[tuple[str, int, int], Perf] = {}
    matched: dict[int, int] = {}
    for row in con.execute(_sums(joined, task, threshold)).fetchall():
        matched[int(row[2])] = matched.get(int(row[2]), 0) + int(row[4])
        if row[3] is None or row[3] < 0:   # a prediction without a usable score
            continue
        key = (by_local[str(row[0])], int(row[1]), int(row[2]))
        perf = out.get(key)
        if perf is None:
            perf = out[key] = Perf()
        perf.add(_perf(task, row[3:]))
    return out, matched


def _sums(joined: str, task: str, threshold: float) -> str:
    if task == "regression":
        return ("SELECT __file, __v, __o, CASE WHEN __ok THEN 0 ELSE -1 END, count(*), "
                "sum((__y - __s) * (__y - __s)), sum(abs(__y - __s)), avg(__y), "
                f"var_pop(__y) * count(*) FROM {joined} AS j GROUP BY 1, 2, 3, 4")
    t, hi, lo = duck.number(threshold), duck.number(1 - EPS), duck.number(EPS)
    return (f"SELECT __file, __v, __o, CASE WHEN __ok THEN CAST(least(greatest(floor(__s * "
            f"{GRID}), 0), {GRID - 1}) AS BIGINT) ELSE -1 END AS __c, count(*), sum(__y), "
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
        _, n, sse, sae, mean, m2 = values
        return Perf(n=int(n), sse=float(sse), sae=float(sae), mean=float(mean),
                    m2=float(m2 or 0.0))
    cell, n, pos, bad, out, tp, fp, loss, brier = values
    return Perf(n=int(n), pos=float(pos), bad=int(bad), out=int(out), tp=float(tp),
                fp=float(fp), loss=float(loss), brier=float(brier),
                cells={int(cell): [int(n), float(pos)]})


def _facts(con: Any, predictions: Snapshot, others: Snapshot, union: str,
           matched: dict[int, int]) -> dict[int, dict[str, Any]]:
    """Per outcome file of ``union`` (by ``__o``): rows, whether its ids are unique (within
    it, within the batch and against the other live outcome files) and the ids with an
    actual that found no prediction (None: more than ``MAX_UNMATCHED``)."""
    per_file = {int(k): {"rows": int(n), "with_actual": int(a), "unique": int(n) == int(d)}
                for k, n, a, d in con.execute(
                    f"SELECT __o, count(*), count(actual), count(DISTINCT prediction_id) "
                    f"FROM {union} AS u GROUP BY 1").fetchall()}
    unique = bool(duck.one(con, "SELECT count(*) = count(DISTINCT prediction_id) FROM "
                                f"{union} AS u")[0])
    if unique and others.files:
        unique = not duck.one(con, f"SELECT count(*) FROM {others.relation()} WHERE "
                                   f"prediction_id IN (SELECT prediction_id FROM {union})")[0]
    missing: dict[int, list[str]] = {}
    if any(matched.get(k, 0) != fact["with_actual"] for k, fact in per_file.items()):
        known = (f"(SELECT DISTINCT prediction_id AS __id FROM {predictions.relation()} WHERE "
                 f"prediction_id IN (SELECT prediction_id FROM {union}))")
        for k, found in con.execute(
                f"SELECT o.__o, o.prediction_id FROM {union} AS o LEFT JOIN {known} AS k ON "
                "o.prediction_id = k.__id WHERE k.__id IS NULL AND o.actual IS NOT NULL "
                f"LIMIT {MAX_UNMATCHED + 1}").fetchall():
            missing.setdefault(int(k), []).append(str(found))
    too_many = sum(map(len, missing.values())) > MAX_UNMATCHED
    return {k: {"rows": fact["rows"], "unique": fact["unique"] and unique,
                "unmatched": None if too_many else missing.get(k, [])}
            for k, fact in per_file.items()}


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
        resolved = (f"(SELECT 0 AS __o, prediction_id, actual FROM {outcomes.relation()} "
                    f"WHERE prediction_id IN ({late}))")
        pairs, _ = count_pairs(con, subset(predictions, inside, whole=True), resolved,
                               task=task, threshold=threshold)
        for (_, v, _), perf in pairs.items():
            if v == version:
                total.add(perf)
    return total.metrics(task)



def verify(con: Any, predictions: Snapshot, outcomes: Snapshot, *, task: str,
           threshold: float, store: SketchStore) -> list[str]:
    """The counted outcome files whose pair sketches are not what their rows give now
    (recounted against the prediction files they name)."""
    if predictions.version < 0 or outcomes.version < 0:
        return []
    spec = _spec(task, threshold)
    found = index(store, spec)
    live = {entry.path for entry in predictions.entries}
    wrong = []
    for i, entry in enumerate(outcomes.entries):
        marker = found.markers.get(entry.path)
        if marker is None or _stale(marker[1], live):
            continue   # not counted (or to be counted again): nothing kept to be wrong
        gen, facts = marker
        pairs, _ = count_pairs(con, predictions, _numbered(outcomes, [i]), task=task,
                               threshold=threshold)
        fresh = {(file, version): perf for (file, version, _), perf in pairs.items()}
        baseline = _pair(spec, gen, entry.path)
        kept = {(file, version): Perf.loads(text)
                for (file, version, key), text in found.pairs.items() if key == baseline}
        if fresh.keys() != kept.keys() or set(facts["matched"]) != {f for f, _ in fresh} \
                or not all(same(kept[k], fresh[k]) for k in fresh):
            wrong.append(entry.path)
    return wrong


def same(a: Perf, b: Perf) -> bool:
    """Equal sums (floats to a relative 1e-9: summed in another order)."""
    import math

    exact = ("n", "bad", "out")
    return all(getattr(a, k) == getattr(b, k) for k in exact) and a.cells == b.cells and all(
        math.isclose(getattr(a, k), getattr(b, k), rel_tol=1e-9, abs_tol=1e-9)
        for k in ("pos", "tp", "fp", "loss", "brier", "sse", "sae", "mean", "m2"))
