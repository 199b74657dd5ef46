"""What the scheduler is doing, as an immutable snapshot it publishes each tick for the HTTP threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ocrpipe.folders.fsutil import read_json
from ocrpipe.folders.store import STATE_FILE
from ocrpipe.model import running_state, stage_of

log = logging.getLogger("ocrpipe.snapshot")

if TYPE_CHECKING:  # the scheduler imports this module
    from ocrpipe.engine.jobs import Job, Unit
    from ocrpipe.engine.pools import Pool
    from ocrpipe.model import Stage


@dataclass(frozen=True)
class JobView:
    """One job in flight, as /jobs and the status page show it."""

    jobKey: str
    state: str
    stage: str | None
    attempt: int
    fileName: str | None
    updatedAt: str  # when the scheduler first saw it in this state (to a tick)
    startedAt: str | None  # when its current stage was submitted, while it is in one
    elapsedSeconds: float | None
    batchSize: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PoolView:
    workers: int
    busy: int  # stages running (a batch of documents is one)


@dataclass(frozen=True)
class Snapshot:
    """Built on the scheduler's thread from what it already tracks; read by any thread, never changed."""

    tickMonotonic: float
    tickAt: str
    metrics: Mapping[str, Any]
    jobs: tuple[JobView, ...]  # in flight, newest first
    waitingInInbox: int
    heldDuplicates: int
    pools: Mapping[str, PoolView]
    admitting: bool

    @property
    def running(self) -> tuple[JobView, ...]:
        return tuple(j for j in self.jobs if j.startedAt is not None)

    @property
    def queued(self) -> tuple[JobView, ...]:
        return tuple(j for j in self.jobs if j.startedAt is None)


class SnapshotHolder:
    """The latest snapshot, swapped whole under a lock; ``publish`` is called by the scheduler only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Snapshot | None = None
        # Only the scheduler's thread touches these: each job's file name (read once from its
        # state.json) and when its state last changed.
        self._names: dict[str, str | None] = {}
        self._seen: dict[str, tuple[tuple[str, int], str]] = {}
        self._failing = False  # logged once per streak, not once per tick

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._latest

    def publish(self, now: float, *, jobs: Iterable[Job], units: Iterable[Unit], pools: Mapping[Stage, Pool],
                metrics: Mapping[str, Any], waiting: int, held: int, admitting: bool) -> Snapshot | None:
        """Called by the scheduler at the end of a tick with what it tracks. Never raises: a fault here
        must not stop the pipeline; the API then shows the last good snapshot, and /health turns 503
        once that is HEALTH_STALE_SECONDS old."""
        try:
            snapshot = self._make(now, list(jobs), list(units), pools, metrics, waiting, held, admitting)
        except Exception:  # noqa: BLE001 — a bug in what only the operator's view depends on
            if not self._failing:
                log.exception("could not publish the status snapshot; the HTTP API shows the last good one")
            self._failing = True
            return None
        self._failing = False
        with self._lock:
            self._latest = snapshot
        return snapshot

    def _make(self, now: float, jobs: list[Job], units: list[Unit], pools: Mapping[Stage, Pool],
              metrics: Mapping[str, Any], waiting: int, held: int, admitting: bool) -> Snapshot:
        wall = datetime.now(UTC)
        wall_iso = wall.isoformat(timespec="milliseconds")
        batch_of = {id(job): len(unit.jobs) for unit in units for job in unit.jobs}
        views = [self._view(job, now, wall, wall_iso, batch_of.get(id(job), 0))
                 for job in sorted(jobs, key=lambda j: j.seq, reverse=True)]
        for gone in self._names.keys() - {job.key for job in jobs}:
            del self._names[gone]
            self._seen.pop(gone, None)
        busy = {stage: sum(1 for unit in units if unit.stage is stage) for stage in pools}
        return Snapshot(
            tickMonotonic=now, tickAt=wall_iso, metrics=MappingProxyType(dict(metrics)), jobs=tuple(views),
            waitingInInbox=waiting, heldDuplicates=held, admitting=admitting,
            pools=MappingProxyType({stage.value: PoolView(pool.workers, busy[stage]) for stage, pool in pools.items()}),
        )

    def _view(self, job: Job, now: float, wall: datetime, wall_iso: str, batch_size: int) -> JobView:
        stage = stage_of(job.state)
        state = job.state
        started = elapsed = None
        if job.in_stage and job.future is not None:
            elapsed = max(0.0, now - job.submitted_at)
            started = (wall - timedelta(seconds=elapsed)).isoformat(timespec="milliseconds")
            if job.future.running():  # the worker has it: it records RUNNING itself, the scheduler does not
                state = running_state(stage) if stage else state
        attempt = job.attempts.get(stage.value, 0) if stage else 0
        if job.key not in self._names:
            self._names[job.key] = _file_name(job)
        signature = (state.value, attempt)
        seen = self._seen.get(job.key)
        if seen is None or seen[0] != signature:
            seen = (signature, wall_iso)
            self._seen[job.key] = seen
        return JobView(jobKey=job.key, state=state.value, stage=stage.value if stage else None, attempt=attempt,
                       fileName=self._names[job.key], updatedAt=seen[1], startedAt=started,
                       elapsedSeconds=round(elapsed, 1) if elapsed is not None else None, batchSize=batch_size)


def _file_name(job: Job) -> str | None:
    """The dropped file's path under in/, from state.json: read once per job, not once per tick."""
    try:
        return str(read_json(job.dir / STATE_FILE)["source"]["relpath"])
    except (OSError, ValueError, KeyError, TypeError):
        return None

