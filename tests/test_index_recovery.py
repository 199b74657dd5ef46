"""The job index across crashes and damage: SIGKILL on either side of recording a job, a damaged file."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import TEST_PROFILE, finished_jobs, make_pdf
from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import sha256_file
from ocrpipe.index.db import DB_FILE
from ocrpipe.index.rebuild import open_run_index
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.model import make_job_key
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.folders.store import read_state


class Inline(Executor):
    """Runs each stage at once, in this process: the crash comes at a known step."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


# Runs the scheduler until it kills itself (SIGKILL: no cleanup, no close) just before the job is
# recorded, or just after (as its work folder is about to be removed).
CRASHING_RUN = """
import os, shutil, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from conftest import TEST_PROFILE
from test_index_recovery import Inline
from ocrpipe.config import load_settings
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.engine.scheduler import Scheduler

def die(*args, **kwargs):
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))  # SIGTERM is TerminateProcess on Windows

settings = load_settings(dict(os.environ))
if sys.argv[1] == "before-record":
    JobIndex.record = die
else:
    rmtree = shutil.rmtree
    shutil.rmtree = lambda path, *a, **k: die() if Path(path).parent == settings.work_dir else rmtree(path, *a, **k)
scheduler = Scheduler(settings, profile=TEST_PROFILE, executor_factory=lambda workers: Inline())
for n in range(50):
    scheduler.tick(float(n))
sys.exit("the job finished without the crash")
"""


