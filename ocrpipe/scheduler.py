"""The scheduler: ``tick(now)`` admits, dispatches, collects, reaps stale work and publishes;
``run`` (in runner.py) only loops it."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from ocrpipe.config import Settings
from ocrpipe.duplicates import hold_duplicate, held_keys
from ocrpipe.fsutil import move_replacing, remove_tree, sha256_file
from ocrpipe.heartbeat import heartbeat_path, is_heartbeat_stale, kill_recorded
from ocrpipe.intake import Intake, StagedFile, staged_leftovers, unstage
from ocrpipe.intake import stage as stage_file
from ocrpipe.indexrebuild import open_run_index  # issue 12: the job index in SQLite
from ocrpipe.logs import job_context
from ocrpipe.metrics import load_metrics, set_gauge, update_metrics, write_metrics
from ocrpipe.model import (
    RUNNING_STATES, SUBMITTED_STATES, JobState, Stage, failure_state, make_job_key, retry_delay, retry_state,
    stage_of, submitted_state,
)
from ocrpipe.batching import page_workers, plan_ocr_units
from ocrpipe.pools import ExecutorFactory, StagePool
from ocrpipe.publish import drop_publish_temps, publish_done, publish_error
from ocrpipe.stages.batch import run_ocr_batch
from ocrpipe.outcome import READY_STATES, StageOutcome, mark_done, mark_failed
from ocrpipe.stages.common import FINAL_PDF
from ocrpipe.stages.ocr import run_ocr
from ocrpipe.stages.prep import run_prep
from ocrpipe.store import (
    new_state_record, read_state, transition, update_state, write_new_state,
)

log = logging.getLogger("ocrpipe.scheduler")

FAILED_STATES = frozenset({JobState.PREP_ERROR, JobState.PREP_TIMEOUT, JobState.OCR_ERROR, JobState.OCR_TIMEOUT})
DISK_WARNING_EVERY = 60.0
BATCH_PREFIX = ".batch-"
STAGE_LIMIT_MARGIN = 30.0  # the worker's own tool time limit should fire first
MB = 2**20


def work_volume_free(path: Path) -> int:
    return shutil.disk_usage(path).free


@dataclass
class Job:
    """A job in flight, as the scheduler tracks it; state.json stays the record of truth."""

    key: str
    dir: Path
    state: JobState
    pages: int | None = None
    attempts: dict[str, int] = field(default_factory=lambda: {"PREP": 0, "OCR": 0})
    future: Future | None = None
    submitted_at: float = 0.0
    not_before: float = 0.0
    free_attempts: int = 0  # attempts that failed for reasons not the file's: a full disk, a batch
    solo: bool = False  # never batched: its batch failed, or a batch would drop part of it (bookmarks…)
    seq: int = 0

    @property
    def in_stage(self) -> bool:
        return self.state in SUBMITTED_STATES or self.state in RUNNING_STATES


@dataclass
class Unit:
    """One submitted stage: a single job, or an OCR batch of several."""

    stage: Stage
    jobs: list[Job]

    @property
    def batch(self) -> bool:
        return len(self.jobs) > 1


class Scheduler:
    def __init__(self, settings: Settings, *, profile: dict[str, Any], executor_factory: ExecutorFactory,
                 disk_free: Callable[[Path], int] = work_volume_free) -> None:
        self.settings = settings
        self.profile = profile
        self.pools = {
            Stage.PREP: StagePool("PREP", settings.prep_concurrency, executor_factory),
            Stage.OCR: StagePool("OCR", settings.ocr_concurrency, executor_factory),
        }
        self.disk_free = disk_free
        self.intake = Intake(settings.in_dir, settings.stable_seconds)
        self.jobs: dict[str, Job] = {}
        self.units: dict[Future, Unit] = {}  # what each running stage works on
        self.errors_this_run = 0
        self.admitting = True
        self._seq = 0
        self._next_poll = 0.0
        self._next_disk_warning = 0.0
        self._written_metrics: dict[str, Any] = {}
        self._next_metrics_write = 0.0
        self._started = False

    # ----- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        for folder in (s.in_dir, s.out_dir, s.archive_dir, s.error_dir, s.work_dir, s.hold_dir, s.index_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.index = open_run_index(s, self.profile)  # issue 12: imports a leftover jobs.jsonl once
        self.held = held_keys(s.hold_dir)
        self.metrics = load_metrics(s.index_dir)
        self._started = True
        self._resume_work()
        for staged in staged_leftovers(s.in_dir):
            self._take_in(staged)

    def warm_pools(self) -> None:
        """Start the PREP workers now, so the first file does not wait for one; OCR workers start when
        needed, so their start-up (pikepdf, Pillow) does not compete with the first OCR for the cores."""
        self.pools[Stage.PREP].warm()

    def close(self, *, wait: bool = True) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=wait)
        if self._started:
            self.index.close()  # issue 12

    def stop_admitting(self) -> None:
        """First step of a graceful stop: take nothing new, start no new stage."""
        self.admitting = False

    def running(self) -> int:
        """Stages running: a batch of documents counts once."""
        return len(self.units)

    def idle(self) -> bool:
        """Nothing in flight and nothing waiting in in/: ``run --once`` may stop. Files another
        program keeps locked are left for the next run."""
        return not self.jobs and self.intake.pending == 0

    def wait(self, timeout: float) -> None:
        """Sleep until a stage finishes or ``timeout`` passes, whichever comes first."""
        if self.units:
            wait(list(self.units), timeout=timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)

    # ----- one step -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if not self._started:
            self.start()
        self._collect(now)
        self.check_stale_jobs(self.jobs.values(), self.settings.job_timeout_seconds, now=now)
        if self.admitting:
            if now >= self._next_poll:
                self._next_poll = now + self.settings.poll_seconds
                self._admit(now)
            for stage in (Stage.PREP, Stage.OCR):
                self._dispatch(stage, now)
        running = self.running()
        set_gauge(self.metrics, "jobs_running", running)
        set_gauge(self.metrics, "jobs_queued", len(self.jobs) + self.intake.pending - running)
        # Rewritten whenever a counter moved, and at least every POLL_SECONDS for a fresh updatedAt.
        counters = {k: v for k, v in self.metrics.items() if k != "updatedAt"}
        if counters != self._written_metrics or now >= self._next_metrics_write:
            write_metrics(self.metrics, self.settings.index_dir)
            self._written_metrics = counters
            self._next_metrics_write = now + self.settings.poll_seconds

    # ----- admit ----------------------------------------------------------------------------------

    def _disk_ok(self, need_mb: float, now: float, what: str) -> bool:
        """Room on the work volume for ``need_mb`` beyond MIN_FREE_MB? Warns now and then if not."""
        free_mb = self.disk_free(self.settings.work_dir) / MB
        if free_mb - need_mb >= self.settings.min_free_mb:
            return True
        if now >= self._next_disk_warning:
            self._next_disk_warning = now + DISK_WARNING_EVERY
            log.warning("waiting for disk space: %s needs %.0f MB plus MIN_FREE_MB=%d, %.0f MB free in %s",
                        what, need_mb, self.settings.min_free_mb, free_mb, self.settings.work_dir)
        return False

    def _admit(self, now: float) -> None:
        room = max(0, self.settings.max_jobs_in_flight - len(self.jobs))
        if room and not self._disk_ok(0, now, "new files"):
            room = 0
        # Polled even when full, so stability clocks keep running.
        for candidate in self.intake.poll(now, limit=room):
            staged = stage_file(candidate, self.settings.in_dir)
            if staged is None:
                self.intake.block(candidate.path)
                continue
            self.intake.forget(candidate.path)
            self._take_in(staged)

    def known(self, job_key: str) -> bool:
        return job_key in self.jobs or job_key in self.held or self.index.is_done(job_key)

    def _take_in(self, staged: StagedFile) -> None:
        """Hash the staged file and either start its job or hold it as a duplicate."""
        file_hash = sha256_file(staged.path)
        profile_hash, key = make_job_key(file_hash, self.profile)
        resumed = self.jobs.get(key)
        if resumed is not None and resumed.state is JobState.DISCOVERED and not (resumed.dir / "input").exists():
            # A crash came between writing the job's state and moving its file in: finish the move.
            move_replacing(staged.path, resumed.dir / "input", staged.name)
            unstage(staged)
            return
        if self.known(key):
            hold_duplicate(staged.path, relpath=staged.relpath, job_key=key, hold_dir=self.settings.hold_dir,
                           reason="the same file was already processed with the same settings")
            unstage(staged)
            self.held.add(key)
            update_metrics(self.metrics, "duplicates_held")
            log.info("duplicate held: %s", staged.relpath, extra=job_context(key))
            return
        job_dir = self.settings.work_dir / key
        record = new_state_record(job_key=key, run_id=uuid.uuid4().hex, file_hash=file_hash,
                                  profile_hash=profile_hash, source_name=staged.name,
                                  source_relpath=staged.relpath, size=staged.size)
        write_new_state(job_dir, record)  # the intent first: a crash now leaves a resumable job
        move_replacing(staged.path, job_dir / "input", staged.name)
        unstage(staged)
        self._track(Job(key, job_dir, JobState.DISCOVERED))
        log.info("new job for %s", staged.relpath, extra=job_context(key))

    def _track(self, job: Job) -> None:
        self._seq += 1
        job.seq = self._seq
        self.jobs[job.key] = job

    # ----- dispatch -----------------------------------------------------------------------------

    def _ocr_reserved_mb(self) -> float:
        """Temp space the running OCR stages may still claim (ocrmypdf: about OCR_TEMP_MB_PER_PAGE a page)."""
        return sum((j.pages or 1) * self.settings.ocr_temp_mb_per_page
                   for unit in self.units.values() if unit.stage is Stage.OCR for j in unit.jobs)

    def _dispatch(self, stage: Stage, now: float) -> None:
        busy = sum(1 for unit in self.units.values() if unit.stage is stage)
        free = self.pools[stage].workers - busy
        if free <= 0:
            return
        ready = sorted((j for j in self.jobs.values()
                        if j.future is None and j.state in READY_STATES[stage] and j.not_before <= now),
                       key=lambda j: j.seq)
        if stage is Stage.OCR:
            planned = plan_ocr_units(ready, free_slots=free, max_batch_pages=self.settings.ocr_batch_max_pages)
        else:
            planned = [[job] for job in ready[:free]]
        for jobs in planned:
            pages = sum(j.pages or 1 for j in jobs)
            need = self._ocr_reserved_mb() + pages * self.settings.ocr_temp_mb_per_page if stage is Stage.OCR else 0
            if not self._disk_ok(need, now, f"{stage.value} of {pages} page(s)"):
                return  # in order: a big document is not overtaken for ever by small ones
            self._submit(Unit(stage, jobs), now, running_together=busy + len(planned))

    def _submit(self, unit: Unit, now: float, *, running_together: int) -> None:
        stage = unit.stage
        for job in unit.jobs:
            # The worker records SUBMITTED and RUNNING in one write as it starts: no write here.
            job.attempts[stage.value] += 1
            job.state = submitted_state(stage)
            job.submitted_at = now
            heartbeat_path(job.dir, stage).unlink(missing_ok=True)  # a previous attempt's is not this one's
        jobs = page_workers(self.settings.cpu_count, self.pools[Stage.OCR].workers, running_together)
        pool = self.pools[stage]
        first = unit.jobs[0]
        if stage is Stage.PREP:
            future = pool.submit(run_prep, self.settings, first.dir, attempts=dict(first.attempts))
        elif unit.batch:
            batch_dir = self.settings.work_dir / f"{BATCH_PREFIX}{uuid.uuid4().hex[:12]}"
            future = pool.submit(run_ocr_batch, self.settings, batch_dir,
                                 [(j.dir, j.pages or 1, dict(j.attempts)) for j in unit.jobs], jobs=jobs)
        else:
            future = pool.submit(run_ocr, self.settings, first.dir, pages=first.pages or 1, jobs=jobs,
                                 attempts=dict(first.attempts))
        self.units[future] = unit
        for job in unit.jobs:
            job.future = future
            log.debug("submitted %s attempt %d%s", stage.value, job.attempts[stage.value],
                      f" in a batch of {len(unit.jobs)}" if unit.batch else "",
                      extra=job_context(job.key, stage.value, job.attempts[stage.value]))

    # ----- collect ------------------------------------------------------------------------------

    def _collect(self, now: float) -> None:
        broken: set[Stage] = set()
        for future in [f for f in self.units if f.done()]:
            unit = self.units.pop(future)
            outcomes, ran = self._outcomes_of(future, unit, broken)
            for job, outcome in zip(unit.jobs, outcomes):
                if job.future is not future:
                    continue  # already given up on (stale heartbeat)
                job.future = None
                if outcome.ok:
                    self._succeeded(job, outcome)
                else:
                    # A worker that reported back recorded its failure; one that died could not.
                    self._failed(job, outcome, now, recorded=ran)
        for stage in broken:
            log.warning("a %s worker process died; starting a new pool", stage.value)
            self.pools[stage].rebuild()

    def _outcomes_of(self, future: Future, unit: Unit, broken: set[Stage]) -> tuple[list[StageOutcome], bool]:
        """The unit's outcomes, and whether the worker itself reported them."""
        try:
            result = future.result()
            return (result if unit.batch else [result]), True
        except BrokenExecutor:
            broken.add(unit.stage)
            reason = "the worker process died (crash or killed)"
        except Exception as exc:  # noqa: BLE001 — e.g. an unpicklable result: retried, then reported
            reason = f"worker failed: {type(exc).__name__}: {exc}"
        if unit.batch:  # perhaps one member's fault: each is retried alone
            reason = f"batch of {len(unit.jobs)} documents failed ({reason}); retrying each alone"
        return [StageOutcome(unit.stage, False, 0.0, {}, reason=reason, batch_failure=unit.batch)
                for _ in unit.jobs], False

    def _succeeded(self, job: Job, outcome: StageOutcome) -> None:
        """The worker has recorded it (and, after OCR, published): only the scheduler's books remain."""
        ctx = job_context(job.key, outcome.stage.value, job.attempts[outcome.stage.value])
        if outcome.stage is Stage.PREP:
            job.pages = int(outcome.fields["pages"])
            job.state = JobState.PREP_DONE
            solo_reason = outcome.fields.get("soloReason")
            job.solo = job.solo or bool(solo_reason)
            log.info("prepared %d page(s) in %.1fs%s", job.pages, outcome.seconds,
                     f"; OCRed alone, since a batch would drop its {solo_reason}" if solo_reason else "", extra=ctx)
            return
        record = outcome.fields["record"]
        self._finish(job, record, "DONE")
        update_metrics(self.metrics, "jobs_done")
        update_metrics(self.metrics, "pages_done", record.get("pages") or 0)
        log.info("done: %s -> %s", record["source"]["relpath"], record["output"], extra=ctx)

    def _failed(self, job: Job, outcome: StageOutcome, now: float, *, recorded: bool = False) -> None:
        stage = outcome.stage
        attempt = job.attempts[stage.value]
        ctx = job_context(job.key, stage.value, attempt)
        if not recorded:
            update_state(job.dir, lambda r: mark_failed(r, outcome, attempts=job.attempts))
        job.state = failure_state(stage, timeout=outcome.timeout)
        if outcome.timeout:
            update_metrics(self.metrics, "timeouts")
        if outcome.disk_full:
            job.free_attempts += 1  # waiting for space is not the file's fault: no attempt used up
            update_metrics(self.metrics, "disk_errors")
        if outcome.batch_failure:
            job.free_attempts += 1
            job.solo = True
        limit = self.settings.max_attempts_prep if stage is Stage.PREP else self.settings.max_attempts_ocr
        if outcome.transient and attempt - job.free_attempts < limit:
            counted = attempt - job.free_attempts
            delay = 0.0 if outcome.batch_failure else retry_delay(counted, self.settings.retry_backoff_seconds)
            transition(job.dir, retry_state(stage))
            job.state = retry_state(stage)
            job.not_before = now + delay
            update_metrics(self.metrics, "retries")
            log.warning("%s failed (%s); retry in %.0fs", stage.value, outcome.reason, delay, extra=ctx)
            return
        self._give_up(job, outcome.reason, ctx)

    def _give_up(self, job: Job, reason: str, ctx: dict[str, Any]) -> None:
        folder = publish_error(self.settings, job.dir, read_state(job.dir))
        record = transition(job.dir, JobState.ERROR, note=reason)
        self._finish(job, record, "ERROR", errorDir=str(folder))
        self.errors_this_run += 1
        update_metrics(self.metrics, "jobs_error")
        log.error("failed for good: %s: %s (original in %s)", record["source"]["relpath"], reason, folder,
                  extra=ctx)

    def _finish(self, job: Job, record: dict[str, Any], state: str, **extra: Any) -> None:
        self.index.record({
            "jobKey": job.key, "runId": record["runId"], "state": state, "source": record["source"]["relpath"],
            "output": record.get("output"), "archived": record.get("archived"), "pages": record.get("pages"),
            "kind": record.get("kind"), "pdfa": record.get("pdfa"), "batchSize": record.get("batchSize"),
            "attempts": record.get("attempts"), "timings": record.get("timings"),
            "reason": (record.get("lastError") or {}).get("reason") if state == "ERROR" else None,
            "code": (record.get("lastError") or {}).get("exitCode") if state == "ERROR" else None,  # issue 12
            "createdAt": record.get("createdAt"), "finishedAt": record["updatedAt"], **extra,
        })
        del self.jobs[job.key]
        remove_tree(job.dir)

    # ----- lost workers -----------------------------------------------------------------------

    def check_stale_jobs(self, in_flight: Iterable[Job], timeout_s: float, *, now: float | None = None) -> list[Job]:
        """Jobs in a stage whose heartbeat went quiet, or that ran past the stage's limit: kill what
        the heartbeat names, record a timeout, retry."""
        now = time.monotonic() if now is None else now
        stale = []
        for job in list(in_flight):
            stage = stage_of(job.state)
            if not job.in_stage or stage is None:
                continue
            hb = heartbeat_path(job.dir, stage)
            remaining = max(0.0, 2 * timeout_s - (now - job.submitted_at))
            limit = self._stage_limit(job, stage)
            if is_heartbeat_stale(hb, timeout_s, absent_timeout_s=remaining):
                reason = f"heartbeat stale after {timeout_s:g}s"
            elif now - job.submitted_at > limit + STAGE_LIMIT_MARGIN:
                reason = f"{stage.value} ran longer than its limit of {limit:g}s"
            else:
                continue
            killed = kill_recorded(hb, include_worker=True)
            log.warning("%s; killed %s", reason, killed or "nothing",
                        extra=job_context(job.key, stage.value, job.attempts[stage.value]))
            if job.future is not None:
                self._abandon_unit(job, now)
            job.future = None
            self._failed(job, StageOutcome(stage, False, now - job.submitted_at, {}, timeout=True, reason=reason), now)
            stale.append(job)
        return stale

    def _stage_limit(self, job: Job, stage: Stage) -> float:
        """The whole stage's wall-clock limit (the worker also limits each tool call)."""
        if stage is Stage.PREP:
            return self.settings.prep_timeout_seconds
        unit = self.units.get(job.future) if job.future is not None else None
        pages = sum(j.pages or 1 for j in unit.jobs) if unit else (job.pages or 1)
        return self.settings.ocr_timeout_for(pages)

    def _abandon_unit(self, job: Job, now: float) -> None:
        """A stale job's worker is gone or wedged: start a fresh pool; its batch mates retry alone."""
        unit = self.units.pop(job.future, None) if job.future is not None else None
        self.pools[stage_of(job.state) or Stage.OCR].rebuild()
        for mate in unit.jobs if unit else []:
            if mate is not job and mate.future is not None:
                mate.future = None
                self._failed(mate, StageOutcome(unit.stage, False, 0.0, {}, batch_failure=True,
                                                reason="a document in the same batch stalled; retrying alone"), now)

    # ----- restart --------------------------------------------------------------------------------

    def _resume_work(self) -> None:
        """Pick up what a previous run left in work/: kill its leftover tools, finish or retry each job."""
        for batch_dir in self.settings.work_dir.glob(f"{BATCH_PREFIX}*"):
            remove_tree(batch_dir)  # its members retry from their own state
        for job_dir in sorted(p for p in self.settings.work_dir.iterdir() if p.is_dir() and "__" in p.name):
            for stage in Stage:
                kill_recorded(heartbeat_path(job_dir, stage), include_worker=True)
            remove_tree(job_dir / "tmp")
            try:
                record = read_state(job_dir)
            except (OSError, ValueError):
                log.error("cannot read %s; left as it is", job_dir / "state.json")
                continue
            self._resume_job(job_dir, record)

    def _resume_job(self, job_dir: Path, record: dict[str, Any]) -> None:
        state = JobState(record["state"])
        job = Job(record["jobKey"], job_dir, state, pages=record.get("pages"), attempts=dict(record["attempts"]),
                  solo=bool(record.get("soloReason")))
        self._track(job)
        stage = stage_of(state)
        ctx = job_context(job.key, stage.value if stage else None)
        if state is JobState.OCR_RUNNING and (job_dir / FINAL_PDF).is_file():
            # OCR had finished (final.pdf is renamed into place only once checked): just publish.
            done = StageOutcome(Stage.OCR, True, 0.0, {"pdfa": record.get("pdfa")})
            record = publish_done(self.settings, job_dir, record, lambda r: mark_done(r, done))
            self._succeeded(job, replace(done, fields={"record": record}))
        elif job.in_stage:
            assert stage is not None
            self._failed(job, StageOutcome(stage, False, 0.0, {}, reason="interrupted by a restart of ocrpipe"), 0.0)
        elif state in FAILED_STATES:
            assert stage is not None
            error = record.get("lastError") or {}
            limit = self.settings.max_attempts_prep if stage is Stage.PREP else self.settings.max_attempts_ocr
            if record.get("errorDir") or not error.get("transient", True) or job.attempts[stage.value] >= limit:
                self._give_up(job, error.get("reason", "failed"), ctx)
            else:
                transition(job_dir, retry_state(stage))
                job.state = retry_state(stage)
        elif state is JobState.DONE:
            drop_publish_temps(self.settings, record)
            self._finish(job, record, state.value)
        elif state is JobState.ERROR:
            self._finish(job, record, state.value)
