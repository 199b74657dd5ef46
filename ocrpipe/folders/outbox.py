"""The outbox: ``hooks/pending/<eventId>.json``, one event per job that ends, written in the step that records
the end, before the job index hears of it. A crash before the write leaves the job's end to be recorded
again at the next start, which writes the event then; a crash after it finds the event already there.

The event id is derived from what the event is about (the job's key and run, the held file, the decision),
so writing it again gives the same id, and a receiver can tell a repeated delivery from a new event.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import atomic_write_json
from ocrpipe.folders.nofollow import is_real_dir
from ocrpipe.folders.store import utc_now

log = logging.getLogger("ocrpipe.outbox")

HOOKS_DIR = "hooks"
PENDING_DIR = "pending"
FAILED_DIR = "failed"
EVENT_ID = re.compile(r"evt_[0-9a-f]{32}")
JOB_DONE, JOB_ERROR, HELD, DECIDED = "job.done", "job.error", "duplicate.held", "decision.applied"


def hooks_dir(settings: Settings) -> Path:
    return settings.data_dir / HOOKS_DIR


def pending_dir(settings: Settings) -> Path:
    return hooks_dir(settings) / PENDING_DIR


def failed_dir(settings: Settings) -> Path:
    return hooks_dir(settings) / FAILED_DIR


def event_id(kind: str, *parts: str) -> str:
    """Stable: the same job end (or hold, or decision) always gets the same id."""
    digest = hashlib.sha256("\x00".join((kind, *parts)).encode("utf-8", errors="surrogateescape")).hexdigest()
    return f"evt_{digest[:32]}"


def wanted(settings: Settings, kind: str) -> bool:
    """Is an event of this type written at all? Not without a hook to deliver it, nor when HOOK_EVENTS
    leaves it out: an outbox nobody empties would only grow."""
    return settings.hooks.enabled and kind in settings.hooks.events


def write_event(settings: Settings, kind: str, data: dict[str, Any], *id_parts: str) -> str | None:
    """Write the event unless it is already pending or failed; its id, or None when not wanted (or when
    hooks/ is not a real folder: a link there is never written through, and the job goes on)."""
    if not wanted(settings, kind):
        return None
    ident = event_id(kind, *id_parts)
    pending, failed = pending_dir(settings), failed_dir(settings)
    for folder in (hooks_dir(settings), pending):
        if os.path.lexists(folder) and not is_real_dir(folder):
            log.error("%s is a link or not a folder: the %s event %s is not written", folder, kind, ident,
                      extra={"jobKey": data.get("jobKey")})
            return None
        folder.mkdir(exist_ok=True, parents=True)
    name = f"{ident}.json"
    if (pending / name).exists() or (failed / name).exists():
        return ident  # written before a crash cut the step short: the same event, not another one
    event = {"id": ident, "type": kind, "timestamp": utc_now(), "seq": time.time_ns(), "data": data}
    atomic_write_json(pending / name, event)
    return ident


# ----- what each event says ---------------------------------------------------------------------------


def seconds_between(start: object, end: object) -> float | None:
    try:
        return round((datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds(), 3)
    except (TypeError, ValueError):
        return None


def job_end_data(record: dict[str, Any], state: str, error_dir: str | None) -> dict[str, Any]:
    """A finished job's event, from its state.json record."""
    error = (record.get("lastError") or {}) if state == "ERROR" else {}
    return {
        "jobKey": record["jobKey"], "runId": record["runId"], "state": state,
        "source": record["source"]["relpath"], "output": record.get("output"), "archived": record.get("archived"),
        "errorDir": error_dir if state == "ERROR" else None, "code": error.get("code"),
        "reason": error.get("reason"), "exitCode": error.get("exitCode"), "pages": record.get("pages"),
        "seconds": seconds_between(record.get("createdAt"), record.get("updatedAt")),
        "decision": (record.get("decision") or [None])[-1],  # a FORCE_REPROCESS run: the decision behind it
    }


def write_job_end(settings: Settings, record: dict[str, Any], state: str, error_dir: str | None,
                  reading: dict[str, Any] | None = None) -> str | None:
    """``reading``: how well a done job read (confidence, lowConfidence, lowConfidencePages), so a receiver
    can route doubtful outputs to a person."""
    kind = JOB_DONE if state == "DONE" else JOB_ERROR
    data = {**job_end_data(record, state, error_dir), **(reading or {})}
    return write_event(settings, kind, data, record["jobKey"], record["runId"])
