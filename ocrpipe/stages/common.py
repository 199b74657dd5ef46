"""What every stage shares: the tools' environment, the heartbeat, and recording start, end and failure."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from ocrpipe.config import Settings
from ocrpipe.errors import Code, DiskFullError, RedoAlone, SplitFailed, StageError, ToolTimeout
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.heartbeat import HOST, HeartbeatWriter, heartbeat_path
from ocrpipe.folders.layout import TMP_DIR
from ocrpipe.folders.outcome import READY_STATES, StageOutcome, mark_failed, mark_started
from ocrpipe.folders.store import read_state, update_state, utc_now
from ocrpipe.logs import job_context, job_log_context
from ocrpipe.model import JobState, Stage, running_state, submitted_state
from ocrpipe.ownprocs import mark_env

log = logging.getLogger("ocrpipe.worker")


def tool_env(settings: Settings, job_dir: Path) -> dict[str, str]:
    """The tools' environment: one Tesseract thread each, temp files inside the job's folder, and the
    mark that makes them this ocrpipe's to kill should their worker die (ownprocs.py)."""
    env = tools_base_env(settings)
    tmp = job_dir / TMP_DIR
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp))
    return env


def tools_base_env(settings: Settings) -> dict[str, str]:
    """The tools' environment before a job gives them its folder (an ocrmypdf started ahead starts with it)."""
    env = dict(settings.tool_env)
    mark_env(env, settings.work_dir)
    env["OMP_THREAD_LIMIT"] = "1"
    # ocrmypdf finds Tesseract and Ghostscript on PATH: put configured ones first.
    extra = [str(Path(cmd[0]).parent) for cmd in (settings.tesseract, settings.ghostscript)
             if Path(cmd[0]).is_absolute()]
    if extra:
        env["PATH"] = os.pathsep.join([*extra, env.get("PATH", "")])
    return env


def failure_fields(exc: BaseException) -> dict[str, Any]:
    """What an exception from a stage means for its outcome: reason, retryable or not, disk full."""
    if isinstance(exc, StageError):
        return {"reason": exc.reason, "transient": exc.transient, "timeout": isinstance(exc, ToolTimeout),
                "exit_code": exc.exit_code, "stderr_tail": exc.stderr_tail,
                "disk_full": isinstance(exc, DiskFullError), "code": exc.code.value,
                "batch_failure": isinstance(exc, RedoAlone), "split_failure": isinstance(exc, SplitFailed)}
    if isinstance(exc, OSError):
        disk_full = exc.errno == errno.ENOSPC
        return {"reason": "the disk is full" if disk_full else f"file access failed: {exc}", "disk_full": disk_full,
                "code": (Code.DISK_TOO_SMALL if disk_full else Code.TOOL_FAILED).value}
    return {"reason": f"unexpected {type(exc).__name__}: {exc}", "code": Code.TOOL_FAILED.value}


@dataclass(frozen=True)
class Member:
    """One job of a stage run: its folder, the attempt counts the scheduler hands over, and its share
    of the run's time (a batch charges each document by its pages)."""

    job_dir: Path
    attempts: dict[str, int]
    share: float = 1.0


def worker_identity() -> dict[str, Any]:
    """This worker process as state.json names it: pid and create time (pids are reused), and its
    machine (a cluster's workers share the job folders)."""
    return {"workerPid": os.getpid(), "workerCreateTime": psutil.Process().create_time(), "workerHost": HOST}


class StaleAttempt(Exception):
    """The record no longer waits for this attempt (or no longer belongs to it): nothing is written."""


def check_start(record: dict[str, Any], stage: Stage, attempts: dict[str, int]) -> None:
    """An attempt starts only from a record still waiting for it: a Dask worker re-running a task
    whose first worker died, or a task that outlived its run, finds the record has moved on."""
    state, attempt = JobState(record["state"]), attempts[stage.value]
    if state is running_state(stage) and record["attempts"][stage.value] == attempt:
        raise StaleAttempt(f"{DIED_ELSEWHERE} (on {record.get('workerHost') or 'another machine'})")
    if state not in READY_STATES[stage] | {submitted_state(stage)} or record["attempts"][stage.value] >= attempt:
        raise StaleAttempt(f"the job has moved on ({state.value}, attempt {record['attempts'][stage.value]})")


