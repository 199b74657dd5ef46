"""What an outcome does to a job: done, retried after a pause, or given up to error/. Every change is
read-check-write against state.json under the job's lock; the attempt limit is decided here only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.engine.jobs import Job
from ocrpipe.engine.restarts import end_restart_run, note_restart, restart_attempts
from ocrpipe.engine.splitplan import recorded_work
from ocrpipe.errors import OcrpipeError
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.outbox import write_job_end
from ocrpipe.folders.outcome import LANGUAGE_FIELDS, READY_STATES, RUN_FIDELITY_FIELDS, StageOutcome, mark_failed
from ocrpipe.folders.publish import drop_publish_temps, publish_error
from ocrpipe.folders.store import apply_transition, read_state, update_state
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.metrics import error_counter, update_metrics
from ocrpipe.index.search import PageRecord, load_page_record, store_pages, summary
from ocrpipe.logs import ended_fields, job_context
from ocrpipe.model import (
    JobState,
    Stage,
    failure_state,
    is_legal_transition,
    retry_delay,
    retry_state,
    running_state,
    stage_of,
    submitted_state,
)

log = logging.getLogger("ocrpipe.lifecycle")

# Attempts that do not count (a full disk, a failed batch, another job's dead worker), per stage. Beyond
# this they count: a file whose own unpacking fills the disk ends in error/ instead of retrying for ever.
FREE_ATTEMPTS_LIMIT = 10
DONE_STATE = {Stage.CONVERT: JobState.CONVERT_DONE, Stage.PREP: JobState.PREP_DONE, Stage.OCR: JobState.DONE}


def free_attempts(record: dict[str, Any]) -> dict[str, int]:
    return {"CONVERT": 0, "PREP": 0, "OCR": 0, **(record.get("freeAttempts") or {})}


class Lifecycle:
    """The jobs in flight and the end of each: the only writer of the scheduler's decisions."""

    def __init__(self, settings: Settings, index: JobIndex, metrics: dict[str, Any],
                 jobs: dict[str, Job] | None = None) -> None:
        self.settings = settings
        self.index = index
        self.metrics = metrics
        self.jobs: dict[str, Job] = {} if jobs is None else jobs
        self.errors_this_run = 0
        self._seq = 0

    def track(self, job: Job) -> None:
        self._seq += 1
        job.seq = self._seq
        self.jobs[job.key] = job

    def limit(self, stage: Stage) -> int:
        if stage is Stage.CONVERT:
            return self.settings.max_attempts_convert
        return self.settings.max_attempts_prep if stage is Stage.PREP else self.settings.max_attempts_ocr

    # ----- outcomes ------------------------------------------------------------------------------

    def settle(self, job: Job, outcome: StageOutcome, now: float) -> None:
        """Apply a stage's outcome, checked against the record on disk: what the worker recorded
        stands (it may have finished before dying); an outcome for a job that moved on is dropped."""
        stage = outcome.stage
        verdict: dict[str, Any] = {}
        # A stage the worker recorded as done needs no write (an fsync) before the next stage starts.
        record = update_state(job.dir, lambda r: verdict.update(self._decide(r, job, outcome)), only_changed=True)
        ctx = job_context(job.key, stage.value, record["attempts"][stage.value])
        what = verdict["what"]
        if what == "moved on":
            log.info("dropped a %s outcome: the job is already %s", stage.value, record["state"], extra=ctx)
            return
        if what == "done":
            self._succeeded(job, stage, record, outcome, ctx)
            return
        if what == "ended":  # given up before a fault outside the job interrupted its end
            self.finish(job, record, "ERROR", errorDir=record.get("errorDir"))
            return
        error = record.get("lastError") or {}
        job.state = JobState(record["state"])  # the stage's retry state, or its failure state
        job.attempts = dict(record["attempts"])
        job.solo = job.solo or bool(record.get("batchFailed"))
        job.whole = job.whole or bool(record.get("splitFailed"))
        if outcome.timeout:
            update_metrics(self.metrics, "timeouts")
        if outcome.disk_full:
            update_metrics(self.metrics, "disk_errors")
        if what == "retry":
            job.not_before = now + verdict["delay"]
            update_metrics(self.metrics, "retries")
            log.warning("%s failed (%s); retry in %.0fs", stage.value, error.get("reason"), verdict["delay"], extra=ctx)
            return
        self.give_up(job, error.get("reason", "failed"))

    def _decide(self, record: dict[str, Any], job: Job, outcome: StageOutcome) -> dict[str, Any]:
        stage, state = outcome.stage, JobState(record["state"])
        own = {submitted_state(stage), running_state(stage)} | READY_STATES[stage]
        if state is DONE_STATE[stage]:
            return {"what": "done"}
        if state is JobState.ERROR:
            return {"what": "ended"}
        if state not in own and state not in (failure_state(stage, timeout=False), failure_state(stage, timeout=True)):
            return {"what": "moved on"}
        if state in own:  # the worker did not record an end: the scheduler saw it (died, stalled, restart)
            attempts = {k: max(v, job.attempts.get(k, 0)) for k, v in record["attempts"].items()}
            failed = outcome if not outcome.ok else StageOutcome(
                stage, False, outcome.seconds, {}, reason="the worker reported success that its record lacks")
            mark_failed(record, failed, attempts=attempts)
        if outcome.interrupted:
            note_restart(record, stage)  # costs no attempt; past the limit, the last error says why it ends
        else:
            end_restart_run(record, stage)
        free = free_attempts(record)
        if outcome.free or outcome.batch_failure or outcome.split_failure or outcome.disk_full:
            if free[stage.value] < FREE_ATTEMPTS_LIMIT:
                free[stage.value] += 1
                record["freeAttempts"] = free
            elif outcome.disk_full and record.get("lastError"):
                record["lastError"]["reason"] += (f" (after {FREE_ATTEMPTS_LIMIT} attempts that did not count: "
                                                  "the file may need more space than the volume has)")
        if outcome.batch_failure:
            record["batchFailed"] = True  # OCRed alone from now on, across restarts too
        if outcome.split_failure:
            record["splitFailed"] = True  # OCRed whole from now on, across restarts too
        counted = record["attempts"][stage.value] - free[stage.value] - restart_attempts(record)[stage.value]
        if (record.get("lastError") or {}).get("transient", True) and counted < self.limit(stage):
            no_pause = outcome.batch_failure or outcome.split_failure or outcome.free or outcome.interrupted
            delay = 0.0 if no_pause else retry_delay(counted, self.settings.retry_backoff_seconds)
            apply_transition(record, retry_state(stage))
            return {"what": "retry", "delay": delay}
        return {"what": "give up"}

    def _succeeded(self, job: Job, stage: Stage, record: dict[str, Any], outcome: StageOutcome,
                   ctx: dict[str, Any]) -> None:
        """The worker has recorded it (and, after OCR, published): only the scheduler's books remain."""
        job.attempts = dict(record["attempts"])
        if stage is Stage.CONVERT:
            job.state = JobState.CONVERT_DONE
            update_metrics(self.metrics, "conversions_done")
            log.info("converted (%s) in %.1fs: %d part(s)%s", record.get("convert"), outcome.seconds,
                     len(record.get("convertedParts") or []),
                     f"; left out: {len(record['convertSkipped'])}" if record.get("convertSkipped") else "",
                     extra=ctx)
            return
        if stage is Stage.PREP:
            job.pages = int(record["pages"])
            job.state = JobState.PREP_DONE
            solo_reason = record.get("soloReason")
            gs_reason = record.get("ghostscriptReason")  # never batched with others
            job.solo = job.solo or bool(solo_reason) or bool(gs_reason)
            job.batch_group = record.get("batchGroup")
            job.work = recorded_work(record.get("pageWork"))
            alone = (f"; OCRed alone, since a batch would drop its {solo_reason}" if solo_reason else
                     f"; OCRed alone, since its PDF/A needs Ghostscript ({gs_reason})" if gs_reason else "")
            log.info("prepared %d page(s) in %.1fs%s", job.pages, outcome.seconds, alone, extra=ctx)
            return
        drop_publish_temps(self.settings, record)  # left when the worker died between DONE and dropping them
        self.finish(job, record, "DONE")
        update_metrics(self.metrics, "jobs_done")
        update_metrics(self.metrics, "pages_done", record.get("pages") or 0)
        log.info("done: %s -> %s", record["source"]["relpath"], record["output"],
                 extra={**ctx, **ended_fields(record, "job_done")})

    def guarded(self, job: Job, step: Callable[..., None], *args: Any) -> None:
        """Run one job's step; an unexpected exception sends that job to error/, never stops the run."""
        try:
            step(*args)
        except OcrpipeError:
            raise  # not this job's fault (the job index, say): the scheduler retries the step
        except Exception as exc:  # noqa: BLE001 — one job's fault never stops the run
            self.fault(job, exc)

    # ----- the end of a job --------------------------------------------------------------------

    def give_up(self, job: Job, reason: str) -> None:
        """The original to error/ with error.json, ERROR recorded, the job indexed and its folder removed."""
        folder = publish_error(self.settings, job.dir, read_state(job.dir))
        record = update_state(job.dir, lambda r: to_error(r, reason))
        self.finish(job, record, "ERROR", errorDir=str(folder))
        self.errors_this_run += 1
        code = (record.get("lastError") or {}).get("code")
        update_metrics(self.metrics, "jobs_error")
        update_metrics(self.metrics, error_counter(code))
        if (record.get("lastError") or {}).get("stage") == Stage.CONVERT.value:
            update_metrics(self.metrics, "conversions_failed")
        log.error("failed for good: %s: %s [%s] (original in %s)", record["source"]["relpath"], reason, code, folder,
                  extra={**job_context(job.key), **ended_fields(record, "job_error"), "reason": reason,
                         "code": code})

    def fault(self, job: Job, exc: BaseException) -> None:
        """An unexpected exception while handling this job: to error/ naming it; the run goes on."""
        reason = f"internal error: {type(exc).__name__}: {exc}"
        log.error("%s; the job goes to error/", reason, exc_info=exc, extra=job_context(job.key))
        try:
            if read_state(job.dir)["state"] == JobState.DONE.value:  # published already: it stays done
                self.finish(job, read_state(job.dir), "DONE")
                return
            update_state(job.dir, lambda r: r.update(lastError={**(r.get("lastError") or {}), "reason": reason,
                                                                "transient": False}))
            self.give_up(job, reason)
        except Exception as again:  # noqa: BLE001 — the folder itself is unusable: left for the next start
            self.jobs.pop(job.key, None)
            log.error("could not move the job to error/ (%s: %s); left in %s for the next start",
                      type(again).__name__, again, job.dir, extra=job_context(job.key))

    def finish(self, job: Job, record: dict[str, Any], state: str, **extra: Any) -> None:
        """Record the finished job in the index (a done one with its pages' text and readings, in the same
        transaction), then remove its work folder: one step, safe to repeat. Its hook event is written first:
        a crash before the index has it repeats this step at the next start, which finds the event written."""
        pages = self._pages(job) if state == "DONE" else None
        reading = summary(pages, self.settings.low_confidence) if pages is not None else {}
        extra.update(reading)
        write_job_end(self.settings, record, state, extra.get("errorDir"), reading)
        self.index.record({
            "jobKey": job.key, "runId": record["runId"], "state": state, "source": record["source"]["relpath"],
            "output": record.get("output"), "archived": record.get("archived"), "pages": record.get("pages"),
            "kind": record.get("kind"), "pdfa": record.get("pdfa"), "batchSize": record.get("batchSize"),
            "attempts": record.get("attempts"), "timings": record.get("timings"),
            "reason": (record.get("lastError") or {}).get("reason") if state == "ERROR" else None,
            # the tool's exit code
            "code": (record.get("lastError") or {}).get("exitCode") if state == "ERROR" else None,
            "createdAt": record.get("createdAt"), "finishedAt": record["updatedAt"],
            "decision": record.get("decision"), **extra,  # a FORCE_REPROCESS run carries the person's decision
            **{key: record.get(key) for key in RUN_FIDELITY_FIELDS},  # what a batch or split kept of the output
            **{key: record[key] for key in LANGUAGE_FIELDS if key in record},  # OCR_LANG=auto's finding
            **({"reasonCode": (record.get("lastError") or {}).get("code")} if state == "ERROR" else {}),
            # a signed input, and how its signature went
            **{k: record[k] for k in ("signed", "signature") if record.get(k)},
            **({"sourceBytes": record["source"]["relpathBytes"]} if record["source"].get("relpathBytes") else {}),
        }, then=(lambda conn, run_row: store_pages(conn, run_row, pages)) if pages is not None else None)
        self.jobs.pop(job.key, None)
        remove_tree(job.dir)


    def _pages(self, job: Job) -> PageRecord | None:
        """What the worker read of the job's pages (pages.json); its text only while SEARCH_INDEX is on."""
        # Imported at the first job's end: behind it stand the orientation module and pikepdf (50 ms), which
        # a run with nothing to do never needs.
        from ocrpipe.stages.pagetext import MAX_PAGE_CHARS, PAGES_FILE

        pages = load_page_record(job.dir / PAGES_FILE, max_chars=MAX_PAGE_CHARS)
        if pages is not None and not self.settings.search_index:
            return PageRecord(None, pages.readings)
        return pages


def to_error(record: dict[str, Any], reason: str) -> None:
    """ERROR from wherever the job stands: a stage it was in is first recorded as failed."""
    state = JobState(record["state"])
    if state in (JobState.ERROR, JobState.DONE):
        return
    if not is_legal_transition(state, JobState.ERROR):
        stage = stage_of(state) or Stage.PREP
        apply_transition(record, failure_state(stage, timeout=False), reason)
    apply_transition(record, JobState.ERROR, reason)

