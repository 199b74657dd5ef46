"""The whole pipeline with fake tools in spawned pool workers: limits, retries, errors, duplicates."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from conftest import drive, finished_jobs, make_pdf, read_calls
from ocrpipe.folders.layout import short_name
from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import Scheduler

SchedulerFor = Callable[[Settings], Scheduler]


def zip_of_pdf(n: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"doc{n}/page2.pdf", make_pdf(1, scenario=f"ok-{n}"))
        zf.writestr(f"doc{n}/page10.pdf", make_pdf(1))
    return buffer.getvalue()


def max_overlap(calls: list[dict[str, Any]], tool: str, group: str) -> int:
    """Most calls of ``tool`` running at once; calls are grouped (a PREP = 7z l + 7z x of one archive)."""
    spans: dict[str, list[float]] = {}
    for call in calls:
        if call["tool"] == tool:
            span = spans.setdefault(call[group], [call["t"], call["t"]])
            span[0], span[1] = min(span[0], call["t"]), max(span[1], call["t"])
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def finished(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {entry["source"]: entry for entry in finished_jobs(data_dir)}


def test_concurrency_limits_hold_and_every_job_ends_done(data_dir: Path, tool_log: Path,
                                                         make_settings: Callable[..., Settings],
                                                         scheduler_for: SchedulerFor) -> None:
    settings = make_settings(PREP_CONCURRENCY="2", OCR_CONCURRENCY="3", FAKE_7Z_DELAY="0.5", FAKE_OCR_DELAY="3")
    (data_dir / "in").mkdir(parents=True)
    for n in range(12):
        (data_dir / "in" / f"batch{n}.zip").write_bytes(zip_of_pdf(n))
    scheduler = scheduler_for(settings)
    drive(scheduler, timeout=120)

    calls = read_calls(tool_log)
    assert max_overlap(calls, "7z", "archive") == 2
    assert max_overlap(calls, "ocrmypdf", "input") == 3
    done = finished(data_dir)
    assert len(done) == 12 and {e["state"] for e in done.values()} == {"DONE"}
    assert sorted(p.name for p in (data_dir / "out").iterdir()) == sorted(f"batch{n}.pdf" for n in range(12))
    assert len(list((data_dir / "archive").iterdir())) == 12
    assert [p for p in (data_dir / "work").iterdir()] == []
    metrics = json.loads((data_dir / "index" / "metrics.json").read_text())
    assert (metrics["jobs_done"], metrics["pages_done"], metrics["jobs_error"]) == (12, 24, 0)


def test_duplicate_is_held_untouched(data_dir: Path, make_settings: Callable[..., Settings],
                                     scheduler_for: SchedulerFor) -> None:
    (data_dir / "in" / "again").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(2))
    (data_dir / "in" / "again" / "copy.pdf").write_bytes(make_pdf(2))
    drive(scheduler_for(make_settings()))
    assert len(list((data_dir / "out").rglob("*.pdf"))) == 1
    [held_dir] = list((data_dir / "hold" / "duplicates").iterdir())
    held = [p for p in held_dir.iterdir() if not p.name.endswith(".json")]
    assert len(held) == 1 and held[0].read_bytes() == make_pdf(2)
    status = json.loads((held_dir / "status.json").read_text())
    assert status["state"] == "DUPLICATE_PENDING" and held_dir.name == short_name(status["jobKey"])


def test_transient_failures_are_retried_until_done(data_dir: Path, make_settings: Callable[..., Settings],
                                                   scheduler_for: SchedulerFor) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "flaky.pdf").write_bytes(make_pdf(1, scenario="transient-2"))
    drive(scheduler_for(make_settings()))
    entry = finished(data_dir)["flaky.pdf"]
    assert entry["state"] == "DONE"
    assert (data_dir / "out" / "flaky.pdf").exists()
    metrics = json.loads((data_dir / "index" / "metrics.json").read_text())
    assert metrics["retries"] == 2 and metrics["jobs_done"] == 1


@pytest.mark.parametrize(("scenario", "attempts", "reason", "code"), [
    ("exit-8", 1, "the PDF is encrypted; it needs a password to open", "PDF_PASSWORD"),
    ("exit-2", 1, "not a document ocrmypdf can read", "PDF_DAMAGED"),
    ("exit-7", 3, "a program run by ocrmypdf (Tesseract or Ghostscript) failed", "TOOL_FAILED"),
    ("nooutput", 3, "ocrmypdf reported success but wrote no output", "TOOL_FAILED"),
    # exit 15 ("other") is retried, unless the tool names a cause that another attempt cannot change
    ("exit-15", 3, "ocrmypdf failed unexpectedly", "TOOL_FAILED"),
    ("says-DecompressionBombError", 1, "image too large", "IMAGE_TOO_LARGE"),
    ("says-HifiPrintImageNotTranscodableError", 1, "cannot convert", "PDF_UNSUPPORTED_IMAGE"),
    ("says-DigitalSignatureError", 1, "digitally signed", "PDF_SIGNED"),
])
def test_failures_end_in_error_folder_with_reason(data_dir: Path, make_settings: Callable[..., Settings],
                                                  scheduler_for: SchedulerFor, scenario: str, attempts: int,
                                                  reason: str, code: str) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "bad.pdf").write_bytes(make_pdf(1, scenario=scenario))
    drive(scheduler_for(make_settings()))
    [folder] = list((data_dir / "error").iterdir())
    error = json.loads((folder / "error.json").read_text())
    assert error["stage"] == "OCR" and error["attempts"]["OCR"] == attempts
    assert reason in error["reason"] and error["code"] == code
    assert (folder / "bad.pdf").read_bytes() == make_pdf(1, scenario=scenario)
    assert list((data_dir / "out").iterdir()) == [] and list((data_dir / "work").iterdir()) == []


def test_bad_inputs_fail_in_prep_at_once(data_dir: Path, make_settings: Callable[..., Settings],
                                         scheduler_for: SchedulerFor) -> None:
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    (inbox / "empty.pdf").write_bytes(b"")
    (inbox / "notes.txt").write_text("not a scan")
    (inbox / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    drive(scheduler_for(make_settings()))
    reasons = {e["source"]: e["reason"] for e in finished(data_dir).values()}
    assert reasons["empty.pdf"] == "the file is empty"
    assert reasons["notes.txt"].startswith("unsupported file type")
    assert reasons["broken.zip"].startswith("archive is damaged")
    codes = {}
    for folder in (data_dir / "error").iterdir():
        error = json.loads((folder / "error.json").read_text())
        assert error["attempts"]["PREP"] == 1
        codes[error["source"]] = error["code"]
    assert codes == {"empty.pdf": "EMPTY_FILE", "notes.txt": "UNSUPPORTED_TYPE", "broken.zip": "ARCHIVE_DAMAGED"}


def test_hung_tool_is_killed_with_its_children(data_dir: Path, tool_log: Path,
                                               make_settings: Callable[..., Settings],
                                               scheduler_for: SchedulerFor) -> None:
    settings = make_settings(OCR_TIMEOUT_SECONDS="2", OCR_TIMEOUT_PER_PAGE_SECONDS="0", MAX_ATTEMPTS_OCR="2")
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "stuck.pdf").write_bytes(make_pdf(1, scenario="hang"))
    drive(scheduler_for(settings), timeout=60)
    error = json.loads(next((data_dir / "error").glob("*/error.json")).read_text())
    assert error["reason"].endswith("ran longer than 2s and was stopped") and error["attempts"]["OCR"] == 2
    children = [c["child_pid"] for c in read_calls(tool_log) if c["tool"] == "child"]
    tools = [c["pid"] for c in read_calls(tool_log) if c["tool"] == "ocrmypdf"]
    assert len(children) == 2
    assert not [pid for pid in children + tools if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


def test_dead_worker_breaks_pool_which_is_rebuilt(data_dir: Path, make_settings: Callable[..., Settings],
                                                  scheduler_for: SchedulerFor) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "victim.pdf").write_bytes(make_pdf(1, scenario="killparent"))
    (data_dir / "in" / "bystander.pdf").write_bytes(make_pdf(3))
    drive(scheduler_for(make_settings(OCR_CONCURRENCY="2")), timeout=60)
    done = finished(data_dir)
    assert {k: v["state"] for k, v in done.items()} == {"victim.pdf": "DONE", "bystander.pdf": "DONE"}


def test_admission_is_capped(data_dir: Path, make_settings: Callable[..., Settings],
                             scheduler_for: SchedulerFor) -> None:
    (data_dir / "in").mkdir(parents=True)
    for n in range(5):
        (data_dir / "in" / f"f{n}.pdf").write_bytes(make_pdf(n + 1))
    scheduler = scheduler_for(make_settings(MAX_JOBS_IN_FLIGHT="2", FAKE_OCR_DELAY="0.3"))
    peak = 0

    def until() -> bool:
        nonlocal peak
        peak = max(peak, len(scheduler.jobs))
        assert len(list((data_dir / "in").glob("*.pdf"))) >= 5 - len(finished_or_none(data_dir)) - 2
        return scheduler.idle()

    drive(scheduler, until=until)
    assert peak == 2 and len(list((data_dir / "out").iterdir())) == 5


def finished_or_none(data_dir: Path) -> dict[str, Any]:
    return finished(data_dir)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrpipe", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_cli_run_once_exit_codes_and_status(data_dir: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1))
    result = run_cli(fake_env, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (data_dir / "out" / "good.pdf").exists() and (data_dir / "archive" / "good.pdf").exists()

    (data_dir / "in" / "locked.pdf").write_bytes(make_pdf(1, scenario="exit-8"))
    result = run_cli(fake_env, "run", "--once")
    assert result.returncode == 1 and "encrypted" in result.stderr

    status = run_cli(fake_env, "status", "--json")
    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["counts"] == {"DONE": 1, "ERROR": 1}
    assert report["recentErrors"][0]["source"] == "locked.pdf"
    text = run_cli(fake_env, "status")
    assert "DONE" in text.stdout and "locked.pdf: the PDF is encrypted" in text.stdout


def test_cli_missing_tool_exits_3(data_dir: Path, fake_env: dict[str, str]) -> None:
    env = {**fake_env, "SEVEN_ZIP": str(data_dir / "no-such-7z")}
    result = run_cli(env, "run", "--once")
    assert result.returncode == 3 and "missing tool(s): 7z" in result.stderr
    doctor = run_cli(env, "doctor")
    assert doctor.returncode == 3
    assert "MISSING  7z" in doctor.stdout and "apt-get install -y p7zip-full" in doctor.stdout
    assert "winget install --id 7zip.7zip" in doctor.stdout
    assert "ok       HEIC/HEIF    pillow-heif" in doctor.stdout  # optional formats are shown too


def test_cli_output_whose_reader_left_is_no_error(data_dir: Path, fake_env: dict[str, str]) -> None:
    """`ocrpipe doctor | head -1`: the reader is gone before ocrpipe writes; no internal error is reported."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        result = subprocess.run([sys.executable, "-m", "ocrpipe", "doctor"], env=fake_env, stdin=subprocess.DEVNULL,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
