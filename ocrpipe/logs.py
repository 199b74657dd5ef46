"""Logging: readable lines or one JSON object per line, for the scheduler and its workers alike."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONTEXT_FIELDS = ("jobKey", "stage", "attempt", "runId")
# What every LogRecord has; anything else on a record came from ``extra=`` and goes into the JSON line.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
LOG_FILE_MAX_BYTES = 10 * 2**20
LOG_FILE_BACKUPS = 5

# The job a pool worker is working on, so that every line it logs (ours or a library's) names it.
# The default is never changed in place: each job sets a dict of its own.
_job_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "ocrpipe_job_context", default={})  # noqa: B039


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.processName != "MainProcess":
            entry["process"] = record.processName
        for name, value in record.__dict__.items():
            if name not in _STANDARD and value is not None and not name.startswith("_"):
                entry[name] = value
        traceback = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else None)
        if traceback:
            entry["traceback"] = traceback
        return json.dumps(entry, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    """``2026-12-01T14:03:22.123Z``: ISO 8601 in UTC, in the form jq's date functions and sort order expect."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        key = getattr(record, "jobKey", None)
        if key:
            stage = getattr(record, "stage", None)
            line += f"  [job {str(key)[:12]}{' ' + str(stage) if stage else ''}]"
        return line


class ContextFilter(logging.Filter):
    """Adds the current job's fields to records that do not name a job themselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _job_context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class WorkerQueueHandler(logging.handlers.QueueHandler):
    """Sends a worker's records to the scheduler with the job's context, keeping a traceback apart
    from the message (the stock handler folds it into the message, where JSON cannot tell them apart)."""

    def __init__(self, queue: Any) -> None:
        super().__init__(queue)
        self.addFilter(ContextFilter())

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        prepared = logging.makeLogRecord(record.__dict__)
        prepared.msg = record.getMessage()
        prepared.args = None
        if record.exc_info:
            prepared.exc_text = logging.Formatter().formatException(record.exc_info)
        prepared.exc_info = None  # tracebacks do not pickle; their text does
        return prepared


@contextlib.contextmanager
def job_log_context(**fields: Any) -> Iterator[None]:
    """While it lasts, lines logged in this thread carry ``fields`` (jobKey, stage, attempt, runId…)."""
    token = _job_context.set({**_job_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _job_context.reset(token)


def make_handlers(*, json_lines: bool, log_file: Path | None = None) -> list[logging.Handler]:
    """stderr (when there is one: a scheduled task may have none), and ``log_file`` rotated by size."""
    formatter = JsonFormatter() if json_lines else HumanFormatter()
    handlers: list[logging.Handler] = []
    if sys.stderr is not None:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
    return handlers


def setup_logging(level: str, *, json_lines: bool, log_file: Path | None = None) -> list[logging.Handler]:
    """The scheduler's handlers; the same ones write the lines that come back from the workers."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handlers = make_handlers(json_lines=json_lines, log_file=log_file)
    for handler in handlers:
        root.addHandler(handler)
    set_levels(level)
    return handlers


def set_levels(level: str) -> None:
    logging.getLogger().setLevel(level)
    # Libraries' chatter (pikepdf, PIL, every lock taken) stays out of an operator's log unless asked for.
    for noisy in ("PIL", "pikepdf", "img2pdf", "ocrmypdf", "fontTools", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def job_context(job_key: str, stage: str | None = None, attempt: int | None = None) -> dict[str, Any]:
    """``extra=`` for a log call about one job."""
    return {"jobKey": job_key, "stage": stage, "attempt": attempt}


def ended_fields(record: dict[str, Any], event: str) -> dict[str, Any]:
    """``extra=`` for the line that ends a job: what the JSON log's readers sort and filter by."""
    timings = record.get("timings") or {}
    seconds = sum(v for v in timings.values() if isinstance(v, (int, float)))  # PREP and OCR
    return {"event": event, "runId": record.get("runId"), "fileName": (record.get("source") or {}).get("relpath"),
            "pages": record.get("pages"), "seconds": round(seconds, 3)}
