"""Only ocrpipe's own processes are ever killed: a heartbeat or a state.json in work/ (which, on a
cluster, every worker machine writes) naming a process of this machine kills it only when the process
itself shows it is one of this ocrpipe's workers or tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest

from faultkit import Driven
from ocrpipe.folders.cancel import cancel_path, cancel_reason
from ocrpipe.config import Settings
from ocrpipe.folders.heartbeat import HOST, heartbeat_path, read_heartbeat
from ocrpipe.folders.layout import short_name
from ocrpipe.model import JobState, Stage
from ocrpipe.ownprocs import OWNER_VARIABLE
from ocrpipe.stages.common import tool_env
from ocrpipe.folders.store import new_state_record, transition, update_state, write_new_state

KEY = f"{'a' * 64}__{'b' * 64}"


@pytest.fixture
def sleeper() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Processes that sleep; killed and reaped after the test, whatever it did to them."""
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        # By default without the mark this test process got from a scheduler made by an earlier test.
        env = {k: v for k, v in os.environ.items() if k != OWNER_VARIABLE} if env is None else env
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdin=subprocess.DEVNULL,
                                env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def identity(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    return {"pid": proc.pid, "createTime": psutil.Process(proc.pid).create_time()}


def ocr_running_job(settings: Settings) -> Path:
    """A job whose record says OCR attempt 1 runs: what a killed run leaves in work/."""
    job_dir = settings.work_dir / short_name(KEY)
    record = new_state_record(job_key=KEY, run_id="r1", file_hash="a" * 64, profile_hash="b" * 64,
                              source_name="a.pdf", source_relpath="a.pdf", size=1)
    write_new_state(job_dir, record)
    attempts = {"PREP": 1, "OCR": 0}
    for state in (JobState.PREP_SUBMITTED, JobState.PREP_RUNNING, JobState.PREP_DONE):
        transition(job_dir, state, attempts=dict(attempts))
    attempts["OCR"] = 1
    for state in (JobState.OCR_SUBMITTED, JobState.OCR_RUNNING):
        transition(job_dir, state, attempts=dict(attempts))
    return job_dir


def forge(job_dir: Path, *, host: str, worker: Any, tools: Any, attempt: Any = 1) -> None:
    heartbeat_path(job_dir, Stage.OCR).write_text(json.dumps(
        {"stage": "OCR", "attempt": attempt, "host": host, "worker": worker, "tools": tools, "at": 0}))


@pytest.mark.parametrize("host", ["machine-a", HOST])
def test_a_forged_heartbeat_naming_an_innocent_process_kills_nothing(
        host: str, data_dir: Path, make_settings: Callable[..., Settings],
        sleeper: Callable[..., subprocess.Popen[bytes]]) -> None:
    settings = make_settings()
    job_dir = ocr_running_job(settings)
    worker, tool, recorded = sleeper(), sleeper(), sleeper()
    forge(job_dir, host=host, worker=identity(worker), tools=[identity(tool)])
    # state.json names a worker too (the fallback when no heartbeat names one): forged as well
    update_state(job_dir, lambda r: r.update(workerPid=recorded.pid, workerHost=host,
                                             workerCreateTime=identity(recorded)["createTime"]))
    Driven(settings).scheduler.start()  # a restart: what the previous run left running is killed
    assert [p.poll() for p in (worker, tool, recorded)] == [None, None, None]
    if host != HOST:  # another machine's stage is asked to stop, through the job folder
        assert cancel_reason(job_dir, Stage.OCR, 1) == "ocrpipe restarted"


def test_a_stale_tool_of_this_ocrpipe_is_still_killed_at_restart(
        data_dir: Path, make_settings: Callable[..., Settings],
        sleeper: Callable[..., subprocess.Popen[bytes]]) -> None:
    settings = make_settings()
    job_dir = ocr_running_job(settings)
    tool = sleeper(env=tool_env(settings, job_dir))  # started as a stage starts its tools
    forge(job_dir, host=HOST, worker=None, tools=[identity(tool)])
    Driven(settings).scheduler.start()
    assert tool.wait(timeout=10) is not None


def test_a_stale_tool_of_another_ocrpipe_is_not_killed(
        tmp_path: Path, data_dir: Path, make_settings: Callable[..., Settings],
        sleeper: Callable[..., subprocess.Popen[bytes]]) -> None:
    settings = make_settings()
    job_dir = ocr_running_job(settings)
    other = make_settings(DATA_DIR=str(tmp_path / "other-data"))
    tool = sleeper(env=tool_env(other, other.work_dir / "x"))  # a tool of the ocrpipe of another data folder
    forge(job_dir, host=HOST, worker=None, tools=[identity(tool)])
    Driven(settings).scheduler.start()
    assert tool.poll() is None


@pytest.mark.parametrize("beat", [
    {"host": HOST, "worker": {"pid": "1; rm -rf /", "createTime": 0}, "tools": []},
    {"host": HOST, "worker": {"pid": True, "createTime": 0}, "tools": "everything"},
    {"host": HOST, "worker": None, "tools": [{"pid": -1, "createTime": float("nan")}, 7, None]},
    {"host": ["a"], "worker": None, "tools": [{"pid": 2**40, "createTime": 1e300}]},
    {"host": HOST, "worker": None, "tools": [], "attempt": 10**12},
    {"host": HOST, "worker": None, "tools": [], "attempt": "2"},
])
def test_a_heartbeat_with_fields_of_the_wrong_shape_is_refused_and_the_start_goes_on(
        beat: dict[str, Any], data_dir: Path, make_settings: Callable[..., Settings],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings()
    job_dir = ocr_running_job(settings)
    forge(job_dir, **{"attempt": 1, **beat})
    assert read_heartbeat(heartbeat_path(job_dir, Stage.OCR)) is None
    scheduler = Driven(settings).scheduler
    scheduler.start()
    [job] = scheduler.jobs.values()
    assert job.state is JobState.OCR_RETRY
    assert "not a heartbeat ocrpipe writes" in caplog.text
    # a forged attempt number cancels no attempt to come
    assert cancel_reason(job_dir, Stage.OCR, 2) is None


@pytest.mark.parametrize("request_", [{"upToAttempt": "x"}, {"upToAttempt": [9]}, ["not", "a", "request"]])
def test_a_cancel_request_of_the_wrong_shape_cancels_nothing_and_raises_nothing(
        request_: Any, tmp_path: Path) -> None:
    """The worker's heartbeat thread reads it every second: an exception there would stop the heartbeat."""
    cancel_path(tmp_path, Stage.OCR).write_text(json.dumps(request_))
    assert cancel_reason(tmp_path, Stage.OCR, 1) is None