@pytest.mark.parametrize("when", ["before-record", "after-record"])
def test_sigkill_on_either_side_of_recording_a_job(when: str, data_dir: Path, fake_env: dict[str, str],
                                                   make_settings: Callable[..., Settings]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(2))
    crashed = subprocess.run([sys.executable, "-c", CRASHING_RUN, when, str(Path(__file__).parent)],
                             env=fake_env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert crashed.returncode == (-signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM), crashed.stderr
    [job_dir] = list((data_dir / "work").iterdir())  # the work folder is still there in both cases
    assert read_state(job_dir)["state"] == "DONE"
    assert len(finished_jobs(data_dir)) == (0 if when == "before-record" else 1)

    scheduler = Scheduler(make_settings(), profile=TEST_PROFILE, executor_factory=lambda workers: Inline())
    try:
        scheduler.tick(0.0)
        assert scheduler.idle()
    finally:
        scheduler.close()
    [entry] = finished_jobs(data_dir)  # recorded once, whichever side the crash was on
    assert (entry["source"], entry["state"], entry["pages"]) == ("scan.pdf", "DONE", 2)
    assert list((data_dir / "work").iterdir()) == []
    assert [p.name for p in (data_dir / "out").iterdir()] == ["scan.pdf"]


def disk_history(settings: Settings) -> tuple[str, str]:
    """What a damaged index is rebuilt from: one failed job in error/, one done in archive/ + out/."""
    error_dir = settings.error_dir / "f00d__p"
    error_dir.mkdir(parents=True)
    (error_dir / "locked.pdf").write_bytes(b"%PDF-1.4 encrypted")
    (error_dir / "error.json").write_text(json.dumps({
        "jobKey": "f00d__p", "runId": "run1", "source": "locked.pdf", "file": "locked.pdf", "stage": "PREP",
        "attempts": {"PREP": 1, "OCR": 0}, "reason": "the PDF is encrypted", "exitCode": 8,
        "failedAt": "2026-11-30T10:00:00.000+00:00"}))
    (settings.archive_dir / "May").mkdir(parents=True)
    (settings.out_dir / "May").mkdir(parents=True)
    original = settings.archive_dir / "May" / "scan.tif"
    original.write_bytes(b"II*\x00 a scan")
    (settings.out_dir / "May" / "scan.pdf").write_bytes(make_pdf(1))
    return "f00d__p", make_job_key(sha256_file(original), TEST_PROFILE)[1]


def test_a_damaged_file_is_moved_aside_and_rebuilt_from_disk(make_settings: Callable[..., Settings],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings()
    failed_key, done_key = disk_history(settings)
    settings.index_dir.mkdir(parents=True)
    (settings.index_dir / DB_FILE).write_bytes(b"this is not an SQLite file\n" * 200)
    (settings.index_dir / "jobs.jsonl.imported").write_text("".join(json.dumps(e) + "\n" for e in [
        {"jobKey": "old__p", "runId": "r0", "state": "DONE", "source": "old.pdf", "pages": 9},
        # The failed job was recorded before the migration: the complete line wins over error.json.
        {"jobKey": failed_key, "runId": "run1", "state": "ERROR", "reason": "the PDF is encrypted", "code": 8,
         "pages": 3, "kind": "pdf"}]))
    with open_run_index(settings, TEST_PROFILE) as index:
        assert index.counts() == {"DONE": 2, "ERROR": 1}
        [failed] = index.get(failed_key)
        assert (failed["state"], failed["runId"], failed["reason"], failed["code"], failed["pages"]) == (
            "ERROR", "run1", "the PDF is encrypted", 8, 3)
        [done] = index.get(done_key)
        assert (done["state"], done["source"]) == ("DONE", "May/scan.tif")
        assert done["output"] == str(settings.out_dir / "May" / "scan.pdf")
        assert index.is_done(done_key) and index.get("old__p")[0]["pages"] == 9
    [aside] = settings.index_dir.glob(f"{DB_FILE}.damaged-*")
    assert aside.read_bytes().startswith(b"this is not an SQLite file")
    assert any(r.levelno == logging.ERROR and "is damaged" in r.getMessage() and aside.name in r.getMessage()
               for r in caplog.records)
    with open_run_index(settings, TEST_PROFILE) as index:  # rebuilt once, not at every start
        assert index.counts() == {"DONE": 2, "ERROR": 1}
    assert len(list(settings.index_dir.glob(f"{DB_FILE}.damaged-*"))) == 1


def test_damage_inside_the_file_found_while_running_is_rebuilt(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    _, done_key = disk_history(settings)
    with JobIndex(settings.index_dir) as index:
        index.record_many({"jobKey": f"k{n}", "runId": "r", "state": "DONE", "source": "x" * 200}
                          for n in range(3000))
    db = settings.index_dir / DB_FILE
    with open(db, "r+b") as handle:  # the header and schema survive; the pages holding the jobs do not
        handle.seek(3 * 4096)
        handle.write(b"\xa5" * (db.stat().st_size - 3 * 4096))
    with open_run_index(settings, TEST_PROFILE) as index:
        assert index.counts() == {"DONE": 1, "ERROR": 1}
        index.record({"jobKey": "new", "runId": "r", "state": "DONE"})
        assert index.is_done(done_key) and index.is_done("new")


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrpipe", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_cli_on_a_damaged_index_clear_words_and_no_crash_loop(data_dir: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "index").mkdir(parents=True)
    (data_dir / "index" / DB_FILE).write_bytes(b"\x00garbage" * 512)
    status = run_cli(fake_env, "status")
    assert status.returncode == 1 and "is damaged" in status.stderr and "Traceback" not in status.stderr
    assert "the next 'ocrpipe run' moves it aside and rebuilds it" in status.stderr
    (data_dir / "in").mkdir()
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    for _ in range(2):
        run = run_cli(fake_env, "run", "--once")
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert run_cli(fake_env, "status").returncode == 0
    assert [e["source"] for e in finished_jobs(data_dir)] == ["scan.pdf"]


def test_cli_on_an_index_that_cannot_be_opened_says_so(data_dir: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "index" / DB_FILE).mkdir(parents=True)  # a folder where the file should be
    for args in (("status",), ("export", "--jsonl"), ("run", "--once")):
        result = run_cli(fake_env, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "cannot use the job index" in result.stderr and "internal error" not in result.stderr


def test_cli_export(data_dir: Path, fake_env: dict[str, str], tmp_path: Path) -> None:
    with JobIndex(data_dir / "index") as index:
        index.record({"jobKey": "a__p", "runId": "r", "state": "DONE", "source": "a.pdf", "imagesReencoded": 2})
    to_stdout = run_cli(fake_env, "export", "--jsonl")
    assert to_stdout.returncode == 0 and json.loads(to_stdout.stdout)["imagesReencoded"] == 2
    out = tmp_path / "history.jsonl"
    to_file = run_cli(fake_env, "export", "--jsonl", "--data", str(data_dir), "--out", str(out))
    assert to_file.returncode == 0 and "exported 1 finished jobs" in to_file.stderr
    assert out.read_text(encoding="utf-8") == to_stdout.stdout
    nowhere = run_cli(fake_env, "export", "--jsonl", "--out", str(tmp_path / "no" / "such" / "dir" / "x.jsonl"))
    assert nowhere.returncode == 2 and "cannot write --out" in nowhere.stderr and "Traceback" not in nowhere.stderr
    assert run_cli(fake_env, "export").returncode == 2  # --jsonl is required: the only format there is
