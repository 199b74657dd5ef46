"""The pools and the stages running on them: plan, submit (rebuilding a broken pool), collect outcomes
(never applying them), abandon a stalled unit, kill what a dead unit left running, check the disk."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.engine.batching import page_workers, plan_ocr_units
from ocrpipe.engine.entry import (  # stages imported in workers, not here
    run_convert,
    run_ocr,
    run_ocr_batch,
    run_ocr_split,
    run_prep,
)
from ocrpipe.engine.jobs import Job, Unit
from ocrpipe.engine.pools import ExecutorFactory, Pool, StagePool
from ocrpipe.engine.splitplan import DocumentWork, split_parts
from ocrpipe.errors import WorkerSetupError
from ocrpipe.folders.cancel import request_cancel
from ocrpipe.folders.heartbeat import checked_identity, heartbeat_path, kill_identity, kill_recorded, read_heartbeat
from ocrpipe.folders.outcome import StageOutcome
from ocrpipe.folders.store import read_state
from ocrpipe.logs import job_context
from ocrpipe.model import Stage, submitted_state
from ocrpipe.ownprocs import mark_own_workers

log = logging.getLogger("ocrpipe.dispatcher")

BATCH_PREFIX = ".batch-"
DISK_WARNING_EVERY = 60.0
MB = 2**20
DIED = "the worker process died (crash or killed)"


def work_volume_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def work_volume_total(path: Path) -> int:
    return shutil.disk_usage(path).total


def worker_of(job_dir: Path, stage: Stage) -> dict[str, Any] | None:
    """The worker process running the job's stage, with its machine (``host``): named by its heartbeat,
    else by state.json; each field checked, since anyone who can write work/ can write those files."""
    beat = read_heartbeat(heartbeat_path(job_dir, stage))
    if beat and beat["worker"]:
        return {**beat["worker"], "host": beat["host"]}
    try:
        record = read_state(job_dir)
    except (OSError, ValueError):
        return None
    worker = checked_identity({"pid": record.get("workerPid"), "createTime": record.get("workerCreateTime")})
    host = record.get("workerHost")
    if worker is None or not isinstance(host, str):
        return None
    return {**worker, "host": host}


def kill_stage(job_dir: Path, stage: Stage, *, include_worker: bool) -> list[int]:
    """Kill the tools the stage's heartbeat names (and its worker, even without a heartbeat): only
    those of this machine that are this ocrpipe's own (job folders sit in the work folder)."""
    work_dir = job_dir.parent
    worker = worker_of(job_dir, stage) if include_worker else None
    killed = kill_recorded(heartbeat_path(job_dir, stage), include_worker=False, work_dir=work_dir)
    if worker is None:
        return killed
    return killed + kill_identity(worker, host=worker["host"], work_dir=work_dir)


