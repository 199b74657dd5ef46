"""Real spawned pool workers that die: one killed while idle, one killed mid-OCR beside another.
The job whose worker died is the one charged; the others retry for free; no tool is left running."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import psutil
import pytest

from conftest import drive, make_pdf, read_calls
from faultkit import finished
from ocrpipe.config import Settings
from ocrpipe.folders.heartbeat import heartbeat_path, read_heartbeat
from ocrpipe.model import Stage
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.folders.store import read_state

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Waits for a worker process or a tool (never for the scheduler, which the test ticks itself)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if "multiprocessing" in " ".join(p.cmdline())
            and "resource_tracker" not in " ".join(p.cmdline())]


def test_a_worker_killed_while_idle_does_not_stop_the_next_file(
        data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler]) -> None:
    scheduler = scheduler_for(make_settings(PREP_CONCURRENCY="2"))
    scheduler.tick(time.monotonic())
    scheduler.warm_pools()
    wait_for(lambda: len(workers()) >= 3)  # two PREP workers and one OCR worker
    prep_workers = scheduler.pools[Stage.PREP].executor._processes  # type: ignore[attr-defined]
    os.kill(next(iter(prep_workers)), signal.SIGKILL)  # the OOM killer, Task Manager…
    wait_for(lambda: getattr(scheduler.pools[Stage.PREP].executor, "_broken", False))
    (data_dir / "in" / "a.pdf").write_bytes(make_pdf(2))
    drive(scheduler, until=lambda: bool(finished(data_dir)))
    assert (data_dir / "out" / "a.pdf").is_file() and not list((data_dir / "error").iterdir())
    [entry] = finished(data_dir)
    assert entry["attempts"]["PREP"] == 1


def test_the_pools_start_warm_with_every_prep_worker_and_one_ocr_worker(
        make_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler]) -> None:
    """The first OCR worker starts beside the first PREP, not after it; the others when needed."""
    scheduler = scheduler_for(make_settings(PREP_CONCURRENCY="2", OCR_CONCURRENCY="2"))
    scheduler.warm_pools()
    # A process pool starts its workers as tasks are submitted: what warm_pools started is there now.
    processes = {stage: scheduler.pools[stage].executor._processes for stage in Stage}  # type: ignore[attr-defined]
    assert (len(processes[Stage.PREP]), len(processes[Stage.OCR])) == (2, 1)
    wait_for(lambda: len(workers()) == 3)


def test_one_of_two_ocr_workers_killed_mid_run_charges_only_its_own_job(
        data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler],
        tool_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_OCR_DELAY", "3")  # inherited by the spawned workers' tools
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "victim.pdf").write_bytes(make_pdf(1, scenario="hang"))
    (data_dir / "in" / "beside.pdf").write_bytes(make_pdf(1, scenario="beside"))
    scheduler = scheduler_for(make_settings(OCR_CONCURRENCY="2", PREP_CONCURRENCY="2", MAX_ATTEMPTS_OCR="1",
                                            OCR_BATCH_MAX_PAGES="1"))
    drive(scheduler, until=lambda: len([c for c in read_calls(tool_log)
                                        if c["tool"] == "ocrmypdf" and c["event"] == "start"]) >= 2)
    first_tools = [c["pid"] for c in read_calls(tool_log) if c["tool"] in ("ocrmypdf", "child")]
    victim = next(j for j in scheduler.jobs.values() if read_state(j.dir)["source"]["name"] == "victim.pdf")
    wait_for(lambda: read_heartbeat(heartbeat_path(victim.dir, Stage.OCR)))
    os.kill(read_heartbeat(heartbeat_path(victim.dir, Stage.OCR))["worker"]["pid"], signal.SIGKILL)
    drive(scheduler, until=lambda: not any(j.in_stage and j.attempts["OCR"] == 1 for j in scheduler.jobs.values()))
    # The other job's tool (3 s to go) and the victim's hanging one were killed with the pool, not orphaned.
    alive = [pid for pid in first_tools if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert alive == []
    drive(scheduler)
    assert [p.name for p in (data_dir / "out").iterdir()] == ["beside.pdf"]
    [error] = [json.loads(p.read_text()) for p in (data_dir / "error").glob("*/error.json")]
    assert error["file"] == "victim.pdf" and "worker process died" in error["reason"]
