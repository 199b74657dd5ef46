"""Stages whose worker went quiet: found by heartbeat or by the stage's limit, their worker and
tools killed, the job retried. A pause of the scheduler itself (sleep, a clock step) is not taken for
lost workers: running stages get a fresh grace period."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from ocrpipe.config import Settings
from ocrpipe.engine.dispatcher import Dispatcher
from ocrpipe.engine.jobs import Job
from ocrpipe.engine.lifecycle import Lifecycle
from ocrpipe.folders.fileclock import FileClock
from ocrpipe.folders.heartbeat import heartbeat_path, is_heartbeat_stale
from ocrpipe.folders.outcome import READY_STATES, StageOutcome
from ocrpipe.folders.store import read_state
from ocrpipe.model import JobState, Stage, running_state, stage_of, submitted_state

log = logging.getLogger("ocrpipe.reaper")

STAGE_LIMIT_MARGIN = 30.0  # the worker's own tool time limit should fire first


class Reaper:
    def __init__(self, settings: Settings, dispatcher: Dispatcher, life: Lifecycle) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.life = life
        self._last_tick: tuple[float, float] | None = None  # (now, wall clock) of the previous tick
        # Heartbeats are stamped by the volume holding work/ (a file server, for a cluster): their age
        # is judged by its clock, so a skew between machines reaps nothing and hides nothing.
        self.clock = FileClock(settings.work_dir)

    def grace_after_pause(self, now: float) -> None:
        """A PC waking from sleep, or a clock step, makes every heartbeat look old at once: running
        stages get a fresh grace period instead of being reaped."""
        wall, timeout = time.time(), self.settings.job_timeout_seconds
        last, self._last_tick = self._last_tick, (now, wall)
        if last is None:
            return
        gap, wall_gap = now - last[0], wall - last[1]
        if gap > timeout or abs(wall_gap - gap) > timeout:
            log.warning("the scheduler was paused or the clock jumped (%.0fs between steps, wall clock %.0fs); "
                        "running stages get %gs more", gap, wall_gap, timeout)
            for job in self.life.jobs.values():
                if job.in_stage:
                    job.submitted_at, job.grace_until = now, now + timeout

    def check(self, in_flight: Iterable[Job], timeout_s: float, *, now: float | None = None) -> list[Job]:
        """Jobs in a stage whose heartbeat went quiet, or that ran past the stage's limit: kill the
        worker and what it runs, record a timeout, retry. A job whose record shows it has moved on
        (its worker finished, the outcome is on its way) is left alone."""
        now = time.monotonic() if now is None else now
        stale = []
        server_now: float | None = None  # read once per step, and only when a stage runs
        for job in list(in_flight):
            stage = stage_of(job.state)
            if not job.in_stage or stage is None or now < job.grace_until:
                continue
            server_now = self.clock.now() if server_now is None else server_now
            reason = self._stale_reason(job, stage, timeout_s, now, server_now)
            if reason is None or not self._still_in_stage(job, stage):
                continue
            mates = self.dispatcher.abandon(job, stage)
            job.future = None
            self.life.guarded(job, self.life.settle, job, StageOutcome(
                stage, False, now - job.submitted_at, {}, timeout=True, reason=reason), now)
            for mate in mates:
                if mate.future is not None:
                    mate.future = None
                    self.life.guarded(mate, self.life.settle, mate, StageOutcome(
                        stage, False, 0.0, {}, batch_failure=True,
                        reason="a document in the same batch stalled; retrying alone"), now)
            stale.append(job)
        return stale

    def _stale_reason(self, job: Job, stage: Stage, timeout_s: float, now: float, server_now: float) -> str | None:
        remaining = max(0.0, 2 * timeout_s - (now - job.submitted_at))
        if is_heartbeat_stale(heartbeat_path(job.dir, stage), timeout_s, absent_timeout_s=remaining, now=server_now):
            return f"heartbeat stale after {timeout_s:g}s"
        limit = self._stage_limit(job, stage)
        if now - job.submitted_at > limit + STAGE_LIMIT_MARGIN:
            return f"{stage.value} ran longer than its limit of {limit:g}s"
        return None

    @staticmethod
    def _still_in_stage(job: Job, stage: Stage) -> bool:
        try:
            state = JobState(read_state(job.dir)["state"])
        except (OSError, ValueError, KeyError):
            return True
        return state in {submitted_state(stage), running_state(stage)} | READY_STATES[stage]

    def _stage_limit(self, job: Job, stage: Stage) -> float:
        """The whole stage's wall-clock limit (the worker also limits each tool call)."""
        if stage is Stage.CONVERT:
            return self.settings.convert_timeout_seconds
        if stage is Stage.PREP:
            return self.settings.prep_timeout_seconds
        unit = self.dispatcher.unit_of(job)
        return self.settings.ocr_timeout_for(unit.pages if unit else (job.pages or 1))