class Dispatcher:
    """Owns the two pools and the units running on them."""

    def __init__(self, settings: Settings, executor_factory: ExecutorFactory, *,
                 disk_free: Callable[[Path], int], disk_total: Callable[[Path], int],
                 stage_pools: Mapping[Stage, Pool] | None = None) -> None:
        self.settings = settings
        mark_own_workers(settings.work_dir)  # before any pool starts a worker: its kills check the mark
        self.pools: dict[Stage, Pool] = {
            # CONVERT runs on this machine only: its pool starts its first worker when an Office file or
            # an e-mail comes, so a folder of scans pays nothing for it.
            Stage.CONVERT: StagePool("CONVERT", settings.convert_concurrency, executor_factory),
            Stage.PREP: StagePool("PREP", settings.prep_concurrency, executor_factory),
            Stage.OCR: StagePool("OCR", settings.ocr_concurrency, executor_factory),
            **(stage_pools or {}),  # a stage on a Dask cluster
        }
        self.disk_free = disk_free
        self.disk_total = disk_total
        self.units: dict[Future, Unit] = {}  # what each running stage works on
        self._next_disk_warning = 0.0

    def running(self) -> int:
        return len(self.units)

    def busy(self, stage: Stage) -> int:
        return sum(unit.slots for unit in self.units.values() if unit.stage is stage)

    def wait(self, timeout: float) -> None:
        """Sleep until a stage finishes or ``timeout`` passes, whichever comes first."""
        if self.units:
            wait(list(self.units), timeout=timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)

    def unit_of(self, job: Job) -> Unit | None:
        return self.units.get(job.future) if job.future is not None else None

    # ----- plan and submit ---------------------------------------------------------------------

    def plan(self, stage: Stage, ready: list[Job]) -> list[Unit]:
        free = self.pools[stage].workers - self.busy(stage)
        if free <= 0:
            return []
        if stage is not Stage.OCR:
            return [Unit(stage, [job]) for job in ready[:free]]
        units = [Unit(stage, jobs) for jobs in
                 plan_ocr_units(ready, free_slots=free, max_batch_pages=self.settings.ocr_batch_max_pages)]
        if len(units) == 1 and not units[0].batch and not units[0].jobs[0].whole:
            # One document and free slots: a long one is OCRed as page ranges when that is predicted shorter.
            job = units[0].jobs[0]
            units[0].parts = split_parts(DocumentWork.of(job.pages or 1, job.work), spare_slots=free,
                                         free_cores=self.free_cores(), min_pages=self.settings.ocr_split_min_pages,
                                         always=self.settings.ocr_split_parts)
        return units

    def free_cores(self) -> int:
        """The cores no running OCR call's page workers keep busy."""
        busy = sum(unit.busy_cores for unit in self.units.values() if unit.stage is Stage.OCR)
        return max(0, self.settings.cpu_count - busy)

    def room(self, unit: Unit, now: float) -> tuple[str, float]:
        """("now" | "later" | "never", MB the unit needs): room on the work volume beyond MIN_FREE_MB?"""
        s = self.settings
        own = unit.pages * s.ocr_temp_mb_per_page if unit.stage is Stage.OCR else 0.0
        reserved = sum(u.pages * s.ocr_temp_mb_per_page for u in self.units.values() if u.stage is Stage.OCR)
        free_mb = self.disk_free(s.work_dir) / MB
        if free_mb - reserved - own >= s.min_free_mb:
            return "now", own
        if own + s.min_free_mb > self.disk_total(s.work_dir) / MB:
            return "never", own
        self.warn_disk(f"{unit.stage.value} of {unit.pages} page(s)", reserved + own, now)
        return "later", own

    def warn_disk(self, what: str, need_mb: float, now: float) -> None:
        if now >= self._next_disk_warning:
            self._next_disk_warning = now + DISK_WARNING_EVERY
            log.warning("waiting for disk space: %s needs %.0f MB plus MIN_FREE_MB=%d, %.0f MB free in %s",
                        what, need_mb, self.settings.min_free_mb, self.disk_free(self.settings.work_dir) / MB,
                        self.settings.work_dir)

    def submit(self, unit: Unit, now: float, *, running_together: int) -> None:
        """Start the unit; the attempt is counted only once the pool has taken it."""
        stage, pool, first = unit.stage, self.pools[unit.stage], unit.jobs[0]
        attempts = {job.key: {**job.attempts, stage.value: job.attempts[stage.value] + 1} for job in unit.jobs}
        for job in unit.jobs:
            # A previous attempt's heartbeat is not this one's: what it names goes with it, killed here
            # when it runs here, else by its own worker, asked through the job folder.
            if heartbeat_path(job.dir, stage).exists():
                request_cancel(job.dir, stage, up_to_attempt=job.attempts[stage.value], reason="a new attempt starts")
            if pool.local:
                kill_stage(job.dir, stage, include_worker=False)
            heartbeat_path(job.dir, stage).unlink(missing_ok=True)
        jobs = page_workers(self.settings.cpu_count, self.pools[Stage.OCR].workers, running_together)
        if stage is Stage.CONVERT:
            future = pool.submit(run_convert, self.settings, first.dir, attempts=attempts[first.key])
        elif stage is Stage.PREP:
            future = pool.submit(run_prep, self.settings, first.dir, attempts=attempts[first.key])
        elif unit.batch:
            batch_dir = self.settings.work_dir / f"{BATCH_PREFIX}{uuid.uuid4().hex[:12]}"
            future = pool.submit(run_ocr_batch, self.settings, batch_dir,
                                 [(j.dir, j.pages or 1, attempts[j.key]) for j in unit.jobs], jobs=jobs)
        elif unit.parts > 1:
            # Each range's call gets the page workers of one of ``parts`` calls running together.
            jobs = page_workers(self.settings.cpu_count, self.pools[Stage.OCR].workers, unit.parts)
            future = pool.submit(run_ocr_split, self.settings, first.dir, pages=first.pages or 1, parts=unit.parts,
                                 jobs=jobs, attempts=attempts[first.key])
        else:
            future = pool.submit(run_ocr, self.settings, first.dir, pages=first.pages or 1, jobs=jobs,
                                 attempts=attempts[first.key])
        unit.page_workers = jobs if stage is Stage.OCR else 0
        self.units[future] = unit
        for job in unit.jobs:
            # The worker records SUBMITTED and RUNNING in one write as it starts: no write here.
            job.attempts = attempts[job.key]
            job.state = submitted_state(stage)
            job.submitted_at = now
            job.future = future
            log.debug("submitted %s attempt %d%s", stage.value, job.attempts[stage.value],
                      f" in a batch of {len(unit.jobs)}" if unit.batch else
                      f" as {unit.parts} page ranges" if unit.parts > 1 else "",
                      extra=job_context(job.key, stage.value, job.attempts[stage.value]))

    # ----- collect and abandon -------------------------------------------------------------------

    def collect(self) -> list[tuple[Future, Unit, list[StageOutcome]]]:
        """The outcomes of the units that ended; a dead worker's unit gets outcomes made here."""
        ended = [(future, self.units.pop(future)) for future in [f for f in self.units if f.done()]]
        broken = {unit.stage for future, unit in ended
                  if not future.cancelled() and isinstance(future.exception(), BrokenExecutor)}
        culprits = {stage: self.pools[stage].died_on_their_own() for stage in broken}
        results = [(future, unit, self._outcomes_of(future, unit, culprits)) for future, unit in ended]
        for stage in broken:
            log.warning("a %s worker process died; starting a new pool", stage.value)
            self.pools[stage].rebuild()
        return results

    def _outcomes_of(self, future: Future, unit: Unit, culprits: dict[Stage, set[int] | None]) -> list[StageOutcome]:
        if future.cancelled():  # its pool was replaced before a worker took it
            return self._failed(unit, "its pool was replaced before it started", free=True)
        exc = future.exception()
        if exc is None:
            result = future.result()
            return result if unit.batch else [result]
        if isinstance(exc, WorkerSetupError):  # a cluster worker set up wrong: not the file's fault
            log.error("a %s worker cannot run stages: %s", unit.stage.value, exc)
            return self._failed(unit, f"worker set-up: {exc}", free=True)
        if not isinstance(exc, BrokenExecutor):  # e.g. an unpicklable result: retried, then reported
            return self._failed(unit, f"worker failed: {type(exc).__name__}: {exc}")
        dead = culprits.get(unit.stage)
        outcomes = []
        for job in unit.jobs:
            worker = worker_of(job.dir, unit.stage)
            # Its tools run in their own session: they outlive the worker unless killed here.
            kill_stage(job.dir, unit.stage, include_worker=True)
            own = dead is None or (worker is not None and worker.get("pid") in dead)
            reason = DIED if own else f"another {unit.stage.value} worker died; retried without counting"
            outcomes += self._failed(Unit(unit.stage, [job]), reason, free=not own, batch=unit.batch)
        return outcomes

    @staticmethod
    def _failed(unit: Unit, reason: str, *, free: bool = False, batch: bool | None = None) -> list[StageOutcome]:
        batch = unit.batch if batch is None else batch
        if batch:  # perhaps one member's fault: each is retried alone
            reason = f"batch failed ({reason}); retrying each alone"
        return [StageOutcome(unit.stage, False, 0.0, {}, reason=reason, batch_failure=batch, free=free)
                for _ in unit.jobs]

    def abandon(self, job: Job, stage: Stage) -> list[Job]:
        """A stalled job's unit: kill its worker and tools; returns the batch mates, to retry alone."""
        unit = self.units.pop(job.future, None) if job.future is not None else None
        members = unit.jobs if unit else [job]
        pool = self.pools[stage]
        for member in members:  # obeyed by the worker's heartbeat thread, on whichever machine it runs
            request_cancel(member.dir, stage, up_to_attempt=member.attempts[stage.value], reason="stalled")
        if not pool.local:  # another machine's processes are never reached from here
            if job.future is not None:
                job.future.cancel()
            log.warning("abandoned a stalled %s stage; its worker was asked to stop it", stage.value,
                        extra=job_context(job.key, stage.value, job.attempts[stage.value]))
            return [mate for mate in members if mate is not job]
        killed = [pid for member in members for pid in kill_stage(member.dir, stage, include_worker=True)]
        if not killed:  # nothing of it runs that we can name: a wedged pool is replaced
            pool.rebuild()
        log.warning("abandoned a stalled %s stage; killed %s", stage.value, killed or "nothing",
                    extra=job_context(job.key, stage.value, job.attempts[stage.value]))
        return [mate for mate in members if mate is not job]