def check_own(record: dict[str, Any], stage: Stage, attempts: dict[str, int], identity: dict[str, Any]) -> None:
    """Every end a worker writes is checked against the record: still this attempt, still running, still
    this worker. A late finisher (its stage was retried elsewhere) never writes over the retry."""
    mine = all(record.get(k) == v for k, v in identity.items())
    if not (mine and record["state"] == running_state(stage).value
            and record["attempts"][stage.value] == attempts[stage.value]):
        raise StaleAttempt(f"the record moved on to {record['state']} (attempt {record['attempts'][stage.value]})")


DIED_ELSEWHERE = "the worker that started this attempt died or lost contact"


def run_members(settings: Settings, stage: Stage, members: Sequence[Member], work: Callable[[], dict[str, Any]], *,
                finish: Callable[[Path, StageOutcome], dict[str, Any] | None], scratch: Sequence[Path] = (),
                on_failure: Callable[[dict[str, Any]], dict[str, Any]] = lambda fields: fields,
                **started: Any) -> list[StageOutcome]:
    """The one stage runner, for a single job and for a batch: record each member's start, do the work
    and finish each member (publish, for OCR) under one heartbeat, and report one outcome per member.
    Any failure becomes an outcome, never a traceback; ``scratch`` folders go before and after."""
    t0, started_at = time.monotonic(), utc_now()
    identity = worker_identity()
    refused = _refused(stage, members)
    if refused is not None:
        return refused
    # Not fsynced: lost in a power cut, the stage simply runs again. ``batch`` is written at every start
    # (None when alone): a restart that cuts the attempt short counts differently for a batch's members.
    def starter(m: Member) -> Callable[[dict[str, Any]], None]:
        return lambda r: _start(r, stage, m.attempts, {**identity, "batch": None, **started})

    records = [update_state(m.job_dir, starter(m), durable=False) for m in members]
    with job_log_context(**log_context(stage, members, records, started.get("batch"))):
        log.debug("%s attempt started for %d document(s)", stage.value, len(members))
        return _run_started(settings, stage, members, work, finish=finish, scratch=scratch, on_failure=on_failure,
                            t0=t0, started_at=started_at, identity=identity)


def _start(record: dict[str, Any], stage: Stage, attempts: dict[str, int], fields: dict[str, Any]) -> None:
    check_start(record, stage, attempts)
    mark_started(record, stage, attempts, **fields)


def _refused(stage: Stage, members: Sequence[Member]) -> list[StageOutcome] | None:
    """Outcomes without running, when a member's record does not wait for this attempt (checked again
    under the lock as each starts). The scheduler settles them against the record as for any failure."""
    reasons: list[str | None] = []
    for m in members:
        key = m.job_dir.name
        try:
            record = read_state(m.job_dir)
            key = record["jobKey"]
            check_start(record, stage, m.attempts)
            reasons.append(None)
        except (StaleAttempt, OSError, ValueError, KeyError) as exc:
            reasons.append(str(exc))
            log.warning("%s attempt %d not started: %s", stage.value, m.attempts[stage.value], exc,
                        extra=job_context(key, stage.value, m.attempts[stage.value]))
    if not any(reasons):
        return None
    return [StageOutcome(stage, False, 0.0, {}, reason=reason or "a document of the same batch had moved on",
                         free=reason is None or not reason.startswith(DIED_ELSEWHERE), batch_failure=len(members) > 1)
            for reason in reasons]


def log_context(stage: Stage, members: Sequence[Member], records: Sequence[dict[str, Any]],
                batch: str | None) -> dict[str, Any]:
    """What every line this stage logs carries: its job (or, for a batch, all of them)."""
    if len(members) == 1:
        return {"jobKey": records[0]["jobKey"], "runId": records[0]["runId"], "stage": stage.value,
                "attempt": members[0].attempts[stage.value]}
    return {"stage": stage.value, "batch": batch, "jobKeys": [r["jobKey"] for r in records]}


