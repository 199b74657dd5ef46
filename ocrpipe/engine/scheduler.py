"""The scheduler: ``tick(now)`` collects, reaps stale work, admits and dispatches, in that order;
``run`` (in runner.py) only loops it. Each step lives in its own module; this one only orders them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.duplicates.hold import held_keys
from ocrpipe.engine.admission import Admission, UnreadableFile
from ocrpipe.engine.decisions import Decisions
from ocrpipe.engine.dispatcher import Dispatcher, work_volume_free, work_volume_total
from ocrpipe.engine.jobs import Job, Unit
from ocrpipe.engine.lifecycle import Lifecycle
from ocrpipe.engine.pools import ExecutorFactory, Pool, shut_down_together
from ocrpipe.engine.reaper import Reaper
from ocrpipe.engine.recovery import drop_lost_intakes, remove_batch_folders, resume_work
from ocrpipe.engine.refusal import Refusals
from ocrpipe.engine.snapshot import SnapshotHolder
from ocrpipe.errors import Code, SchedulerFault
from ocrpipe.folders.intake import STAGED_JOURNAL, Intake, StagedFile, staged_leftovers, unstage
from ocrpipe.folders.intake import stage as stage_file
from ocrpipe.folders.outcome import READY_STATES, StageOutcome, first_stage
from ocrpipe.folders.sweep import EmptyFolderSweeper
from ocrpipe.index.metrics import load_metrics, set_gauge, write_metrics
from ocrpipe.index.rebuild import open_run_index
from ocrpipe.model import JobState, Stage
from ocrpipe.retention.daily import DailyRetention
from ocrpipe.retention.daily import count as count_retention

__all__ = ["Job", "Scheduler", "Unit"]
log = logging.getLogger("ocrpipe.scheduler")

MAX_FAULTS = 5  # faults outside any job in a row before ocrpipe gives up
FAULT_PAUSE_SECONDS = 2.0  # doubled after each fault in a row
SWEEP_EVERY = 30.0  # seconds between looks at the emptied sub-folders of in/


class Scheduler:
    def __init__(self, settings: Settings, *, profile: dict[str, Any], executor_factory: ExecutorFactory,
                 disk_free: Callable[[Path], int] = work_volume_free,
                 disk_total: Callable[[Path], int] = work_volume_total,
                 stage_pools: Mapping[Stage, Pool] | None = None) -> None:
        self.settings = settings
        self.profile = profile
        self.dispatcher = Dispatcher(settings, executor_factory, disk_free=disk_free, disk_total=disk_total,
                                     stage_pools=stage_pools)
        self.pools = self.dispatcher.pools
        self.intake = Intake(settings.in_dir, settings.stable_seconds, max_depth=settings.intake_max_depth)
        self._looked = False  # the last poll of in/ ended without a fault: only then can in/ count as empty
        self.sweeper = EmptyFolderSweeper(settings.in_dir, empty_for=settings.empty_folder_seconds)
        self._next_sweep = 0.0
        self.jobs: dict[str, Job] = {}
        self.admitting = True
        self._next_poll = 0.0
        self._last_step = float("-inf")  # the ``now`` of the last tick
        self._written_metrics: dict[str, Any] = {}
        self._next_metrics_write = 0.0
        self._started = False
        self.snapshot = SnapshotHolder()  # what the HTTP API reads, published at the end of each step
        self._faults = 0
        self.ticks = 0  # steps taken: the run summary's ticks per second (how many files one scheduler can admit)
        self._paused_until = 0.0
        self._unsettled: list[tuple[Job, StageOutcome]] = []  # outcomes a fault outside the job interrupted
        # Counters kept by other loops (the hooks' delivery), added to metrics.json's before each write.
        self.metric_feeds: list[Callable[[dict[str, Any]], None]] = []
        # ``run --once`` warms the pools at its first job, not at start: a run with nothing to do starts no worker.
        self.warm_at_first_job = False

    # ----- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        for folder in (s.in_dir, s.out_dir, s.archive_dir, s.error_dir, s.work_dir, s.hold_dir, s.index_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.life = Lifecycle(s, open_run_index(s, self.profile), load_metrics(s.index_dir), self.jobs)
        self.index, self.metrics = self.life.index, self.life.metrics
        self.decisions = Decisions(s, self.profile, self.life, held_keys(s.hold_dir))
        self.admission = Admission(s, self.profile, self.life, self.decisions.held, self.decisions.held_one)
        self.reaper = Reaper(s, self.dispatcher, self.life)
        self.refusals = Refusals(s, self.metrics)
        self.retention = DailyRetention(s, self.index)  # once a day, in a thread of its own
        self._started = True
        resume_work(self.life)
        for staged in staged_leftovers(s.in_dir, self._journal):
            self._take_in(staged)
        self.decisions.start()  # before drop_lost_intakes: a reprocessing a crash cut short has its file held
        drop_lost_intakes(self.life)

    @property
    def errors_this_run(self) -> int:
        return self.life.errors_this_run + self.refusals.count if self._started else 0

    def warm_pools(self, *, keep_tools_ready: bool = False) -> None:
        """Start the PREP workers now (a service: at its start; ``run --once``: at its first job), so the first
        file does not wait for one, and one OCR worker: its start-up (pikepdf, Pillow) and its ocrmypdf's,
        started ahead (tools/readytool.py), run beside the first PREP, which no OCR can start before, instead
        of after it. The other OCR workers start when needed, so their start-up does not compete with the
        first OCR for the cores. ``keep_tools_ready``: that worker starts another ocrmypdf after each call
        (a service)."""
        self.pools[Stage.PREP].warm()
        self.pools[Stage.OCR].warm(1, self.settings, keep_tools_ready)

    def close(self, *, wait: bool = True) -> None:
        shut_down_together(self.pools.values(), wait=wait)
        if wait:  # every batch of this run has ended: a batch folder left now is an orphan's
            remove_batch_folders(self.settings.work_dir)
        if self._started:
            self.retention.close(wait=wait)  # stopped early, a pass leaves its plan for the next start
            swept = self.retention.collect()
            if swept is not None:  # a pass that ended after the last step: counted all the same
                count_retention(self.metrics, swept)
                write_metrics(self.metrics, self.settings.index_dir)
            self.index.close()

    def stop_admitting(self) -> None:
        """First step of a graceful stop: take nothing new, start no new stage."""
        self.admitting = False

    def running(self) -> int:
        """Stages running: a batch of documents counts once."""
        return self.dispatcher.running()

    def idle(self) -> bool:
        """Nothing in flight and nothing waiting in in/: ``run --once`` may stop. Files another
        program keeps locked are left for the next run."""
        return not self.jobs and self.intake.pending == 0 and self._looked

    def wait(self, timeout: float, *, now: float | None = None) -> None:
        """Sleep until a stage ends, the next step falls due (see ``next_due``) or ``timeout`` passes.
        ``now``: the clock ``tick`` is given (``run`` gives it time.monotonic())."""
        due = self.next_due()
        if due is not None:
            timeout = min(timeout, max(0.0, due - (time.monotonic() if now is None else now)))
        self.dispatcher.wait(timeout)

    def next_due(self) -> float | None:
        """The next instant a step has something to do without a stage ending: the pause after a fault
        ends, the poll of in/ is due, a file seen there has held still for STABLE_SECONDS, a retry's pause
        ends. Only instants after the last step count: one that passed unused wakes no step again."""
        last = self._last_step
        if self._paused_until > last:
            return self._paused_until
        if not self.admitting:  # stopping: only stage ends matter, and they end the wait themselves
            return None
        due = [self._next_poll, *([self.intake.settles_at] if self.intake.settles_at is not None else []),
               *(job.not_before for job in self.jobs.values() if job.future is None)]
        return min((at for at in due if at > last), default=None)

    # ----- one step -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """One step. A fault in one job sends that job to error/; a fault outside any job (the pools,
        the index) is retried after a pause, and after MAX_FAULTS in a row ends the run."""
        if not self._started:
            self.start()  # a start that fails (the index cannot be opened, say) ends the run with its message
        self._last_step = now
        if now < self._paused_until:
            return
        self.ticks += 1
        try:
            self._step(now)
        except Exception as exc:  # noqa: BLE001 — judged here: retried a few times, then a clear stop
            self._faults += 1
            if self._faults >= MAX_FAULTS:
                raise SchedulerFault(f"ocrpipe failed {self._faults} times in a row outside any job, last: "
                                     f"{type(exc).__name__}: {exc}") from exc
            pause = FAULT_PAUSE_SECONDS * 2 ** (self._faults - 1)
            self._paused_until = now + pause
            log.error("%s: %s; trying again in %gs", type(exc).__name__, exc, pause, exc_info=exc)
            return
        self._faults = 0

    def _step(self, now: float) -> None:
        self.reaper.grace_after_pause(now)
        outcomes = self._unsettled + [(job, outcome) for future, unit, results in self.dispatcher.collect()
                                      for job, outcome in zip(unit.jobs, results, strict=False)
                                      if job.future is future]  # else already given up on (stale heartbeat)
        for n, (job, outcome) in enumerate(outcomes):
            job.future = None
            try:
                self._guarded(job, self.life.settle, job, outcome, now)
            except Exception:
                self._unsettled = outcomes[n:]  # settled again after the pause: settling is read-check-write
                raise
        self._unsettled = []
        self.reaper.check(list(self.jobs.values()), self.settings.job_timeout_seconds, now=now)
        if self.admitting:
            self.decisions.tick()  # after settling: a run that just ended frees the decisions waiting for it
            # Polled every POLL_SECONDS, and as soon as a file seen earlier has held still long enough.
            settled = self.intake.settles_at is not None and now >= self.intake.settles_at
            if now >= self._next_poll or settled:
                self._next_poll = now + self.settings.poll_seconds
                self._admit(now)
            if self.warm_at_first_job and self.jobs:
                self.warm_at_first_job = False
                self.warm_pools()
            for stage in (Stage.CONVERT, Stage.PREP, Stage.OCR):
                self._dispatch(stage, now)
        swept = self.retention.poll(now)
        if swept is not None:
            count_retention(self.metrics, swept)
        self._write_metrics(now)
        # what the HTTP API's threads read, copied from what the scheduler tracks
        self.snapshot.publish(now, jobs=self.jobs.values(), units=self.dispatcher.units.values(), pools=self.pools,
                              metrics=self.metrics, waiting=self.intake.pending, held=len(self.admission.held),
                              admitting=self.admitting)

    def _guarded(self, job: Job, step: Callable[..., None], *args: Any) -> None:
        self.life.guarded(job, step, *args)

    def check_stale_jobs(self, in_flight: Iterable[Job], timeout_s: float, *, now: float | None = None) -> list[Job]:
        return self.reaper.check(in_flight, timeout_s, now=now)

    def _write_metrics(self, now: float) -> None:
        running = sum(len(unit.jobs) for unit in self.dispatcher.units.values())  # documents: a batch of 6 is 6
        set_gauge(self.metrics, "jobs_running", running)
        set_gauge(self.metrics, "jobs_queued", len(self.jobs) + self.intake.pending - running)
        set_gauge(self.metrics, "duplicates_pending", self.decisions.pending_total)
        for feed in self.metric_feeds:
            feed(self.metrics)
        # Rewritten whenever a counter moved, and at least every POLL_SECONDS for a fresh updatedAt.
        counters = {k: v for k, v in self.metrics.items() if k != "updatedAt"}
        if counters != self._written_metrics or now >= self._next_metrics_write:
            write_metrics(self.metrics, self.settings.index_dir)
            self._written_metrics = counters
            self._next_metrics_write = now + self.settings.poll_seconds

    # ----- admit and dispatch ------------------------------------------------------------------------

    def _admit(self, now: float) -> None:
        room = max(0, self.settings.max_jobs_in_flight - len(self.jobs))
        if room and self.dispatcher.disk_free(self.settings.work_dir) / 2**20 < self.settings.min_free_mb:
            self.dispatcher.warn_disk("new files", 0, now)
            room = 0
        self._looked = False
        # Polled even when full, so stability clocks keep running.
        for candidate in self.intake.poll(now, limit=room):
            try:
                staged = stage_file(candidate, self.settings.in_dir, self._journal)
            except (OSError, ValueError) as exc:  # this file's fault (its name, say): it alone goes to error/
                if self.refusals.refuse(candidate.path, candidate.relpath, exc):
                    self.intake.forget(candidate.path)
                else:
                    self.intake.set_aside(candidate)
                continue
            if staged is None:
                self.intake.block(candidate.path)
                continue
            self.intake.forget(candidate.path)
            self.sweeper.note(candidate.path.parent)
            self._take_in(staged)
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            self.sweeper.sweep()
        self._looked = True

    @property
    def _journal(self) -> Path:
        """ocrpipe's record of what it staged, outside in/ where droppers cannot write. It stays with the data
        folder (``state_dir``) even when INDEX_DIR is elsewhere: it names files in in/.ocrpipe-staging/, and
        a journal left behind by a changed INDEX_DIR would leave them there unclaimed."""
        return self.settings.state_dir / STAGED_JOURNAL

    def _take_in(self, staged: StagedFile) -> None:
        try:
            self.admission.take_in(staged)
        except (UnreadableFile, ValueError) as exc:  # it cannot be read, or something of it cannot be handled
            # (a ValueError is never the run's fault): that file alone goes to error/. A job record made for
            # it already is dropped at the next start, as one whose file never arrived.
            cause = exc.__cause__ if isinstance(exc, UnreadableFile) and exc.__cause__ else exc
            if self.refusals.refuse(staged.path, staged.relpath, cause):
                unstage(staged)

    def known(self, job_key: str) -> bool:
        return self.admission.known(job_key)

    def _track(self, job: Job) -> None:
        self.life.track(job)

    def _dispatch(self, stage: Stage, now: float) -> None:
        ready = sorted((j for j in self.jobs.values()
                        if j.future is None and j.state in READY_STATES[stage] and j.not_before <= now
                        and (j.state is not JobState.DISCOVERED or first_stage(j.convert) is stage)),
                       key=lambda j: j.seq)
        planned = self.dispatcher.plan(stage, ready)
        busy = self.dispatcher.busy(stage)
        for unit in planned:
            fits, need = self.dispatcher.room(unit, now)
            if fits == "never":
                self._never_fits(unit, need, now)
                continue  # it blocks nothing behind it
            if fits == "later":
                return  # in order: a big document is not overtaken for ever by small ones
            self.dispatcher.submit(unit, now, running_together=busy + sum(u.slots for u in planned))

    def _never_fits(self, unit: Unit, need_mb: float, now: float) -> None:
        """More than the whole volume holds: a batch is split up; a single document fails for good."""
        for job in unit.jobs:
            if unit.batch:
                job.solo = True
                continue
            job.attempts = {**job.attempts, unit.stage.value: job.attempts[unit.stage.value] + 1}
            reason = (f"needs about {need_mb:.0f} MB of temporary space for OCR, plus MIN_FREE_MB="
                      f"{self.settings.min_free_mb}, more than the whole work volume holds; split it, or give work/ "
                      "a bigger disk")
            self._guarded(job, self.life.settle, job,
                          StageOutcome(unit.stage, False, 0.0, {}, reason=reason, transient=False,
                                       code=Code.DISK_TOO_SMALL.value), now)
