"""What a cluster guarantees, checked on one machine: heartbeats judged by the file server's clock, cancel requests
obeyed where the tools run, and an attempt that ended late never writing over its retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import make_pdf
from faultkit import Driven
from ocrpipe.folders.cancel import cancel_reason, request_cancel
from ocrpipe.config import Settings
from ocrpipe.errors import TransientError
from ocrpipe.folders.fileclock import FileClock
from ocrpipe.folders.heartbeat import HeartbeatWriter, heartbeat_path
from ocrpipe.model import JobState, Stage
from ocrpipe.cluster.remote import InData, from_wire, to_wire
from ocrpipe.stages.common import Member, run_members
from ocrpipe.folders.store import read_state, update_state
from ocrpipe.tools.run import run_tool


class SkewedServer(FileClock):
    """A file server whose clock runs ``skew`` seconds off ours: every file it writes gets its time."""

    def __init__(self, folder: Path, skew: float) -> None:
        super().__init__(folder)
        self.skew = skew

    def stamp(self) -> None:
        super().stamp()
        server_now = time.time() + self.skew
        os.utime(self.probe, (server_now, server_now))


def heartbeat_written_by(server: SkewedServer, job_dir: Path, age: float) -> None:
    """A worker's heartbeat, ``age`` seconds ago by the server's clock (the server stamps its mtime)."""
    hb = heartbeat_path(job_dir, Stage.PREP)
    hb.write_text(json.dumps({"stage": "PREP", "attempt": 1, "worker": None, "tools": [], "at": 0}))
    stamped = time.time() + server.skew - age
    os.utime(hb, (stamped, stamped))


def submitted_job(data_dir: Path, driven: Driven) -> Any:
    (data_dir / "in").mkdir(parents=True, exist_ok=True)
    (data_dir / "in" / "a.pdf").write_bytes(make_pdf(1))
    driven.scheduler.tick(0.0)
    [job] = driven.scheduler.jobs.values()
    assert job.state is JobState.PREP_SUBMITTED
    return job


def reaped_on_skewed_server(data_dir: Path, make_settings: Callable[..., Settings], *, skew: float,
                            heartbeat_age: float) -> tuple[Any, list[Any]]:
    """A stage whose heartbeat is ``heartbeat_age`` old by a file server ``skew`` off our clock; the reaper's verdict."""
    driven = Driven(make_settings(JOB_TIMEOUT_SECONDS="60"))
    job = submitted_job(data_dir, driven)
    driven.scheduler.reaper.clock = server = SkewedServer(driven.settings.work_dir, skew)
    heartbeat_written_by(server, job.dir, age=heartbeat_age)
    return job, driven.scheduler.check_stale_jobs([job], 60, now=1.0)


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_a_skewed_file_server_clock_reaps_nothing(data_dir: Path, make_settings: Callable[..., Settings],
                                                  skew: float) -> None:
    job, reaped = reaped_on_skewed_server(data_dir, make_settings, skew=skew, heartbeat_age=5)
    assert reaped == [] and job.state is JobState.PREP_SUBMITTED


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_a_skewed_file_server_clock_hides_no_stale_heartbeat(data_dir: Path, make_settings: Callable[..., Settings],
                                                             skew: float) -> None:
    job, reaped = reaped_on_skewed_server(data_dir, make_settings, skew=skew, heartbeat_age=90)
    assert reaped == [job]
    assert read_state(job.dir)["state"] == JobState.PREP_RETRY.value
    assert "heartbeat stale" in read_state(job.dir)["lastError"]["reason"]


