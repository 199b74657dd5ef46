"""Cancel requests: the scheduler asks, through a file in the job folder, that a stage's tools be
killed; the worker's heartbeat thread obeys on the machine that runs them (local pool or Dask alike)."""

from __future__ import annotations

from pathlib import Path

from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.folders.store import utc_now
from ocrpipe.model import Stage

CANCEL_FILES = {Stage.CONVERT: "convert.cancel", Stage.PREP: "prep.cancel", Stage.OCR: "ocr.cancel"}


def cancel_path(job_dir: Path, stage: Stage) -> Path:
    return job_dir / CANCEL_FILES[stage]


def request_cancel(job_dir: Path, stage: Stage, *, up_to_attempt: int, reason: str) -> None:
    """Ask that the stage's attempts up to ``up_to_attempt`` stop; a later attempt is not touched."""
    try:
        atomic_write_json(cancel_path(job_dir, stage), {"stage": stage.value, "upToAttempt": up_to_attempt,
                                                       "reason": reason, "at": utc_now()})
    except OSError:
        pass  # the folder is gone (the job ended): nothing is left to cancel


def cancel_reason(job_dir: Path, stage: Stage, attempt: int) -> str | None:
    """Why this attempt was asked to stop, or None when it was not."""
    try:
        request = read_json(cancel_path(job_dir, stage))
    except (OSError, ValueError):
        return None
    # Anyone who can write work/ can write this file: a field of the wrong shape cancels nothing.
    up_to = request.get("upToAttempt") if isinstance(request, dict) else None
    if type(up_to) is int and up_to >= attempt:
        reason = request.get("reason")
        return reason[:200] if isinstance(reason, str) and reason else "cancelled by the scheduler"
    return None
