"""What a previous run left in work/: its leftover tools killed, each job finished, retried or resumed.
Idempotent: running it twice, or crashing inside it and running it again, gives the same end state."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ocrpipe.engine.dispatcher import BATCH_PREFIX, kill_stage
from ocrpipe.engine.jobs import Job
from ocrpipe.engine.lifecycle import Lifecycle
from ocrpipe.engine.splitplan import recorded_work
from ocrpipe.folders.cancel import request_cancel
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.heartbeat import heartbeat_path, read_heartbeat
from ocrpipe.folders.layout import FINAL_PDF, TMP_DIR, is_job_folder_name, short_name
from ocrpipe.folders.nofollow import is_real_dir
from ocrpipe.folders.outcome import StageOutcome, mark_done
from ocrpipe.folders.pathcheck import UnsafePath, check_job_key
from ocrpipe.folders.publish import drop_publish_temps, publish_done
from ocrpipe.folders.store import read_state
from ocrpipe.logs import job_context
from ocrpipe.model import JobState, Stage, failure_state, stage_of

log = logging.getLogger("ocrpipe.recovery")

INTERRUPTED = "interrupted by a restart of ocrpipe"
STATES = frozenset(state.value for state in JobState)
FAILED_STATES = frozenset(failure_state(stage, timeout=t) for stage in Stage for t in (False, True))


def resume_work(life: Lifecycle) -> None:
    """Kill what the previous run's stages left running, then finish, retry or resume each job."""
    work_dir = life.settings.work_dir
    remove_batch_folders(work_dir)
    # Job folders: short names, or full keys (older data folders); batch folders are hidden.
    for job_dir in sorted(p for p in work_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not is_real_dir(job_dir):
            # A link to a folder (on a cluster anyone can write work/): never followed, since cleaning up
            # a job folder deletes its tmp/ and may move its input/, there wherever it points.
            log.warning("%s is a link, not a job folder of ocrpipe; not followed, left as it is", job_dir)
            continue
        if not is_job_folder_name(job_dir.name) and not (job_dir / "state.json").exists():
            # Not ocrpipe's (someone put it in work/): nothing in it is touched.
            log.warning("%s is not a job folder of ocrpipe (no state.json); left as it is", job_dir)
            continue
        for stage in Stage:
            beat = read_heartbeat(heartbeat_path(job_dir, stage))
            if beat:  # a cluster worker may still run it, elsewhere: asked to stop, never killed from here
                request_cancel(job_dir, stage, up_to_attempt=_cancel_up_to(job_dir, stage, beat["attempt"]),
                               reason="ocrpipe restarted")
            kill_stage(job_dir, stage, include_worker=True)
        remove_tree(job_dir / TMP_DIR)
        try:
            record = read_state(job_dir)
            check_owner(job_dir, record)
        except FileNotFoundError:
            _drop_if_empty_shell(job_dir)
            continue
        except (OSError, ValueError) as exc:
            log.error("cannot use %s (%s); left as it is", job_dir / "state.json", exc)
            continue
        job = Job(record["jobKey"], job_dir, JobState(record["state"]), pages=record.get("pages"),
                  attempts=dict(record["attempts"]),
                  solo=bool(record.get("soloReason") or record.get("batchFailed") or record.get("ghostscriptReason")),
                  batch_group=record.get("batchGroup"),  # kept across a restart
                  whole=bool(record.get("splitFailed")),  # a split that failed is not tried again
                  work=recorded_work(record.get("pageWork")),
                  convert=record.get("convert") if record.get("convert") in ("office", "email") else None)
        life.track(job)
        try:
            _resume_job(life, job, record)
        except Exception as exc:  # noqa: BLE001 — one job's fault never stops the start
            life.fault(job, exc)


def check_owner(job_dir: Path, record: dict[str, Any]) -> None:
    """The record's job key, state and source are as ocrpipe writes them, and the key is the folder's
    (short name, or the full key of an older layout): a job is tracked by its key, so a record written
    by hand must not pass for another job or name folders by a key that is none."""
    key = check_job_key(record.get("jobKey"), what="its jobKey")
    if job_dir.name not in (short_name(key), key):
        raise UnsafePath(f"its jobKey {key[:16]}... is not the job key of the folder {job_dir.name}")
    if record.get("state") not in STATES:
        raise UnsafePath(f"its state {record.get('state')!r:.40} is not a state of ocrpipe")
    source = record.get("source")
    if not (isinstance(source, dict) and all(isinstance(source.get(f), str) for f in ("name", "relpath"))):
        raise UnsafePath("its source is not a file name and a path relative to in/")


def _cancel_up_to(job_dir: Path, stage: Stage, beat_attempt: int) -> int:
    """The heartbeat's attempt, never beyond the one the record has started: a heartbeat naming a
    later attempt (written by hand) must not cancel the attempts still to come."""
    try:
        recorded = read_state(job_dir)["attempts"][stage.value]
    except (OSError, ValueError, KeyError, TypeError):
        return beat_attempt
    return min(beat_attempt, recorded) if type(recorded) is int else beat_attempt


def remove_batch_folders(work_dir: Path) -> None:
    """Batch folders are scratch: a batch's members retry from their own state. Called at start, and
    at a drained shutdown, where a worker orphaned by an earlier run's crash may have made one after
    the start cleared them (it runs up to a second before it notices its parent is gone)."""
    for batch_dir in work_dir.glob(f"{BATCH_PREFIX}*"):
        remove_tree(batch_dir)


def _drop_if_empty_shell(job_dir: Path) -> None:
    """A job folder without state.json: a crash cut short its removal (the job was recorded first) or
    its creation (the state is written before the file moves in). Without a file in input/ it holds no
    original: removed. Otherwise it is left for a person, and said so."""
    if any(p.is_file() for p in (job_dir / "input").glob("*")):
        log.error("%s has no state.json but holds a file in input/; left as it is", job_dir)
        return
    remove_tree(job_dir)


def _resume_job(life: Lifecycle, job: Job, record: dict[str, Any]) -> None:
    state, stage = job.state, stage_of(job.state)
    if state is JobState.OCR_RUNNING and (job.dir / FINAL_PDF).is_file():
        # OCR had finished (final.pdf is renamed into place only once checked): just publish.
        done = StageOutcome(Stage.OCR, True, 0.0, {"pdfa": record.get("pdfa")})
        publish_done(life.settings, job.dir, record, lambda r: mark_done(r, done))
        life.settle(job, done, 0.0)
    elif job.in_stage:
        assert stage is not None
        life.settle(job, StageOutcome(stage, False, 0.0, {}, reason=INTERRUPTED, interrupted=True), 0.0)
    elif state in FAILED_STATES:
        assert stage is not None
        if record.get("errorDir"):  # giving up was under way
            life.give_up(job, (record.get("lastError") or {}).get("reason", "failed"))
        else:
            error = record.get("lastError") or {}
            life.settle(job, StageOutcome(stage, False, 0.0, {}, reason=error.get("reason", "failed"),
                                          transient=error.get("transient", True)), 0.0)
    elif state is JobState.DONE:
        drop_publish_temps(life.settings, record)
        life.finish(job, record, state.value)
    elif state is JobState.ERROR:
        life.finish(job, record, state.value, errorDir=record.get("errorDir"))


def drop_lost_intakes(life: Lifecycle) -> None:
    """After the staged leftovers were taken in: a job whose file never reached input/ has nothing to do."""
    for job in [j for j in life.jobs.values() if j.state is JobState.DISCOVERED]:
        try:
            source = job.dir / read_state(job.dir)["input"]
        except (OSError, ValueError, KeyError):
            continue
        if not source.is_file():
            log.warning("the job's file never arrived (it was not in in/ nor staged); its folder is removed",
                        extra=job_context(job.key))
            life.jobs.pop(job.key, None)
            remove_tree(job.dir)


