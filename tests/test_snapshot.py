"""The snapshot the scheduler publishes each tick: what it shows, and that the API needs nothing more."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import drive, http_json, job_ready_for_ocr, make_pdf
from ocrpipe.web.api import Api
from ocrpipe.config import Settings
from ocrpipe.web.server import serve
from ocrpipe.engine.scheduler import Scheduler

SchedulerFor = Callable[..., Scheduler]


def test_a_batch_of_three_documents_is_three_running(tmp_path: Path, data_dir: Path,
                                                      make_settings: Callable[..., Settings],
                                                      scheduler_for: SchedulerFor) -> None:
    gate = tmp_path / "release-ocr"
    settings = make_settings(OCR_CONCURRENCY="1", FAKE_OCR_WAIT_FOR=str(gate))
    for name in ("one", "two", "three"):
        job_ready_for_ocr(settings.work_dir, name, make_pdf(1))
    scheduler = scheduler_for(settings)
    scheduler.tick(time.monotonic())  # resumes the three, all ready for OCR: one batch

    snapshot = scheduler.snapshot.latest()
    assert snapshot is not None
    assert snapshot.metrics["jobs_running"] == 3 and snapshot.metrics["jobs_queued"] == 0
    assert snapshot.pools["OCR"].busy == 1 and snapshot.pools["OCR"].workers == 1
    assert sorted(j.fileName or "" for j in snapshot.running) == ["one.pdf", "three.pdf", "two.pdf"]
    assert {(j.stage, j.attempt, j.batchSize) for j in snapshot.jobs} == {("OCR", 1, 3)}

    gate.touch()
    drive(scheduler)
    snapshot = scheduler.snapshot.latest()
    assert snapshot is not None and snapshot.jobs == ()
    assert (snapshot.metrics["jobs_running"], snapshot.metrics["jobs_done"]) == (0, 3)


def test_the_api_answers_while_the_scheduler_is_inside_a_tick(data_dir: Path, make_settings: Callable[..., Settings],
                                                              scheduler_for: SchedulerFor) -> None:
    settings = make_settings()
    stuck, entered = threading.Event(), threading.Event()
    blocking = threading.Event()

    def disk_free(path: Path) -> int:
        if blocking.is_set():  # a tick that takes as long as the test wants (a slow share, say)
            entered.set()
            stuck.wait(timeout=60)
        return 10**12

    scheduler = scheduler_for(settings, disk_free=disk_free)
    scheduler.tick(time.monotonic())
    (settings.in_dir / "scan.pdf").write_bytes(make_pdf(1))
    api = Api(settings, scheduler.snapshot, tools={"fake": "1"}, disk_free=lambda path: 10**12)
    blocking.set()
    ticking = threading.Thread(target=scheduler.tick, args=(time.monotonic() + 5,))
    with serve(api, "127.0.0.1", 0) as service:
        ticking.start()
        try:
            assert entered.wait(timeout=60)
            assert http_json(service.url + "metrics")[0] == 200
            status, body = http_json(service.url + "jobs")
            assert status == 200 and body["jobs"] == []  # the last published snapshot: before the file came
            assert http_json(service.url + "health")[0] == 200
            assert ticking.is_alive()  # all answered while the tick was still stuck
        finally:
            stuck.set()
            ticking.join(timeout=60)
    blocking.clear()
    drive(scheduler)
    assert (settings.out_dir / "scan.pdf").is_file()


def test_a_fault_in_the_snapshot_never_stops_the_pipeline(data_dir: Path, make_settings: Callable[..., Settings],
                                                         scheduler_for: SchedulerFor,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings()
    scheduler = scheduler_for(settings)
    scheduler.tick(time.monotonic())
    good = scheduler.snapshot.latest()

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the view")

    monkeypatch.setattr(scheduler.snapshot, "_make", broken)
    (settings.in_dir / "scan.pdf").write_bytes(make_pdf(1))
    drive(scheduler, until=(settings.out_dir / "scan.pdf").is_file)
    assert scheduler.snapshot.latest() is good  # the last good one stays, and ages: /health will say so
    assert len([r for r in caplog.records if r.name == "ocrpipe.snapshot"]) == 1
