"""The disk guard: no admission or OCR without room; a full disk makes jobs wait, never fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from conftest import drive, make_pdf
from ocrpipe.config import Settings
from ocrpipe.model import JobState

MB = 2**20


class FakeDisk:
    def __init__(self, free_mb: int) -> None:
        self.free_mb = free_mb

    def __call__(self, path: Path) -> int:
        return self.free_mb * MB


def test_nothing_is_admitted_below_min_free(data_dir: Path, make_settings: Callable[..., Settings],
                                            scheduler_for: Callable[..., object]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "a.pdf").write_bytes(make_pdf())
    disk = FakeDisk(400)
    scheduler = scheduler_for(make_settings(MIN_FREE_MB="500"), disk_free=disk)
    for step in range(3):
        scheduler.tick(float(step))
    assert scheduler.jobs == {} and (data_dir / "in" / "a.pdf").exists()
    disk.free_mb = 600
    drive(scheduler)
    assert (data_dir / "out" / "a.pdf").exists()


def test_document_too_big_for_free_space_waits_after_prep(data_dir: Path, make_settings: Callable[..., Settings],
                                                           scheduler_for: Callable[..., object]) -> None:
    """10 pages need 10 × OCR_TEMP_MB_PER_PAGE: the job waits in PREP_DONE, never fails, and goes on later."""
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "big.pdf").write_bytes(make_pdf(10))
    disk = FakeDisk(500 + 999)
    scheduler = scheduler_for(make_settings(MIN_FREE_MB="500", OCR_TEMP_MB_PER_PAGE="100"), disk_free=disk)
    drive(scheduler, until=lambda: any(j.state is JobState.PREP_DONE for j in scheduler.jobs.values()))
    for _ in range(5):
        scheduler.wait(0.05)
        scheduler.tick(1000.0)
    [job] = scheduler.jobs.values()
    assert job.state is JobState.PREP_DONE and job.future is None
    disk.free_mb = 500 + 1000
    drive(scheduler)
    assert (data_dir / "out" / "big.pdf").exists()


def test_disk_full_during_ocr_is_retried_without_using_up_attempts(
        data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., object]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "a.pdf").write_bytes(make_pdf(1, scenario="enospc-4"))
    drive(scheduler_for(make_settings(MAX_ATTEMPTS_OCR="2")))
    assert (data_dir / "out" / "a.pdf").exists() and not list((data_dir / "error").iterdir())
    metrics = json.loads((data_dir / "index" / "metrics.json").read_text())
    assert metrics["disk_errors"] == 4 and metrics["jobs_done"] == 1


def test_document_that_can_never_fit_goes_to_error_with_its_code(
        data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., object]) -> None:
    """20 pages × 100 MB on a 1.5 GB volume with MIN_FREE_MB=500: waiting would last for ever."""
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "huge.pdf").write_bytes(make_pdf(20))
    (data_dir / "in" / "small.pdf").write_bytes(make_pdf(2))
    scheduler = scheduler_for(make_settings(MIN_FREE_MB="500", OCR_TEMP_MB_PER_PAGE="100"),
                              disk_free=FakeDisk(1400), disk_total=FakeDisk(1500))
    drive(scheduler)
    [folder] = list((data_dir / "error").iterdir())
    error = json.loads((folder / "error.json").read_text())
    assert error["source"] == "huge.pdf" and error["code"] == "DISK_TOO_SMALL"
    # One OCR attempt is charged (a unit that can never fit fails through the normal settle), none run.
    assert error["attempts"] == {"PREP": 1, "OCR": 1} and "more than the whole work volume holds" in error["reason"]
    assert "2000 MB" in error["reason"]
    assert (data_dir / "out" / "small.pdf").exists()
    assert json.loads((data_dir / "index" / "metrics.json").read_text())["errors_disk"] == 1
