"""A dropped file that could not be taken in (unreadable, or a name or state ocrpipe could not handle):
to ``error/intake-<id>/`` beside an error.json that says why; one such file never stops the run."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.errors import Code
from ocrpipe.folders.fsutil import atomic_write_json, move_replacing
from ocrpipe.folders.names import name_bytes, readable_name
from ocrpipe.folders.publish import ERROR_FILE, INTAKE_STAGE, original_name_in_error
from ocrpipe.folders.store import utc_now
from ocrpipe.index.metrics import error_counter, update_metrics

log = logging.getLogger("ocrpipe.intake")

FOLDER_PREFIX = "intake-"  # no job key names the folder: the file was never hashed, or hashing failed


def refuse_file(settings: Settings, path: Path, relpath: str, reason: str) -> Path:
    """Move the file at ``path`` (dropped as ``relpath``) into a new folder of error/ with its error.json;
    the folder. OSError when it cannot be moved: then nothing of it is left in error/."""
    folder = settings.error_dir / f"{FOLDER_PREFIX}{uuid.uuid4().hex[:16]}"
    folder.mkdir(parents=True)
    readable, raw = readable_name(relpath), name_bytes(relpath)
    name = original_name_in_error(folder, PurePosixPath(readable).name)
    # error.json first, as a job's intent comes first: a crash after it leaves the file where it was.
    atomic_write_json(folder / ERROR_FILE, pretty=True, obj={
        "source": readable, **({"sourceBytes": raw} if raw else {}), "file": name, "stage": INTAKE_STAGE,
        "reason": reason, "code": Code.INTAKE_FAILED.value, "failedAt": utc_now(),
    })
    try:
        move_replacing(path, folder, name)
    except OSError:
        (folder / ERROR_FILE).unlink(missing_ok=True)
        folder.rmdir()
        raise
    return folder


class Refusals:
    """Sends files that could not be taken in to error/, counts them, and says each once."""

    def __init__(self, settings: Settings, metrics: dict[str, Any]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.count = 0  # refused this run: the run's exit code says files failed

    def refuse(self, path: Path, relpath: str, exc: BaseException) -> bool:
        """True when the file went to error/; False when it could not be moved and stays where it is."""
        readable = readable_name(relpath)
        reason = f"could not be taken in: {type(exc).__name__}: {exc}"
        self.count += 1
        update_metrics(self.metrics, "jobs_error")
        update_metrics(self.metrics, error_counter(Code.INTAKE_FAILED.value))
        try:
            folder = refuse_file(self.settings, path, relpath, reason)
        except OSError as again:
            log.warning("%s %s; it could not be moved to error/ either (%s: %s): left in in/, tried again when it "
                        "changes or at the next run", readable, reason, type(again).__name__, again)
            return False
        log.error("failed for good: %s %s [%s] (original in %s)", readable, reason, Code.INTAKE_FAILED.value, folder,
                  extra={"event": "job_error", "reason": reason, "code": Code.INTAKE_FAILED.value})
        return True
