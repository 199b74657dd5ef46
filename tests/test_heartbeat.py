"""Heartbeats: the staleness rules, the stale-job reaper, and killing only the processes recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import psutil
import pytest

from conftest import make_pdf
from ocrpipe.config import Settings
from ocrpipe.folders.heartbeat import HOST, HeartbeatWriter, is_heartbeat_stale, kill_recorded, read_heartbeat, tool_running
from ocrpipe.model import JobState, Stage
from ocrpipe.ownprocs import mark_env
from ocrpipe.engine.scheduler import Job, Scheduler
from ocrpipe.folders.store import new_state_record, read_state, transition, write_new_state


def test_absent_heartbeat_with_zero_absent_timeout_is_stale(tmp_path: Path) -> None:
    assert is_heartbeat_stale(tmp_path / "none.heartbeat", 60, absent_timeout_s=0)


def test_absent_heartbeat_with_positive_absent_timeout_is_not_stale(tmp_path: Path) -> None:
    assert not is_heartbeat_stale(tmp_path / "none.heartbeat", 60, absent_timeout_s=5)
    assert not is_heartbeat_stale(tmp_path / "none.heartbeat", 60)  # defaults to 2 * timeout_s


def test_present_heartbeat_is_stale_once_older_than_timeout(tmp_path: Path) -> None:
    hb = tmp_path / "ocr.heartbeat"
    hb.write_text("{}")
    os.utime(hb, (1000.0, 1000.0))
    assert not is_heartbeat_stale(hb, 60, now=1060.0)
    assert is_heartbeat_stale(hb, 60, now=1060.5)
    assert is_heartbeat_stale(hb, 60, absent_timeout_s=999, now=1100.0)


def test_absent_timeout_defaults_to_twice_the_timeout(tmp_path: Path) -> None:
    hb = tmp_path / "x.heartbeat"
    assert is_heartbeat_stale(hb, 60, absent_timeout_s=0)
    assert not is_heartbeat_stale(hb, 60, absent_timeout_s=None)


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL)


def test_writer_names_worker_and_tools_and_keeps_beating(tmp_path: Path) -> None:
    hb = tmp_path / "prep.heartbeat"
    proc = sleeper()
    try:
        with HeartbeatWriter([(hb, 2)], stage=Stage.PREP, interval=0.05):
            with tool_running(proc.pid):
                first = hb.stat().st_mtime_ns
                beat = read_heartbeat(hb)
                deadline = time.monotonic() + 5
                while hb.stat().st_mtime_ns == first and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert hb.stat().st_mtime_ns != first
        assert beat is not None and beat["stage"] == "PREP" and beat["attempt"] == 2
        assert beat["worker"]["pid"] == os.getpid()
        assert [t["pid"] for t in beat["tools"]] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()


def test_kill_only_when_pid_and_create_time_match(tmp_path: Path) -> None:
    work_dir = tmp_path / "work"
    hb = work_dir / "job" / "ocr.heartbeat"
    hb.parent.mkdir(parents=True)
    # a tool as a stage starts it: marked as this ocrpipe's (ownprocs.py)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL,
                            env=mark_env(dict(os.environ), work_dir))

    def beat(create_time: float) -> str:
        return json.dumps({"stage": "OCR", "attempt": 1, "host": HOST, "worker": None,
                           "tools": [{"pid": proc.pid, "createTime": create_time}]})

    try:
        create = psutil.Process(proc.pid).create_time()
        hb.write_text(beat(create - 100))
        assert kill_recorded(hb, include_worker=False, work_dir=work_dir) == []  # a reused pid: someone else's
        assert proc.poll() is None
        hb.write_text(beat(create))
        assert kill_recorded(hb, include_worker=False, work_dir=work_dir) == [proc.pid]
        assert proc.wait(timeout=5) is not None
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def idle_scheduler(make_settings: Callable[..., Settings], scheduler_for: Callable[[Settings], Scheduler]) -> Scheduler:
    scheduler = scheduler_for(make_settings())
    scheduler.start()
    return scheduler


def job_in(scheduler: Scheduler, name: str, states: list[JobState], submitted_at: float) -> Job:
    key = f"{name:0<64}__{'p' * 64}"
    job_dir = scheduler.settings.work_dir / key
    record = new_state_record(job_key=key, run_id="r1", file_hash=name, profile_hash="p",
                              source_name=f"{name}.pdf", source_relpath=f"{name}.pdf", size=1)
    write_new_state(job_dir, record)
    (job_dir / "input").mkdir()
    (job_dir / record["input"]).write_bytes(make_pdf())
    attempts = {"PREP": 0, "OCR": 0}
    for state in states:
        if state.value.endswith("SUBMITTED"):
            attempts[state.value.split("_")[0]] += 1
        transition(job_dir, state, attempts=dict(attempts))
    job = Job(key, job_dir, states[-1] if states else JobState.DISCOVERED, pages=1, attempts=attempts,
              submitted_at=submitted_at)
    scheduler._track(job)
    return job


PREP_RUNNING = [JobState.PREP_SUBMITTED, JobState.PREP_RUNNING]
OCR_RUNNING = PREP_RUNNING + [JobState.PREP_DONE, JobState.OCR_SUBMITTED, JobState.OCR_RUNNING]


@pytest.mark.parametrize(("states", "stage", "expected"), [
    (PREP_RUNNING, Stage.PREP, JobState.PREP_RETRY),
    (OCR_RUNNING, Stage.OCR, JobState.OCR_RETRY),
])
def test_stale_heartbeat_sends_running_job_to_retry(idle_scheduler: Scheduler, states: list[JobState],
                                                    stage: Stage, expected: JobState) -> None:
    job = job_in(idle_scheduler, "a", states, submitted_at=0.0)
    hb = job.dir / f"{stage.value.lower()}.heartbeat"
    hb.write_text("{}")
    os.utime(hb, (time.time() - 61, time.time() - 61))
    stale = idle_scheduler.check_stale_jobs(idle_scheduler.jobs.values(), 60, now=10.0)
    record = read_state(job.dir)
    assert stale == [job] and record["state"] == expected.value and job.state is expected
    assert record["lastError"]["reason"] == "heartbeat stale after 60s"
    assert [h["state"] for h in record["history"]][-2:] == [f"{stage.value}_TIMEOUT", expected.value]
    assert idle_scheduler.metrics["timeouts"] == 1


def test_recent_heartbeat_leaves_the_stage_alone(idle_scheduler: Scheduler) -> None:
    job = job_in(idle_scheduler, "b", OCR_RUNNING, submitted_at=0.0)
    (job.dir / "ocr.heartbeat").write_text("{}")
    assert idle_scheduler.check_stale_jobs(idle_scheduler.jobs.values(), 60, now=100.0) == []
    assert read_state(job.dir)["state"] == "OCR_RUNNING"


def test_stage_running_past_its_limit_is_stopped_even_with_a_fresh_heartbeat(idle_scheduler: Scheduler) -> None:
    job = job_in(idle_scheduler, "e", OCR_RUNNING, submitted_at=0.0)  # 1 page: 300 s + 60 s
    (job.dir / "ocr.heartbeat").write_text("{}")
    assert idle_scheduler.check_stale_jobs(idle_scheduler.jobs.values(), 60, now=380.0) == []
    assert idle_scheduler.check_stale_jobs(idle_scheduler.jobs.values(), 60, now=400.0) == [job]
    record = read_state(job.dir)
    assert record["state"] == "OCR_RETRY"
    assert record["lastError"]["reason"] == "OCR ran longer than its limit of 360s"


def test_missing_heartbeat_is_stale_only_after_twice_the_timeout(idle_scheduler: Scheduler) -> None:
    job = job_in(idle_scheduler, "c", PREP_RUNNING, submitted_at=100.0)
    assert idle_scheduler.check_stale_jobs(idle_scheduler.jobs.values(), 60, now=219.0) == []
    assert idle_scheduler.check_stale_jobs(idle_scheduler.jobs.values(), 60, now=220.0) == [job]


def test_discovered_job_is_untouched(idle_scheduler: Scheduler) -> None:
    job = job_in(idle_scheduler, "d", [], submitted_at=0.0)
    assert idle_scheduler.check_stale_jobs(idle_scheduler.jobs.values(), 60, now=10_000.0) == []
    assert read_state(job.dir)["state"] == "DISCOVERED"