def _run_started(settings: Settings, stage: Stage, members: Sequence[Member], work: Callable[[], dict[str, Any]], *,
                 finish: Callable[[Path, StageOutcome], dict[str, Any] | None], scratch: Sequence[Path],
                 on_failure: Callable[[dict[str, Any]], dict[str, Any]], t0: float,
                 started_at: str, identity: dict[str, Any]) -> list[StageOutcome]:
    targets = [(heartbeat_path(m.job_dir, stage), m.attempts[stage.value]) for m in members]
    # The heartbeat stays on disk after the stage: the scheduler drops it once it has the outcome,
    # so until then it still names the tools to kill should the worker die.
    try:
        with HeartbeatWriter(targets, stage=stage, interval=settings.heartbeat_seconds) as beat:
            for folder in scratch:
                remove_tree(folder)  # what a killed attempt left behind
            try:
                fields = work()
            except Exception as exc:  # noqa: BLE001 — every failure becomes an outcome: retried or reported
                failed = StageOutcome(stage, False, time.monotonic() - t0, {}, started_at=started_at,
                                      ended_at=utc_now(), **on_failure(failure_fields(exc)))
                if beat.cancelled:
                    failed = replace(failed, reason=f"cancelled by the scheduler: {beat.cancelled}")
                elif not isinstance(exc, (StageError, OSError)):  # a bug, not the file's fault: keep where it was
                    log.error("%s failed: %s", stage.value, failed.reason, exc_info=True)
                for m in members:
                    _write_own(m, stage, identity, lambda r: mark_failed(r, failed))
                return [failed for _ in members]
            seconds = time.monotonic() - t0
            return [_finish_member(m, StageOutcome(stage, True, seconds * m.share, fields, started_at=started_at,
                                                   ended_at=utc_now()), finish, identity) for m in members]
    finally:
        for folder in scratch:
            remove_tree(folder)


def _write_own(member: Member, stage: Stage, identity: dict[str, Any],
               mutate: Callable[[dict[str, Any]], None]) -> None:
    """Write this attempt's end, unless the record has moved on (then it is dropped, and said)."""
    def checked(record: dict[str, Any]) -> None:
        check_own(record, stage, member.attempts, identity)
        mutate(record)

    try:
        update_state(member.job_dir, checked)
    except StaleAttempt as exc:
        log.warning("%s attempt %d ended late; its end is dropped: %s", stage.value,
                    member.attempts[stage.value], exc)


def _finish_member(member: Member, outcome: StageOutcome,
                   finish: Callable[[Path, StageOutcome], dict[str, Any] | None],
                   identity: dict[str, Any]) -> StageOutcome:
    try:
        # Checked before anything is placed: a late finisher publishes nothing over its retry.
        check_own(read_state(member.job_dir), outcome.stage, member.attempts, identity)
    except StaleAttempt as exc:
        log.warning("%s attempt %d ended late; nothing published: %s", outcome.stage.value,
                    member.attempts[outcome.stage.value], exc)
        return replace(outcome, ok=False, fields={}, reason=f"ended late: {exc}")
    try:
        record = finish(member.job_dir, outcome)
    except Exception as exc:  # noqa: BLE001 — this member alone failed; the others are finished
        failed = replace(outcome, ok=False, fields={}, **failure_fields(exc))
        _write_own(member, outcome.stage, identity, lambda r: mark_failed(r, failed))
        return failed
    return outcome if record is None else replace(outcome, fields={**outcome.fields, "record": record})


def run_stage(settings: Settings, stage: Stage, job_dir: Path, work: Callable[[], dict[str, Any]], *,
              attempts: dict[str, int], finish: Callable[[StageOutcome], dict[str, Any] | None]) -> StageOutcome:
    """One job's stage, through the same runner as a batch."""
    [outcome] = run_members(settings, stage, [Member(job_dir, attempts)], work,
                            finish=lambda _dir, outcome: finish(outcome), scratch=[job_dir / TMP_DIR])
    return outcome
