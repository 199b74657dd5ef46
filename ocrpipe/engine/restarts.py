"""Stages cut short by a restart of ocrpipe (a power cut, a reboot, taskkill /F, a scheduled task's time
limit): not the document's fault, so no attempt is used, as for a full disk or another job's dead worker.
Unless it keeps happening to the same document running alone: then the document may be what crashes
the machine, and it goes to error/ so the loop ends. Pure functions on a state.json record."""

from __future__ import annotations

from typing import Any

from ocrpipe.errors import Code
from ocrpipe.model import Stage

# Restarts in a row that may cut short a stage running alone at no cost; the next one sends the
# document to error/. Ten power cuts in a row while one document runs alone are no coincidence.
RESTARTS_LIMIT = 10
# Restarts in a row that may cut short a document's OCR in a batch before it is OCRed alone: a batch's
# restarts never count toward RESTARTS_LIMIT (which member crashes the machine cannot be told), so a
# crash loop caused by one member still ends, once that member runs alone.
BATCH_RESTARTS_BEFORE_ALONE = 3


def restart_attempts(record: dict[str, Any]) -> dict[str, int]:
    """Attempts per stage that a restart cut short: never counted against MAX_ATTEMPTS_*."""
    return _counts(record, "restartAttempts")


def _counts(record: dict[str, Any], key: str) -> dict[str, int]:
    counts, stored = {"PREP": 0, "OCR": 0}, record.get(key)
    if stage_seen(record, Stage.CONVERT):
        counts = {"CONVERT": 0, **counts}
    if isinstance(stored, dict):
        for stage in counts:
            if type(stored.get(stage)) is int and stored[stage] >= 0:
                counts[stage] = stored[stage]
    return counts


def stage_seen(record: dict[str, Any], stage: Stage) -> bool:
    """A CONVERT count exists only for the jobs that convert: the others' records stay as they were."""
    attempts = record.get("attempts")
    return isinstance(attempts, dict) and stage.value in attempts


def _bump(record: dict[str, Any], key: str, stage: Stage) -> int:
    counts = _counts(record, key)
    counts[stage.value] += 1
    record[key] = counts
    return counts[stage.value]


def note_restart(record: dict[str, Any], stage: Stage) -> bool:
    """The attempt the record shows running was cut short by a restart: it is not counted. True when
    the stage, running alone, has now been cut short more than RESTARTS_LIMIT times in a row: the
    record's last error then says so, with its own code, and is no longer retried."""
    _bump(record, "restartAttempts", stage)
    if record.get("batch"):  # the attempt ran in a batch (common.py writes it at every start)
        if _bump(record, "batchRestartsInARow", stage) >= BATCH_RESTARTS_BEFORE_ALONE:
            record["batchFailed"] = True  # OCRed alone from now on, across restarts too
        return False
    in_a_row = _bump(record, "restartsInARow", stage)
    if in_a_row <= RESTARTS_LIMIT:
        return False
    record["lastError"] = {**(record.get("lastError") or {}), "transient": False, "code": Code.TOOL_CRASH_LOOP.value,
                           "reason": f"{stage.value} was interrupted by a restart of ocrpipe {in_a_row} times in a row "
                                     "while it ran alone: this file may be what crashes or restarts the machine"}
    return True


def end_restart_run(record: dict[str, Any], stage: Stage) -> None:
    """The stage ended some other way: the restarts that cut it short before are no longer in a row."""
    for key in ("restartsInARow", "batchRestartsInARow"):
        if _counts(record, key)[stage.value]:
            record[key] = {**_counts(record, key), stage.value: 0}
