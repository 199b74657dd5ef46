"""What every stage shares: its outcome record, the tools' environment, failure capture."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ocrpipe.config import Settings
from ocrpipe.errors import StageError, ToolTimeout
from ocrpipe.model import Stage, running_state
from ocrpipe.store import transition

RAW_PDF = "raw.pdf"
FINAL_PDF = "final.pdf"


@dataclass(frozen=True)
class StageOutcome:
    """What a worker reports back; plain data, so it pickles across the process boundary."""

    stage: Stage
    ok: bool
    seconds: float
    fields: dict[str, Any]
    transient: bool = True
    timeout: bool = False
    reason: str = ""
    exit_code: int | None = None
    stderr_tail: str = ""
    disk_full: bool = False


def tool_env(settings: Settings, job_dir: Path) -> dict[str, str]:
    """The tools' environment: one Tesseract thread each, temp files inside the job's folder."""
    env = dict(settings.tool_env)
    tmp = job_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp), OMP_THREAD_LIMIT="1")
    # ocrmypdf finds Tesseract and Ghostscript on PATH: put configured ones first.
    extra = [str(Path(cmd[0]).parent) for cmd in (settings.tesseract, settings.ghostscript) if Path(cmd[0]).is_absolute()]
    if extra:
        env["PATH"] = os.pathsep.join([*extra, env.get("PATH", "")])
    return env


def run_stage(stage: Stage, job_dir: Path, work: Callable[[], dict[str, Any]]) -> StageOutcome:
    """Mark the job running, do the work, and turn any failure into an outcome (never a traceback)."""
    started = time.monotonic()
    transition(job_dir, running_state(stage), workerPid=os.getpid())

    def failed(reason: str, **kw: Any) -> StageOutcome:
        return StageOutcome(stage, False, time.monotonic() - started, {}, reason=reason, **kw)

    try:
        fields = work()
    except StageError as exc:
        return failed(exc.reason, transient=exc.transient, timeout=isinstance(exc, ToolTimeout),
                      exit_code=exc.exit_code, stderr_tail=exc.stderr_tail)
    except OSError as exc:
        disk_full = exc.errno == errno.ENOSPC
        reason = "the disk is full" if disk_full else f"file access failed: {exc}"
        return failed(reason, disk_full=disk_full)
    except Exception as exc:  # noqa: BLE001 — an unforeseen failure is retried, then reported, never lost
        return failed(f"unexpected {type(exc).__name__}: {exc}")
    return StageOutcome(stage, True, time.monotonic() - started, fields)
