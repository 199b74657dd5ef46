"""What a dropped document waits for between the drop and its output: a file seen in in/ is taken the moment it
has held still for STABLE_SECONDS, not at the next POLL_SECONDS, and the loop sleeps exactly until then (driven
with a fake clock); the next stage starts without a write of the record the worker already wrote; the output is
in out/ before the pages' text is read for the search index, which is kept before DONE is recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import job_ready_for_ocr, make_pdf
from faultkit import Driven

from ocrpipe.config import Settings
from ocrpipe.folders.layout import FINAL_PDF
from ocrpipe.folders.outcome import StageOutcome
from ocrpipe.folders.store import STATE_FILE, read_state, transition
from ocrpipe.model import JobState, Stage
from ocrpipe.stages import ocr
from ocrpipe.stages.pagetext import PAGES_FILE


def drop(settings: Settings, name: str, content: bytes) -> Path:
    settings.in_dir.mkdir(parents=True, exist_ok=True)
    path = settings.in_dir / name
    path.write_bytes(content)
    return path


def test_a_file_is_taken_when_its_stability_window_ends_not_at_the_next_poll(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(POLL_SECONDS="5", STABLE_SECONDS="2")
    driven = Driven(settings)
    scheduler = driven.scheduler
    drop(settings, "scan.pdf", make_pdf())
    scheduler.tick(100.0)  # seen: its clock starts
    assert not scheduler.jobs
    assert scheduler.next_due() == 102.0
    scheduler.tick(101.9)
    assert not scheduler.jobs
    scheduler.tick(102.0)  # three seconds before the next poll
    assert len(scheduler.jobs) == 1 and len(driven.calls()) == 1  # taken, and its PREP submitted at once
    assert scheduler.next_due() == 107.0  # the next poll, POLL_SECONDS after this one
    scheduler.close()


def test_a_file_that_changes_while_it_settles_waits_again_from_its_change(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(POLL_SECONDS="5", STABLE_SECONDS="2")
    driven = Driven(settings)
    scheduler = driven.scheduler
    path = drop(settings, "scan.pdf", make_pdf()[:200])  # half copied
    scheduler.tick(100.0)
    path.write_bytes(make_pdf())  # the rest arrives before the window ends
    scheduler.tick(102.0)
    assert not scheduler.jobs  # seen changed at 102: its window starts again
    assert scheduler.next_due() == 104.0
    scheduler.tick(104.0)
    assert len(scheduler.jobs) == 1
    scheduler.close()


def test_the_loop_sleeps_until_the_next_step_falls_due(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(POLL_SECONDS="5", STABLE_SECONDS="2")
    scheduler = Driven(settings).scheduler
    waits: list[float] = []
    scheduler.dispatcher.wait = waits.append  # type: ignore[method-assign]
    scheduler.tick(100.0)  # nothing in in/
    assert scheduler.next_due() == 105.0
    scheduler.wait(5.0, now=101.5)
    drop(settings, "scan.pdf", make_pdf())
    scheduler.tick(105.0)
    scheduler.wait(5.0, now=105.2)
    scheduler.tick(107.3)  # woken late: the window ended at 107.0
    scheduler.wait(5.0, now=107.3)  # the file is taken; the next poll is due at 112.3
    assert waits == pytest.approx([3.5, 1.8, 5.0])
    scheduler.stop_admitting()
    assert scheduler.next_due() is None  # stopping: only the stages' ends wake it
    scheduler.close()


def test_a_stage_done_by_its_worker_is_settled_without_writing_the_record(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    driven = Driven(settings)
    scheduler = driven.scheduler
    drop(settings, "scan.pdf", make_pdf())
    scheduler.tick(100.0)
    [job] = scheduler.jobs.values()
    future, fn, args, kwargs = driven.pop()
    future.set_result(fn(*args, **kwargs))  # PREP, run for real: the worker records PREP_DONE
    written = (job.dir / STATE_FILE).read_bytes()
    scheduler.tick(101.0)
    assert job.state is JobState.OCR_SUBMITTED and len(driven.calls()) == 1  # settled, and its OCR submitted
    assert (job.dir / STATE_FILE).read_bytes() == written
    scheduler.close()


def test_the_output_is_in_out_before_its_pages_text_is_read(make_settings: Callable[..., Settings],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings()
    job_dir = job_ready_for_ocr(settings.work_dir, "scan", make_pdf())
    for state in (JobState.OCR_SUBMITTED, JobState.OCR_RUNNING):
        transition(job_dir, state, attempts={"PREP": 1, "OCR": 1})
    (job_dir / FINAL_PDF).write_bytes(make_pdf())
    seen = []
    real = ocr.record_page_texts

    def reading(folder: Path, *, with_text: bool) -> None:
        seen.append(((settings.out_dir / "scan.pdf").is_file(), read_state(folder)["state"]))
        real(folder, with_text=with_text)

    monkeypatch.setattr(ocr, "record_page_texts", reading)
    record = ocr.publish(settings, job_dir, StageOutcome(Stage.OCR, True, 1.0, {"pdfa": None}))
    assert seen == [(True, JobState.OCR_RUNNING.value)]
    assert record["state"] == JobState.DONE.value and (job_dir / PAGES_FILE).is_file()
