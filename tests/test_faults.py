"""The faults a long-running ocrpipe meets, each reproduced: a long-running ocrpipe survives them, loses nothing,
doubles nothing and sends no innocent file to error/. The pools are executors the test drives; the
stage functions run for real, with the fake tools."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import make_pdf
from faultkit import Driven, SimulatedCrash, crash_at, files_under, finished
from ocrpipe.config import Settings
from ocrpipe.folders.heartbeat import HOST, heartbeat_path
from ocrpipe.model import JobState, Stage
from ocrpipe.ownprocs import mark_env
from ocrpipe.folders.store import read_state

MB = 2**20


def drop(data_dir: Path, name: str, content: bytes) -> None:
    (data_dir / "in").mkdir(parents=True, exist_ok=True)
    (data_dir / "in" / name).write_bytes(content)


def error_reasons(data_dir: Path) -> list[str]:
    return [json.loads(p.read_text())["reason"] for p in sorted((data_dir / "error").glob("*/error.json"))]


# ----- 1. submit to a broken pool ------------------------------------------------------------------

def test_submit_to_a_pool_broken_while_idle_rebuilds_it_and_charges_nothing(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    drop(data_dir, "a.pdf", make_pdf(1))
    driven = Driven(make_settings())
    now = driven.run_all(0.0)
    prep_executor = driven.executors[0]
    prep_executor.broken_submits = 1  # its worker died while idle: the next submit raises
    drop(data_dir, "b.pdf", make_pdf(2))
    driven.run_all(now)
    assert files_under(data_dir / "out") == ["a.pdf", "b.pdf"] and error_reasons(data_dir) == []
    assert [e["attempts"]["PREP"] for e in finished(data_dir)] == [1, 1]


# ----- 2. the scheduler writes over what the worker recorded ------------------------------------------

@pytest.mark.parametrize("stage", ["PREP", "OCR"])
def test_a_worker_that_dies_after_doing_its_work_is_not_written_over(
        stage: str, data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    drop(data_dir, "a.pdf", make_pdf(1))
    driven = Driven(make_settings(OCR_BATCH_MAX_PAGES="1"))
    now = 0.0
    for _ in range(5):
        now += 1.0
        driven.scheduler.tick(now)
        if not driven.calls():
            continue
        future, fn, args, kwargs = driven.pop()
        fn(*args, **kwargs)  # the work is done and recorded…
        future.set_exception(BrokenProcessPool("…then the worker died"))  # …before the result came back
        if fn.__name__ == ("run_prep" if stage == "PREP" else "run_ocr"):
            break
    driven.run_all(now)
    assert files_under(data_dir / "out") == ["a.pdf"] and files_under(data_dir / "archive") == ["a.pdf"]
    assert error_reasons(data_dir) == []


def test_a_published_batch_member_is_not_reaped_while_its_batch_runs_on(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    """clean_done_job removed a published member's heartbeat; past 2 × JOB_TIMEOUT_SECONDS the stale
    check took the missing heartbeat for a lost worker and failed a DONE job."""
    drop(data_dir, "a.pdf", make_pdf(1))
    drop(data_dir, "b.pdf", make_pdf(1, scenario="b"))
    driven = Driven(make_settings(JOB_TIMEOUT_SECONDS="60", OCR_CONCURRENCY="1", PREP_CONCURRENCY="2"))
    now = 0.0
    while len(driven.calls()) < 2 and now < 10:
        now += 1.0
        driven.scheduler.tick(now)
    for future, fn, args, kwargs in [driven.pop(), driven.pop()]:
        future.set_result(fn(*args, **kwargs))
    driven.scheduler.tick(now)
    [(future, fn, args, kwargs)] = [driven.pop()]
    assert fn.__name__ == "run_ocr_batch"
    result = fn(*args, **kwargs)  # both members published; the worker is still finishing (say, cleaning up)
    driven.scheduler.tick(now + 500.0)  # the batch has run for more than 2 × JOB_TIMEOUT_SECONDS
    future.set_result(result)
    driven.run_all(now + 501.0)
    assert files_under(data_dir / "out") == ["a.pdf", "b.pdf"] and error_reasons(data_dir) == []


# ----- 3. a crash in intake ----------------------------------------------------------------------------

def test_a_crash_before_the_file_reaches_input_is_finished_at_restart(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    drop(data_dir, "a.pdf", make_pdf(1))
    driven = Driven(make_settings())
    with crash_at(monkeypatch, "replace", lambda src, dst, *a: Path(dst).parent.name == "input"):
        with pytest.raises(SimulatedCrash):
            driven.scheduler.tick(0.0)
    assert [p.name for p in (data_dir / "work").glob("*/input")]  # the folder is there, the file is not
    driven.restart()
    driven.run_all(1.0)
    assert files_under(data_dir / "out") == ["a.pdf"] and files_under(data_dir / "archive") == ["a.pdf"]
    assert files_under(data_dir / "hold") == [] and error_reasons(data_dir) == []


def test_a_crash_between_copy_and_delete_of_a_cross_volume_intake_keeps_one_copy(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    drop(data_dir, "a.pdf", make_pdf(1))
    driven = Driven(make_settings())
    real_replace = os.replace

    def across_volumes(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst).parent.name == "input" and ".ocrpipe-staging" in str(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", across_volumes)
    with crash_at(monkeypatch, "unlink", lambda path, *a: ".ocrpipe-staging" in str(path)):
        with pytest.raises(SimulatedCrash):
            driven.scheduler.tick(0.0)
    driven.restart()
    driven.run_all(1.0)
    assert files_under(data_dir / "out") == ["a.pdf"] and files_under(data_dir / "archive") == ["a.pdf"]
    assert files_under(data_dir / "hold") == [] and files_under(data_dir / "in") == []


def test_the_same_file_dropped_again_while_its_job_waits_is_held_not_taken_for_a_leftover(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    contents = {"a.pdf": make_pdf(1, scenario="a"), "b.pdf": make_pdf(1, scenario="b")}
    for name, content in contents.items():
        drop(data_dir, name, content)
    driven = Driven(make_settings(PREP_CONCURRENCY="1"))
    driven.scheduler.tick(0.0)
    [waiting] = [j for j in driven.scheduler.jobs.values() if j.state is JobState.DISCOVERED]
    name = read_state(waiting.dir)["source"]["relpath"]
    drop(data_dir, name, contents[name])  # the scanner sends it again, same name, same bytes
    driven.run_all(1.0)
    assert files_under(data_dir / "out") == ["a.pdf", "b.pdf"]
    assert [p.name.split("__", 1)[1] for p in (data_dir / "hold").rglob("*.pdf")] == [name]


def test_a_job_whose_original_is_missing_goes_to_error_without_a_crash_loop(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    drop(data_dir, "a.pdf", make_pdf(1))
    driven = Driven(make_settings(MAX_ATTEMPTS_PREP="1"))
    driven.scheduler.tick(0.0)
    [job_dir] = [state.parent for state in (data_dir / "work").glob("*/state.json")]
    shutil.rmtree(job_dir / "input")  # lost by hand, say
    driven.run_all(1.0)
    assert len(error_reasons(data_dir)) == 1
    driven.restart()
    driven.run_all(100.0)  # a second start is quiet: nothing left, nothing raised


# ----- a fault in one job -------------------------------------------------------------------------

def test_an_unexpected_exception_in_one_job_sends_it_to_error_and_the_run_goes_on(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    drop(data_dir, "a.pdf", make_pdf(1, scenario="bad"))
    drop(data_dir, "b.pdf", make_pdf(2))
    driven = Driven(make_settings())
    driven.scheduler.tick(0.0)
    future, *_ = next(c for c in driven.calls() if "a.pdf" in str(read_state(c[2][1])["source"]["relpath"]))
    driven.pop(next(i for i, c in enumerate(driven.calls()) if c[0] is future))
    future.set_result("not an outcome")  # what no code path expects
    driven.run_all(1.0)
    assert files_under(data_dir / "out") == ["b.pdf"]
    [reason] = error_reasons(data_dir)
    assert reason.startswith("internal error: AttributeError")
    assert [p.name for p in (data_dir / "error").glob("*/*.pdf")] == ["a.pdf"]


# ----- 5. attempts that do not count --------------------------------------------------------------

def test_free_attempts_survive_restarts(data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    """A full disk three times, ocrpipe restarted after each: the file still ends in out/."""
    drop(data_dir, "a.pdf", make_pdf(1, scenario="enospc-3"))
    driven = Driven(make_settings(MAX_ATTEMPTS_OCR="2"))
    now = 0.0
    for _ in range(40):
        now += 10.0
        driven.scheduler.tick(now)
        for future, fn, args, kwargs in [driven.pop() for _ in list(driven.calls())]:
            outcome = fn(*args, **kwargs)
            future.set_result(outcome)
            if not getattr(outcome, "ok", True):
                driven.scheduler.tick(now)
                driven.restart()
        if driven.scheduler.idle() and finished(data_dir):
            break
    assert files_under(data_dir / "out") == ["a.pdf"] and error_reasons(data_dir) == []


def test_a_file_that_fills_the_disk_itself_ends_in_error_instead_of_retrying_for_ever(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    drop(data_dir, "a.pdf", make_pdf(1, scenario="enospc-1000"))
    driven = Driven(make_settings(MAX_ATTEMPTS_OCR="2"))
    driven.run_all(0.0, rounds=100)
    [reason] = error_reasons(data_dir)
    assert "disk is full" in reason


# ----- 6. a document that can never fit ------------------------------------------------------------

def test_a_document_too_big_for_the_volume_fails_and_blocks_nothing_behind_it(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(total=900 * MB, free=900 * MB))
    drop(data_dir, "big.pdf", make_pdf(10))
    drop(data_dir, "small.pdf", make_pdf(1))
    driven = Driven(make_settings(MIN_FREE_MB="0", OCR_TEMP_MB_PER_PAGE="100", OCR_BATCH_MAX_PAGES="1"))
    driven.run_all(0.0)
    assert files_under(data_dir / "out") == ["small.pdf"]
    [reason] = error_reasons(data_dir)
    assert "1000 MB" in reason
    assert [p.name for p in (data_dir / "error").glob("*/*.pdf")] == ["big.pdf"]


# ----- 9. stale workers and time ----------------------------------------------------------------------

def prep_submitted(data_dir: Path, driven: Driven) -> Path:
    drop(data_dir, "a.pdf", make_pdf(1))
    driven.scheduler.tick(0.0)
    [job] = driven.scheduler.jobs.values()
    assert job.state is JobState.PREP_SUBMITTED
    return job.dir


def test_a_stale_job_without_heartbeat_has_its_worker_killed(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    import subprocess
    import sys

    import psutil

    driven = Driven(make_settings(JOB_TIMEOUT_SECONDS="60"))
    job_dir = prep_submitted(data_dir, driven)
    # A pool worker of this ocrpipe: it carries the mark its pool workers inherit (ownprocs.py).
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdin=subprocess.DEVNULL,
                              env=mark_env(dict(os.environ), driven.settings.work_dir))
    try:
        # What a worker records as it starts, before its first heartbeat (which never came).
        state = json.loads((job_dir / "state.json").read_text())
        state.update(state="PREP_RUNNING", workerPid=worker.pid, workerHost=HOST,
                     workerCreateTime=psutil.Process(worker.pid).create_time())
        (job_dir / "state.json").write_text(json.dumps(state))
        for now in (50.0, 100.0, 150.0):  # past 2 × JOB_TIMEOUT_SECONDS without a heartbeat
            driven.scheduler.tick(now)
        assert worker.wait(timeout=10) is not None
    finally:
        worker.kill()
        worker.wait()


def backdate(path: Path, seconds: float) -> None:
    os.utime(path, (time.time() - seconds, time.time() - seconds))


def write_heartbeat(job_dir: Path) -> Path:
    hb = heartbeat_path(job_dir, Stage.PREP)
    hb.write_text(json.dumps({"stage": "PREP", "attempt": 1, "worker": None, "tools": [], "at": time.time()}))
    return hb


def test_a_pause_of_the_scheduler_gives_running_stages_a_fresh_grace_period(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    """A PC waking from sleep: every heartbeat is an hour old, and so is the last tick."""
    driven = Driven(make_settings(JOB_TIMEOUT_SECONDS="60"))
    job_dir = prep_submitted(data_dir, driven)
    backdate(write_heartbeat(job_dir), 3600)
    driven.scheduler.tick(3600.0)
    [job] = driven.scheduler.jobs.values()
    assert job.state is JobState.PREP_SUBMITTED and job.attempts["PREP"] == 1


def test_a_clock_step_gives_running_stages_a_fresh_grace_period(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    driven = Driven(make_settings(JOB_TIMEOUT_SECONDS="60"))
    job_dir = prep_submitted(data_dir, driven)
    write_heartbeat(job_dir)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # the wall clock steps an hour ahead
    driven.scheduler.tick(1.0)
    [job] = driven.scheduler.jobs.values()
    assert job.state is JobState.PREP_SUBMITTED and job.attempts["PREP"] == 1


def test_a_heartbeat_dated_in_the_future_counts_as_fresh(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    driven = Driven(make_settings(JOB_TIMEOUT_SECONDS="60"))
    job_dir = prep_submitted(data_dir, driven)
    backdate(write_heartbeat(job_dir), -3600)
    driven.scheduler.tick(1.0)
    assert driven.scheduler.check_stale_jobs(list(driven.scheduler.jobs.values()), 60, now=2.0) == []


# ----- 7. volumes without hard links -----------------------------------------------------------------

def test_publishing_again_after_a_crash_on_a_volume_without_hard_links_places_nothing_twice(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted (FAT has no hard links)")

    monkeypatch.setattr(os, "link", no_links)
    drop(data_dir, "scan.pdf", make_pdf(1))
    driven = Driven(make_settings(OCR_BATCH_MAX_PAGES="1"))
    # Killed just before DONE is recorded: both files are placed, the record does not say so yet.
    with crash_at(monkeypatch, "replace", lambda src, dst, *a: Path(dst).name == "state.json"
                  and "OCR_RUNNING" in Path(src).read_text() and '"output": "' in Path(src).read_text()):
        with pytest.raises(SimulatedCrash):
            driven.run_all(0.0)
    driven.restart()
    driven.run_all(100.0)
    assert files_under(data_dir / "out") == ["scan.pdf"] and files_under(data_dir / "archive") == ["scan.pdf"]
    assert [p.name for p in (data_dir / "out").iterdir()] == ["scan.pdf"] and error_reasons(data_dir) == []


# ----- 8. a file held for a moment (Windows) -----------------------------------------------------------

def test_an_atomic_write_over_a_file_held_for_a_moment_is_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ocrpipe.folders.fsutil import atomic_write_json

    real, refusals = os.replace, [2]

    def held(src: Any, dst: Any) -> None:
        if refusals[0]:
            refusals[0] -= 1
            raise PermissionError(13, "The process cannot access the file because it is being used")
        real(src, dst)

    monkeypatch.setattr(os, "replace", held)
    atomic_write_json(tmp_path / "state.json", {"a": 1})
    assert json.loads((tmp_path / "state.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


# ----- a fault outside any job --------------------------------------------------------------------------

def test_a_fault_outside_any_job_is_retried_with_a_pause_then_stops_with_its_own_exit_code(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    from conftest import TEST_PROFILE
    from ocrpipe.errors import ExitCode, OcrpipeError
    from ocrpipe.engine.scheduler import Scheduler

    def no_pool(workers: int) -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    drop(data_dir, "a.pdf", make_pdf(1))
    scheduler = Scheduler(make_settings(), profile=TEST_PROFILE, executor_factory=no_pool)
    now, ticks = 0.0, 0
    with pytest.raises(OcrpipeError) as stopped:
        while ticks < 1000:
            scheduler.tick(now)
            now, ticks = now + 0.5, ticks + 1
    assert stopped.value.exit_code == ExitCode.SCHEDULER_FAULT == 5
    assert "Too many open files" in str(stopped.value)
    assert now >= 2 + 4 + 8 + 16  # it paused between tries: it did not spin
    assert (data_dir / "work").is_dir() and len(list((data_dir / "work").iterdir())) == 1  # nothing lost


def test_a_job_index_fault_while_finishing_a_job_is_retried_and_the_job_still_ends_well(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    from ocrpipe.index.db import IndexBusyError

    drop(data_dir, "a.pdf", make_pdf(1))
    driven = Driven(make_settings())
    driven.scheduler.tick(0.0)
    index = driven.scheduler.index
    real, refusals = index.record, [2]

    def busy(entry: dict[str, Any], **kwargs: Any) -> None:  # kwargs: the pages' text, stored with the entry
        if refusals[0]:
            refusals[0] -= 1
            raise IndexBusyError("the job index stayed locked by another program")
        real(entry, **kwargs)

    index.record = busy  # type: ignore[method-assign]
    driven.run_all(1.0, rounds=100)
    assert files_under(data_dir / "out") == ["a.pdf"] and error_reasons(data_dir) == []
    assert [e["state"] for e in finished(data_dir)] == ["DONE"] and refusals == [0]


def test_a_crash_while_a_finished_job_folder_is_removed_leaves_nothing_behind_at_restart(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    """rmtree killed after state.json went: the job was recorded; the rest of its folder goes at the next
    start. A folder that still holds an original in input/ is never removed that way."""
    settings = make_settings()
    (data_dir / "in").mkdir(parents=True)
    shell = data_dir / "work" / ("a" * 64 + "__" + "b" * 64)
    (shell / "prep").mkdir(parents=True)
    (shell / "raw.pdf").write_bytes(make_pdf(1))
    kept = data_dir / "work" / ("c" * 64 + "__" + "b" * 64)
    (kept / "input").mkdir(parents=True)
    (kept / "input" / "scan.pdf").write_bytes(make_pdf(1))
    short_shell = data_dir / "work" / ("d" * 16 + "_" + "b" * 8)  # today's short folder name
    (short_shell / "tmp").mkdir(parents=True)
    stranger = data_dir / "work" / "notes"  # not ocrpipe's: never touched
    (stranger / "tmp").mkdir(parents=True)
    (stranger / "tmp" / "mine.txt").write_text("keep me")
    Driven(settings).scheduler.tick(1.0)
    assert not shell.exists() and not short_shell.exists() and (kept / "input" / "scan.pdf").is_file()
    assert (stranger / "tmp" / "mine.txt").read_text() == "keep me"
