"""SIGKILL a writer at random moments; the registry must always reopen, verify, and never name
an artifact that is not there.

One registry accumulates across all trials, so later trials open (and crash into) a log that
earlier crashes left behind. Kills are spread over the writer's whole life: interpreter start,
registry creation/open, model serialization, blob write, Delta commit, and compaction (every
50 Delta versions; some trials wait for the child to announce a compaction and kill it inside).
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

import nbregistry as nbr
import workers

SEED = 20261126
RANDOM_TRIALS = 24
COMPACTION_TRIALS = 6
DELAY_RANGE = (0.05, 2.2)  # seconds after Popen; the child opens after ~0.6 s


class Child:
    """The writer subprocess plus a reader thread recording its progress markers."""

    def __init__(self, uri: str, worker: int) -> None:
        self.proc = subprocess.Popen(
            workers.child_command(f"crash_loop({uri!r}, {worker}, announce_compaction=True)"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        self.markers: list[str] = []
        self.compacting = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            marker = line.strip()
            self.markers.append(marker)
            if marker == "COMPACT":
                self.compacting.set()

    def kill(self) -> str:
        """SIGKILL; return the phase the child had announced when it died."""
        alive = self.proc.poll() is None
        phase = self.markers[-1] if self.markers else "starting"
        self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        self._reader.join(10)
        assert alive, f"the writer died on its own (exit {self.proc.returncode}):\n{err}"
        return phase


def check_after_crash(uri: str, trial: int) -> int:
    """The registry reopens, every listed version loads (its blob is there and intact),
    versions are 1..N and the audit trail verifies. Returns N."""
    if not Path(uri, "_registry", "events", "_delta_log", f"{0:020d}.json").exists():
        return 0  # killed before the genesis commit landed: nothing to check yet
    reg = nbr.open_registry(uri, user="auditor")
    if workers.MODEL not in reg.models():
        versions: list[int] = []
    else:
        found = reg.search(workers.MODEL)
        versions = found.column("version").to_pylist()
        made_by = zip(found.column("metrics.worker").to_pylist(),
                      found.column("metrics.iteration").to_pylist(), strict=True)
        for version, (worker, iteration) in zip(versions, made_by, strict=True):
            expected = workers.Model(int(worker), int(iteration))
            loaded = reg.load(workers.MODEL, version, trusted=True)
            assert loaded == expected, f"trial {trial}: v{version}"
    assert versions == list(range(1, len(versions) + 1)), f"trial {trial}: {versions}"
    report = reg.verify()
    assert report.ok, f"trial {trial}: {report.problems}"
    assert (report.head_seq, report.head_hash) == reg.head
    assert nbr.verify(uri).ok
    history = reg.history()
    assert history.column("seq").to_pylist() == list(range(1, history.num_rows + 1))
    return len(versions)


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    uri = str(tmp_path / "registry")
    lo, hi = DELAY_RANGE
    width = (hi - lo) / RANDOM_TRIALS
    # Stratified delays cover the whole range evenly. The first eight (shortest, in order)
    # die while the interpreter starts, while the registry is being created, or while it is
    # opened; the rest are shuffled, with the compaction kills spread among them.
    delays = [lo + (i + rng.random()) * width for i in range(RANDOM_TRIALS)]
    early, rest = delays[:8], delays[8:]
    rng.shuffle(rest)
    plan: list[float | None] = [*early, *rest]
    for slot in sorted(rng.sample(range(len(early), len(plan) + COMPACTION_TRIALS),
                                  COMPACTION_TRIALS)):
        plan.insert(slot, None)  # None: kill inside a compaction

    phases: list[str] = []
    counts: list[int] = []
    started = time.monotonic()
    for trial, delay in enumerate(plan):
        child = Child(uri, worker=trial)
        if delay is None:
            assert child.compacting.wait(60), f"trial {trial}: no compaction within 60 s"
            time.sleep(rng.uniform(0.0, 0.04))
        else:
            time.sleep(delay)
        phase = child.kill()
        phases.append(phase if Path(uri, "_registry", "events", "_delta_log").exists()
                      else f"{phase} (no log yet)")
        counts.append(check_after_crash(uri, trial))

    elapsed = time.monotonic() - started
    print(f"\n{len(plan)} trials in {elapsed:.1f} s; phases at kill: {phases}; "
          f"versions after each: {counts}")
    assert counts == sorted(counts), "versions disappeared after a crash"
    assert counts[-1] > 0, "no trial ever registered a version"
    assert any(p.startswith("starting") for p in phases), "no kill before the registry opened"
    assert "COMPACT" in phases, "no kill landed inside a compaction"
    # A writer started after all the crashes still works and sees everything.
    reg = nbr.open_registry(uri, user="survivor")
    mv = reg.register(workers.Model(999, 0), workers.MODEL)
    assert mv.version == counts[-1] + 1
    assert reg.verify().ok
