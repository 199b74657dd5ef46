"""Logs: JSON lines with the job's context (worker lines too), tracebacks as a field, a log file, a summary."""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import make_pdf
from ocrpipe import logs
from ocrpipe.logs import JsonFormatter, WorkerQueueHandler, job_log_context, make_handlers

JOB_KEY = "f" * 64 + "__" + "0" * 64


def record(message: str = "hello %s", *args: Any, exc: BaseException | None = None,
           **extra: Any) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    rec = logging.LogRecord("ocrpipe.test", logging.WARNING, __file__, 1, message, args or ("world",), exc_info)
    rec.__dict__.update(extra)
    return rec


def test_json_line_has_the_fields_and_only_those_that_apply() -> None:
    line = json.loads(JsonFormatter().format(record(jobKey=JOB_KEY, stage="OCR", attempt=2, runId="r1")))
    assert line["message"] == "hello world" and line["level"] == "WARNING" and line["logger"] == "ocrpipe.test"
    assert (line["jobKey"], line["stage"], line["attempt"], line["runId"]) == (JOB_KEY, "OCR", 2, "r1")
    assert line["timestamp"].endswith("Z") and line["timestamp"][10] == "T" and isinstance(line["pid"], int)
    bare = json.loads(JsonFormatter().format(record()))
    assert "jobKey" not in bare and "traceback" not in bare


def test_a_traceback_is_a_field_even_after_crossing_the_worker_queue() -> None:
    try:
        raise ValueError("broken page tree")
    except ValueError as exc:
        failure = exc
    sent: queue.Queue[logging.LogRecord] = queue.Queue()
    handler = WorkerQueueHandler(sent)
    with job_log_context(jobKey=JOB_KEY, stage="PREP", attempt=1, runId="r2"):
        handler.handle(record("PREP failed: %s", "boom", exc=failure))
    arrived = sent.get_nowait()
    assert arrived.exc_info is None  # what the queue pickles carries no traceback object
    line = json.loads(JsonFormatter().format(arrived))
    assert line["message"] == "PREP failed: boom" and "Traceback" not in line["message"]
    assert "ValueError: broken page tree" in line["traceback"]
    assert (line["jobKey"], line["stage"], line["attempt"], line["runId"]) == (JOB_KEY, "PREP", 1, "r2")


def test_the_context_ends_with_its_block_and_never_overrides_a_line_s_own_fields() -> None:
    sent: queue.Queue[logging.LogRecord] = queue.Queue()
    handler = WorkerQueueHandler(sent)
    with job_log_context(jobKey=JOB_KEY, stage="OCR"):
        handler.handle(record(stage="PREP"))
    handler.handle(record())
    inside, after = sent.get_nowait(), sent.get_nowait()
    assert (inside.jobKey, inside.stage) == (JOB_KEY, "PREP")  # type: ignore[attr-defined]
    assert getattr(after, "jobKey", None) is None


def test_log_file_rotates_by_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "LOG_FILE_MAX_BYTES", 2000)
    path = tmp_path / "logs" / "ocrpipe.log"
    handlers = make_handlers(json_lines=True, log_file=path)
    try:
        for n in range(100):
            handlers[-1].handle(record("line %d", n))
    finally:
        for handler in handlers:
            handler.close()
    rotated = sorted(p.name for p in path.parent.iterdir())
    assert rotated == ["ocrpipe.log", *(f"ocrpipe.log.{n}" for n in range(1, logs.LOG_FILE_BACKUPS + 1))]
    assert all(p.stat().st_size <= 2000 for p in path.parent.iterdir())
    last = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert last[-1]["message"] == "line 99"


def test_run_once_logs_json_lines_with_worker_lines_a_log_file_and_a_summary(
        tmp_path: Path, data_dir: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(2))
    (data_dir / "in" / "empty.pdf").write_bytes(b"")
    log_file = tmp_path / "ocrpipe.log"
    env = {**fake_env, "LOG_JSON": "true", "LOG_LEVEL": "DEBUG"}
    proc = subprocess.Popen([sys.executable, "-m", "ocrpipe", "run", "--once", "--log-file", str(log_file)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr  # one file went to error/
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "message", "pid"} <= set(line) for line in lines)
    assert log_file.read_text(encoding="utf-8").splitlines() == stderr.splitlines()

    worker = [line for line in lines if line["pid"] != proc.pid and line.get("jobKey")]
    assert worker, "no line from a worker process names its job"
    assert {"jobKey", "stage", "attempt", "runId", "process"} <= set(worker[0])
    assert any(line["logger"] == "ocrpipe.worker" and line["stage"] == "OCR" for line in worker)

    failed = next(line for line in lines if line.get("event") == "job_error")
    assert failed["level"] == "ERROR" and failed["fileName"] == "empty.pdf" and failed["reason"] == "the file is empty"
    done = next(line for line in lines if line.get("event") == "job_done")
    assert done["fileName"] == "good.pdf" and done["pages"] == 2 and done["seconds"] >= 0
    summary = [line for line in lines if line.get("event") == "run_summary"]
    assert len(summary) == 1 and summary[0] == {**summary[0], "filesDone": 1, "filesFailed": 1, "filesHeld": 0,
                                                "pages": 2}
    assert summary[0]["message"].startswith("run finished: 1 file(s) done, 1 failed, 0 held as duplicates; 2 page(s)")