def test_a_cancel_request_stops_the_tools_where_they_run_and_only_its_attempts(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    request_cancel(job_dir, Stage.OCR, up_to_attempt=1, reason="stalled")
    assert cancel_reason(job_dir, Stage.OCR, 2) is None  # the retry is not touched
    with HeartbeatWriter([(heartbeat_path(job_dir, Stage.OCR), 1)], stage=Stage.OCR, interval=0.05) as beat:
        with pytest.raises(TransientError, match=r"stopped: cancelled by the scheduler \(stalled\)"):
            run_tool([sys.executable, "-c", "import time; time.sleep(120)"], timeout=300)
    assert beat.cancelled == "stalled"


def ocr_running(make_settings: Callable[..., Settings], data_dir: Path) -> tuple[Settings, Path]:
    """A job folder whose record is ready for OCR attempt 1."""
    from ocrpipe.folders.store import new_state_record, transition, write_new_state

    settings = make_settings()
    job_dir = data_dir / "work" / "k"
    record = new_state_record(job_key="k", run_id="r1", file_hash="h", profile_hash="p", source_name="a.pdf",
                              source_relpath="a.pdf", size=1)
    write_new_state(job_dir, record)
    for state in (JobState.PREP_SUBMITTED, JobState.PREP_RUNNING, JobState.PREP_DONE):
        transition(job_dir, state)
    return settings, job_dir


def test_an_attempt_retried_elsewhere_ends_late_without_writing_or_publishing(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    settings, job_dir = ocr_running(make_settings, data_dir)
    published: list[Path] = []

    def retried_meanwhile() -> dict[str, Any]:
        # While this worker was cut off, the scheduler gave up on attempt 1 and attempt 2 started elsewhere.
        def retry(record: dict[str, Any]) -> None:
            for state in (JobState.OCR_TIMEOUT, JobState.OCR_RETRY, JobState.OCR_SUBMITTED, JobState.OCR_RUNNING):
                record["state"] = state.value
            record.update(attempts={"PREP": 1, "OCR": 2}, workerPid=1, workerHost="other-machine")
        update_state(job_dir, retry)
        return {"pdfa": None}

    [outcome] = run_members(settings, Stage.OCR, [Member(job_dir, {"PREP": 1, "OCR": 1})], retried_meanwhile,
                            finish=lambda d, o: published.append(d))
    assert not outcome.ok and outcome.reason.startswith("ended late")
    assert published == []
    record = read_state(job_dir)
    assert record["state"] == "OCR_RUNNING" and record["attempts"]["OCR"] == 2 and record["workerPid"] == 1


def test_a_task_run_again_after_its_worker_died_is_refused_and_says_why(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    settings, job_dir = ocr_running(make_settings, data_dir)
    update_state(job_dir, lambda r: r.update(state="OCR_RUNNING", attempts={"PREP": 1, "OCR": 1},
                                             workerHost="machine-a"))
    ran: list[int] = []
    [outcome] = run_members(settings, Stage.OCR, [Member(job_dir, {"PREP": 1, "OCR": 1})],
                            lambda: ran.append(1) or {}, finish=lambda d, o: None)
    assert ran == [] and not outcome.ok and not outcome.free
    assert "died or lost contact (on machine-a)" in outcome.reason


def test_paths_travel_relative_to_the_data_folder_and_land_in_the_workers_view(
        tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    job_dir = settings.work_dir / "key"
    wire = to_wire((settings, job_dir, [(job_dir, 2, {"OCR": 1})]), settings.data_dir)
    assert wire[1] == InData(("work", "key"))
    view = tmp_path / "mnt" / "scans"
    worker_settings, worker_job, members = from_wire(wire, view)
    assert worker_settings.data_dir == view and worker_settings.out_dir == view / "out"
    assert worker_job == view / "work" / "key" and members == [(view / "work" / "key", 2, {"OCR": 1})]


def test_a_restart_asks_a_stage_still_running_on_another_machine_to_stop(
        data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    settings, job_dir = ocr_running(make_settings, data_dir)
    update_state(job_dir, lambda r: r.update(state="OCR_RUNNING", attempts={"PREP": 1, "OCR": 1},
                                             workerHost="machine-a"))
    heartbeat_path(job_dir, Stage.OCR).write_text(json.dumps(
        {"stage": "OCR", "attempt": 1, "host": "machine-a", "worker": {"pid": 1, "createTime": 0.0}, "tools": []}))
    Driven(settings).scheduler.start()  # resumes the job folders it finds
    assert cancel_reason(job_dir, Stage.OCR, 1) == "ocrpipe restarted"
    assert cancel_reason(job_dir, Stage.OCR, 2) is None
