"""The scheduler: ``tick(now)`` admits, dispatches, collects and publishes; ``run`` only loops it."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.duplicates import hold_duplicate, held_keys
from ocrpipe.fsutil import move_file, remove_tree, sha256_file
from ocrpipe.intake import Intake, StagedFile, stage, staged_leftovers, unstage
from ocrpipe.jobindex import JobIndex
from ocrpipe.logs import job_context
from ocrpipe.metrics import load_metrics, set_gauge, update_metrics, write_metrics
from ocrpipe.model import (
    SUBMITTED_STATES, RUNNING_STATES, JobState, Stage, failure_state, make_job_key, retry_delay,
    retry_state, stage_of, submitted_state,
)
from ocrpipe.pools import ExecutorFactory, StagePool
from ocrpipe.publish import publish_done, publish_error
from ocrpipe.stages.common import FINAL_PDF, StageOutcome
from ocrpipe.stages.ocr import run_ocr
from ocrpipe.stages.prep import run_prep
from ocrpipe.store import new_state_record, read_state, transition, update_state, write_new_state

log = logging.getLogger("ocrpipe.scheduler")

READY_FOR = {
    Stage.PREP: (JobState.DISCOVERED, JobState.PREP_RETRY),
    Stage.OCR: (JobState.PREP_DONE, JobState.OCR_RETRY),
}


@dataclass
class Job:
    """A job in flight, as the scheduler tracks it; state.json stays the record of truth."""

    key: str
    dir: Path
    state: JobState
    pages: int | None = None
    attempts: dict[str, int] = field(default_factory=lambda: {"PREP": 0, "OCR": 0})
    future: Future | None = None
    not_before: float = 0.0
    seq: int = 0


class Scheduler:
    def __init__(self, settings: Settings, *, profile: dict[str, Any], executor_factory: ExecutorFactory) -> None:
        self.settings = settings
        self.profile = profile
        self.pools = {
            Stage.PREP: StagePool("PREP", settings.prep_concurrency, executor_factory),
            Stage.OCR: StagePool("OCR", settings.ocr_concurrency, executor_factory),
        }
        self.intake = Intake(settings.in_dir, settings.stable_seconds)
        self.jobs: dict[str, Job] = {}
        self.errors_this_run = 0
        self._seq = 0
        self._next_poll = 0.0
        self._started = False

    # ----- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        for folder in (s.in_dir, s.out_dir, s.archive_dir, s.error_dir, s.work_dir, s.hold_dir, s.index_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.index = JobIndex(s.index_dir)
        self.held = held_keys(s.hold_dir)
        self.metrics = load_metrics(s.index_dir)
        self._resume_work()
        for staged in staged_leftovers(s.in_dir):
            self._take_in(staged)
        self._started = True

    def close(self, *, wait: bool = True) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=wait)

    def idle(self) -> bool:
        """Nothing in flight and nothing waiting in in/: ``run --once`` may stop."""
        return not self.jobs and self.intake.pending == 0

    def wait(self, timeout: float) -> None:
        """Sleep until a stage finishes or ``timeout`` passes, whichever comes first."""
        futures = [job.future for job in self.jobs.values() if job.future is not None]
        if futures:
            wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)

    # ----- one step -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if not self._started:
            self.start()
        self._collect(now)
        if now >= self._next_poll:
            self._next_poll = now + self.settings.poll_seconds
            self._admit(now)
        for stage in (Stage.PREP, Stage.OCR):
            self._dispatch(stage, now)
        set_gauge(self.metrics, "jobs_running", sum(1 for j in self.jobs.values() if j.future is not None))
        set_gauge(self.metrics, "jobs_queued", len(self.jobs) + self.intake.pending
                  - self.metrics["jobs_running"])
        write_metrics(self.metrics, self.settings.index_dir)

    # ----- admit ----------------------------------------------------------------------------------

    def _admit(self, now: float) -> None:
        room = self.settings.max_jobs_in_flight - len(self.jobs)
        if room <= 0:
            self.intake.poll(now)  # keep stability clocks running while we are full
            return
        for candidate in self.intake.poll(now):
            if room <= 0:
                break
            staged = stage(candidate, self.settings.in_dir)
            if staged is None:
                continue
            self.intake.forget(candidate.path)
            if self._take_in(staged):
                room -= 1

    def known(self, job_key: str) -> bool:
        return job_key in self.jobs or job_key in self.held or self.index.is_done(job_key)

    def _take_in(self, staged: StagedFile) -> bool:
        """Hash the staged file and either start its job or hold it as a duplicate."""
        file_hash = sha256_file(staged.path)
        profile_hash, key = make_job_key(file_hash, self.profile)
        resumed = self.jobs.get(key)
        if resumed is not None and resumed.state is JobState.DISCOVERED and not (resumed.dir / "input").exists():
            # A crash came between writing the job's state and moving its file in: finish the move.
            move_file(staged.path, resumed.dir / "input", staged.path.name, overwrite=True)
            unstage(staged)
            return True
        if self.known(key):
            hold_duplicate(staged.path, relpath=staged.relpath, job_key=key, hold_dir=self.settings.hold_dir,
                           reason="the same file was already processed with the same settings")
            unstage(staged)
            self.held.add(key)
            update_metrics(self.metrics, "duplicates_held")
            log.info("duplicate held: %s", staged.relpath, extra=job_context(key))
            return False
        job_dir = self.settings.work_dir / key
        record = new_state_record(job_key=key, run_id=uuid.uuid4().hex, file_hash=file_hash,
                                  profile_hash=profile_hash, source_name=staged.path.name,
                                  source_relpath=staged.relpath, size=staged.size)
        write_new_state(job_dir, record)  # the intent first: a crash now leaves a resumable job
        move_file(staged.path, job_dir / "input", staged.path.name, overwrite=True)
        unstage(staged)
        self._track(Job(key, job_dir, JobState.DISCOVERED))
        log.info("new job for %s", staged.relpath, extra=job_context(key))
        return True

    def _track(self, job: Job) -> None:
        self._seq += 1
        job.seq = self._seq
        self.jobs[job.key] = job

    # ----- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, stage: Stage, now: float) -> None:
        pool = self.pools[stage]
        busy = sum(1 for j in self.jobs.values() if j.future is not None and stage_of(j.state) is stage)
        ready = sorted(
            (j for j in self.jobs.values()
             if j.future is None and j.state in READY_FOR[stage] and j.not_before <= now),
            key=lambda j: j.seq,
        )[: max(0, pool.workers - busy)]
        for job in ready:
            self._submit(stage, job, running_together=busy + len(ready))

    def _submit(self, stage: Stage, job: Job, *, running_together: int) -> None:
        job.attempts[stage.value] += 1
        attempts = dict(job.attempts)
        transition(job.dir, submitted_state(stage), attempts=attempts)
        job.state = submitted_state(stage)
        if stage is Stage.PREP:
            job.future = self.pools[stage].submit(run_prep, self.settings, job.dir)
        else:
            # Fewer documents than cores: give each ocrmypdf more page-parallel jobs.
            jobs = max(1, self.settings.cpu_count // max(1, running_together))
            job.future = self.pools[stage].submit(run_ocr, self.settings, job.dir, pages=job.pages or 1, jobs=jobs)
        log.debug("submitted %s attempt %d", stage.value, job.attempts[stage.value],
                  extra=job_context(job.key, stage.value, job.attempts[stage.value]))

    # ----- collect ------------------------------------------------------------------------------

    def _collect(self, now: float) -> None:
        broken: set[Stage] = set()
        for job in [j for j in self.jobs.values() if j.future is not None and j.future.done()]:
            stage = stage_of(job.state)
            assert stage is not None
            outcome = self._outcome_of(job, stage, broken)
            job.future = None
            job.state = JobState(read_state(job.dir)["state"])  # the worker moved it to RUNNING
            if outcome.ok:
                self._succeeded(job, outcome)
            else:
                self._failed(job, outcome, now)
        for stage in broken:
            log.warning("%s worker process died; starting a new pool", stage.value)
            self.pools[stage].rebuild()

    def _outcome_of(self, job: Job, stage: Stage, broken: set[Stage]) -> StageOutcome:
        assert job.future is not None
        try:
            return job.future.result()
        except BrokenExecutor:
            broken.add(stage)
            return StageOutcome(stage, False, 0.0, {}, reason="the worker process died (crash or killed)")
        except Exception as exc:  # noqa: BLE001 — e.g. an unpicklable result: retried, then reported
            return StageOutcome(stage, False, 0.0, {}, reason=f"worker failed: {type(exc).__name__}: {exc}")

    def _succeeded(self, job: Job, outcome: StageOutcome) -> None:
        ctx = job_context(job.key, outcome.stage.value, job.attempts[outcome.stage.value])
        self._log_attempt(job, outcome)
        if outcome.stage is Stage.PREP:
            job.pages = int(outcome.fields["pages"])
            transition(job.dir, JobState.PREP_DONE, pages=job.pages, kind=outcome.fields["kind"])
            job.state = JobState.PREP_DONE
            log.info("prepared %d page(s) in %.1fs", job.pages, outcome.seconds, extra=ctx)
            return
        record = update_state(job.dir, lambda r: r.update(pdfa=outcome.fields.get("pdfa")))
        record = publish_done(self.settings, job.dir, record)
        record = transition(job.dir, JobState.DONE)
        self._finish(job, record, "DONE")
        update_metrics(self.metrics, "jobs_done")
        update_metrics(self.metrics, "pages_done", record.get("pages") or 0)
        log.info("done: %s -> %s", record["source"]["relpath"], record["output"], extra=ctx)

    def _failed(self, job: Job, outcome: StageOutcome, now: float) -> None:
        stage = outcome.stage
        attempt = job.attempts[stage.value]
        ctx = job_context(job.key, stage.value, attempt)
        error = {"stage": stage.value, "attempt": attempt, "reason": outcome.reason,
                 "exitCode": outcome.exit_code, "stderrTail": outcome.stderr_tail, "transient": outcome.transient}
        self._log_attempt(job, outcome)
        transition(job.dir, failure_state(stage, timeout=outcome.timeout), note=outcome.reason, lastError=error)
        limit = self.settings.max_attempts_prep if stage is Stage.PREP else self.settings.max_attempts_ocr
        if outcome.transient and attempt < limit:
            delay = retry_delay(attempt, self.settings.retry_backoff_seconds)
            transition(job.dir, retry_state(stage))
            job.state = retry_state(stage)
            job.not_before = now + delay
            update_metrics(self.metrics, "retries")
            log.warning("%s failed (%s); retry in %.0fs", stage.value, outcome.reason, delay, extra=ctx)
            return
        record = read_state(job.dir)
        folder = publish_error(self.settings, job.dir, record)
        record = transition(job.dir, JobState.ERROR, note=outcome.reason)
        self._finish(job, record, "ERROR", error_dir=str(folder))
        self.errors_this_run += 1
        update_metrics(self.metrics, "jobs_error")
        log.error("failed for good: %s: %s (original in %s)", record["source"]["relpath"], outcome.reason,
                  folder, extra=ctx)

    def _log_attempt(self, job: Job, outcome: StageOutcome) -> None:
        entry = {"stage": outcome.stage.value, "number": job.attempts[outcome.stage.value],
                 "seconds": round(outcome.seconds, 3), "outcome": "ok" if outcome.ok else
                 ("timeout" if outcome.timeout else "error"), "exitCode": outcome.exit_code,
                 "stderrTail": outcome.stderr_tail}

        def mutate(record: dict[str, Any]) -> None:
            record["attemptLog"].append(entry)
            key = f"{outcome.stage.value.lower()}Seconds"
            record["timings"][key] = round(record["timings"].get(key, 0) + outcome.seconds, 3)

        update_state(job.dir, mutate)

    def _finish(self, job: Job, record: dict[str, Any], state: str, **extra: Any) -> None:
        self.index.record({
            "jobKey": job.key, "runId": record["runId"], "state": state, "source": record["source"]["relpath"],
            "output": record.get("output"), "archived": record.get("archived"), "pages": record.get("pages"),
            "kind": record.get("kind"), "attempts": record.get("attempts"), "timings": record.get("timings"),
            "createdAt": record.get("createdAt"),
            "reason": (record.get("lastError") or {}).get("reason") if state == "ERROR" else None,
            "finishedAt": record["updatedAt"], **extra,
        })
        del self.jobs[job.key]
        remove_tree(job.dir)

    # ----- restart --------------------------------------------------------------------------------

    def _resume_work(self) -> None:
        """Pick up the jobs a previous run left in work/; interrupted stages are retried."""
        for job_dir in sorted(p for p in self.settings.work_dir.iterdir() if p.is_dir() and "__" in p.name):
            try:
                record = read_state(job_dir)
            except (OSError, ValueError):
                continue
            state = JobState(record["state"])
            job = Job(record["jobKey"], job_dir, state, pages=record.get("pages"),
                      attempts=dict(record["attempts"]))
            self._track(job)
            stage = stage_of(state)
            if state is JobState.OCR_RUNNING and (job_dir / FINAL_PDF).is_file():
                # OCR had finished (final.pdf is renamed into place only once checked): just publish.
                self._succeeded(job, StageOutcome(Stage.OCR, True, 0.0, {"pdfa": record.get("pdfa")}))
            elif state in SUBMITTED_STATES or state in RUNNING_STATES:
                assert stage is not None
                outcome = StageOutcome(stage, False, 0.0, {}, reason="interrupted by a restart of ocrpipe")
                self._failed(job, outcome, now=0.0)
            elif state in (JobState.PREP_ERROR, JobState.PREP_TIMEOUT, JobState.OCR_ERROR, JobState.OCR_TIMEOUT):
                assert stage is not None
                transition(job_dir, retry_state(stage))
                job.state = retry_state(stage)
            elif state is JobState.DONE:
                self._finish(job, record, "DONE")
            elif state is JobState.ERROR:
                self._finish(job, record, "ERROR")
