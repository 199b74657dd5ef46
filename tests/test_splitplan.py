"""A lone long document is split only where the split is predicted clearly shorter: never on 2 cores,
into several ranges on 8 or 16 free cores, fewer as other calls keep cores busy, never when short. Pure
functions of pages, work and cores: no timing."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import pytest

import inputs
from conftest import job_ready_for_ocr, make_pdf
from ocrpipe.config import Settings
from ocrpipe.engine.dispatcher import Dispatcher
from ocrpipe.engine.jobs import Job, Unit
from ocrpipe.engine.splitplan import (
    DEFAULT_PAGE_WORK,
    DocumentWork,
    one_call_seconds,
    recorded_work,
    split_parts,
    split_seconds,
)
from ocrpipe.model import JobState, Stage
from ocrpipe.stages.rangeplan import work_summary

# Scanned pages as the corpus mixes them (18 upright scans: 93.9 units of work, the heaviest 9.7), and small
# ones (a half-page scan, 1.8 units: receipts, slips).
SCANS = DocumentWork(18, 93.9, 9.7)


def scans(pages: int) -> DocumentWork:
    return DocumentWork(pages, SCANS.work / SCANS.pages * pages, SCANS.heaviest)


def slips(pages: int) -> DocumentWork:
    return DocumentWork(pages, 1.8 * pages, 1.8)


def parts(doc: DocumentWork, free_cores: int, *, spare_slots: int | None = None, min_pages: int = 16) -> int:
    return split_parts(doc, spare_slots=free_cores if spare_slots is None else spare_slots, free_cores=free_cores,
                       min_pages=min_pages)


@pytest.mark.parametrize("pages", [16, 18, 49, 300])
def test_two_cores_keep_a_document_whole(pages: int) -> None:
    # ocrmypdf --jobs 2 keeps both cores busy but in its start and tail: a second call saves less than it costs.
    for doc in (scans(pages), slips(pages), DocumentWork.of(pages)):  # DocumentWork.of: work not recorded
        assert parts(doc, 2) == 1
        assert split_seconds(doc, 2, 2) > 0.97 * one_call_seconds(doc, 2)  # nothing a split in two could gain


@pytest.mark.parametrize(("doc", "free_cores", "expected"), [
    (slips(100), 8, 8),  # one call's tail (its pages' text layers and checks, one core) leaves 7 cores idle
    (scans(100), 16, 6), (scans(300), 16, 10),  # few ranges: each range's own pages balance better
    (scans(49), 32, 7),
])
def test_many_free_cores_split_a_long_document_into_k_ranges(doc: DocumentWork, free_cores: int,
                                                            expected: int) -> None:
    assert parts(doc, free_cores) == expected
    assert split_seconds(doc, free_cores, expected) <= 0.9 * one_call_seconds(doc, free_cores)


@pytest.mark.parametrize("free_cores", [8, 16, 64])
def test_eighteen_scanned_pages_stay_whole_on_many_cores(free_cores: int) -> None:
    # Each call has its own start, the tail's part per page is under a second, and ranges of a few pages
    # balance worse than one call's pages shared by all its workers.
    assert parts(SCANS, free_cores) == 1


def test_cores_busy_with_other_calls_reduce_the_ranges() -> None:
    doc = slips(100)
    assert [parts(doc, free, spare_slots=16) for free in (16, 12, 8, 4, 2)] == [13, 10, 8, 1, 1]
    assert parts(doc, 16, spare_slots=3) == 3  # never more ranges than free OCR slots


@pytest.mark.parametrize("free_cores", [2, 8, 16, 64])
def test_short_documents_are_never_split(free_cores: int) -> None:
    for pages in range(1, 16):
        assert parts(slips(pages), free_cores) == 1 and parts(scans(pages), free_cores) == 1  # OCR_SPLIT_MIN_PAGES
    assert parts(slips(100), free_cores, min_pages=0) == 1  # OCR_SPLIT_MIN_PAGES=0: never


def test_ocr_split_parts_forces_the_count_within_the_free_slots() -> None:
    doc = scans(18)
    assert split_parts(doc, spare_slots=2, free_cores=2, min_pages=16, always=2) == 2
    assert split_parts(doc, spare_slots=3, free_cores=1, min_pages=16, always=4) == 3
    assert split_parts(scans(10), spare_slots=2, free_cores=2, min_pages=16, always=2) == 1
    assert split_parts(doc, spare_slots=2, free_cores=2, min_pages=0, always=2) == 1


def test_work_recorded_by_prep_is_read_back_and_checked(tmp_path: Path) -> None:
    summary = work_summary(inputs.book_pdf(tmp_path / "book.pdf", 3))
    assert recorded_work(summary) == (summary["total"], summary["heaviest"]) and summary["heaviest"] > 0
    for hostile in (None, [], {"total": "9"}, {"total": 5.0, "heaviest": 6.0}, {"total": math.inf, "heaviest": 1},
                    {"total": -1, "heaviest": 0}, {"total": True, "heaviest": 0}, {"total": 1e400, "heaviest": 1}):
        assert recorded_work(hostile) is None
    assert DocumentWork.of(4, None) == DocumentWork(4, 4 * DEFAULT_PAGE_WORK, DEFAULT_PAGE_WORK)


def test_the_dispatcher_splits_by_the_free_cores(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = dataclasses.replace(make_settings(OCR_CONCURRENCY="16"), cpu_count=16)
    dispatcher = Dispatcher(settings, lambda workers: _NoPool(), disk_free=lambda _: 2**40,
                            disk_total=lambda _: 2**40)
    doc = slips(100)
    job = Job("k" * 64, job_ready_for_ocr(settings.work_dir, "long", make_pdf(1)), JobState.PREP_DONE,
              pages=doc.pages, work=(doc.work, doc.heaviest))
    assert dispatcher.plan(Stage.OCR, [job])[0].parts == 13
    other = Unit(Stage.OCR, [Job("o" * 64, tmp_path, JobState.OCR_RUNNING, pages=40)], page_workers=8)
    dispatcher.units[_NoPool().submit(print)] = other  # another call's 8 page workers: 8 cores left
    assert dispatcher.free_cores() == 8
    assert dispatcher.plan(Stage.OCR, [job])[0].parts == 8
    job.work = None  # PREP recorded no work: every page taken for a full scan, which 8 cores keep whole
    assert dispatcher.plan(Stage.OCR, [job])[0].parts == 1


class _NoPool:
    """An executor that never runs anything: only the plan is looked at."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import Future

        return Future()

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        pass
