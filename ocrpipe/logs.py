"""Logging: readable lines or one JSON object per line, for the scheduler and its workers alike."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import datetime, timezone
from typing import Any

CONTEXT_FIELDS = ("jobKey", "stage", "attempt")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            entry[name] = getattr(record, name, None)
        if record.processName != "MainProcess":
            entry["process"] = record.processName
        return json.dumps(entry, ensure_ascii=False)


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


def make_handler(*, json_lines: bool) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else HumanFormatter())
    return handler


def setup_logging(level: str, *, json_lines: bool) -> logging.Handler:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(json_lines=json_lines)
    root.addHandler(handler)
    set_levels(level)
    return handler


def set_levels(level: str) -> None:
    logging.getLogger().setLevel(level)
    # Libraries' chatter (pikepdf, PIL) stays out of an operator's log unless asked for.
    for noisy in ("PIL", "pikepdf", "img2pdf", "ocrmypdf"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def job_context(job_key: str, stage: str | None = None, attempt: int | None = None) -> dict[str, Any]:
    """``extra=`` for a log call about one job."""
    return {"jobKey": job_key, "stage": stage, "attempt": attempt}
