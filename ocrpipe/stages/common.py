"""What every stage shares: the tools' environment, the heartbeat, and recording start, end and failure."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ocrpipe.config import Settings
from ocrpipe.errors import DiskFullError, StageError, ToolTimeout
from ocrpipe.fsutil import remove_tree
from ocrpipe.heartbeat import HeartbeatWriter, heartbeat_path
from ocrpipe.model import Stage
from ocrpipe.outcome import StageOutcome, mark_failed, mark_started
from ocrpipe.store import update_state, utc_now

RAW_PDF = "raw.pdf"
FINAL_PDF = "final.pdf"
TMP_DIR = "tmp"


def tool_env(settings: Settings, job_dir: Path) -> dict[str, str]:
    """The tools' environment: one Tesseract thread each, temp files inside the job's folder."""
    env = dict(settings.tool_env)
    tmp = job_dir / TMP_DIR
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp), OMP_THREAD_LIMIT="1")
    # ocrmypdf finds Tesseract and Ghostscript on PATH: put configured ones first.
    extra = [str(Path(cmd[0]).parent) for cmd in (settings.tesseract, settings.ghostscript) if Path(cmd[0]).is_absolute()]
    if extra:
        env["PATH"] = os.pathsep.join([*extra, env.get("PATH", "")])
    return env


def failure_fields(exc: BaseException) -> dict[str, Any]:
    """What an exception from a stage means for its outcome: reason, retryable or not, disk full."""
    if isinstance(exc, StageError):
        return {"reason": exc.reason, "transient": exc.transient, "timeout": isinstance(exc, ToolTimeout),
                "exit_code": exc.exit_code, "stderr_tail": exc.stderr_tail,
                "disk_full": isinstance(exc, DiskFullError)}
    if isinstance(exc, OSError):
        disk_full = exc.errno == errno.ENOSPC
        return {"reason": "the disk is full" if disk_full else f"file access failed: {exc}", "disk_full": disk_full}
    return {"reason": f"unexpected {type(exc).__name__}: {exc}"}


def run_stage(settings: Settings, stage: Stage, job_dir: Path, work: Callable[[], dict[str, Any]], *,
              attempts: dict[str, int], finish: Callable[[StageOutcome], dict[str, Any] | None]) -> StageOutcome:
    """Record the start, do the work under a heartbeat, record the end with ``finish`` (or the
    failure), and report back; any failure becomes an outcome, never a traceback."""
    started, started_at = time.monotonic(), utc_now()
    # Not fsynced: lost in a power cut, the stage simply runs again.
    update_state(job_dir, lambda r: mark_started(r, stage, attempts, workerPid=os.getpid()), durable=False)
    remove_tree(job_dir / TMP_DIR)  # what a killed attempt left behind
    hb = HeartbeatWriter([(heartbeat_path(job_dir, stage), attempts[stage.value])], stage=stage,
                         interval=settings.heartbeat_seconds)
    try:
        with hb:
            fields = work()
            outcome = StageOutcome(stage, True, time.monotonic() - started, fields, started_at=started_at,
                                   ended_at=utc_now())
            record = finish(outcome)
    except Exception as exc:  # noqa: BLE001 — every failure becomes an outcome: retried or reported, never lost
        failed = StageOutcome(stage, False, time.monotonic() - started, {}, started_at=started_at, ended_at=utc_now(),
                              **failure_fields(exc))
        update_state(job_dir, lambda r: mark_failed(r, failed))
        return failed
    finally:
        remove_tree(job_dir / TMP_DIR)
    return outcome if record is None else replace(outcome, fields={**outcome.fields, "record": record})
