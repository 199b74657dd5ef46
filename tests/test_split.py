"""A lone long document OCRed as page ranges and merged back (fake ocrmypdf): its structure,
page order and text survive; a failing range is retried alone, then the document runs whole; a crash
between the ranges and the merge is finished on restart, never published half."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, Callable

import pikepdf
import pytest

import inputs
from conftest import drive, finished_jobs, job_ready_for_ocr, make_pdf, read_calls
from ocrpipe.config import Settings
from ocrpipe.model import JobState
from ocrpipe.stages.fidelity import page_images
from ocrpipe.stages import split as split_stage
from ocrpipe.folders.layout import RAW_PDF
from ocrpipe.stages.pagemerge import check_merged, has_text_layer, split_blocker
from ocrpipe.stages.rangeplan import describe_pages
from ocrpipe.folders.store import transition, update_state

PAGES = 10


def pdf_with(tmp_path: Path, name: str, change: Callable[[pikepdf.Pdf], None]) -> Path:
    path = tmp_path / name
    with pikepdf.open(io.BytesIO(make_pdf(2))) as pdf:
        change(pdf)
        pdf.save(path)
    return path


def test_what_page_mapping_cannot_carry_over_keeps_a_document_whole(tmp_path: Path) -> None:
    assert split_blocker(inputs.book_pdf(tmp_path / "book.pdf", 6)) is None  # outline, dests, links, labels
    signed = inputs.signed(inputs.text_pdf(tmp_path / "t.pdf", ["signed"]), tmp_path / "signed.pdf")
    assert split_blocker(signed) == "form fields"
    form = inputs.with_structure(inputs.text_pdf(tmp_path / "f.pdf", ["form"]), tmp_path / "form.pdf",
                                 form_field="name")
    assert split_blocker(form) == "form fields"

    def tagged(pdf: pikepdf.Pdf) -> None:
        pdf.Root.StructTreeRoot = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.StructTreeRoot, K=[]))
        pdf.Root.StructTreeRoot.K.append(pikepdf.Dictionary(S=pikepdf.Name.P))

    def attachment(pdf: pikepdf.Pdf) -> None:
        pdf.attachments["note.txt"] = pikepdf.AttachedFileSpec(pdf, b"attached")

    assert split_blocker(pdf_with(tmp_path, "tagged.pdf", tagged)) == "tags (structure tree)"
    assert split_blocker(pdf_with(tmp_path, "attached.pdf", attachment)).startswith("named /EmbeddedFiles")


def test_the_merged_files_pdfa_check_runs_unless_the_save_ran_it(tmp_path: Path) -> None:
    """check_merged runs pikepdf's PDF/A check itself only when the save could not (graft says which):
    a file claiming PDF/A 2b with an OutputIntent but an unembedded font fails it."""
    claimed = tmp_path / "claimed.pdf"
    with pikepdf.open(inputs.text_pdf(tmp_path / "t.pdf", ["text"])) as pdf:
        with pdf.open_metadata() as meta:
            meta["pdfaid:part"], meta["pdfaid:conformance"] = "2", "B"
        pdf.Root.OutputIntents = pikepdf.Array([pikepdf.Dictionary(Type=pikepdf.Name.OutputIntent)])
        pdf.save(claimed)
    assert check_merged(claimed, pages=1, flavour="2b").startswith("pikepdf's PDF/A check fails")
    assert check_merged(claimed, pages=1, flavour="2b", pdfa_checked=True) is None
    assert check_merged(claimed, pages=2, flavour="2b", pdfa_checked=True) == \
        "the merged document has 1 pages instead of 2"


def ready(settings: Settings, name: str, pdf: Path) -> Path:
    """A job as PREP leaves it, with its page count (which decides the split)."""
    job_dir = job_ready_for_ocr(settings.work_dir, name, pdf.read_bytes())
    with pikepdf.open(pdf) as doc:
        pages = len(doc.pages)
    update_state(job_dir, lambda record: record.update(pages=pages))
    return job_dir


def ocr_calls(tool_log: Path) -> list[str]:
    return [Path(c["input"]).name for c in read_calls(tool_log) if c["tool"] == "ocrmypdf" and c["event"] == "start"]


def two_cores(settings: Settings) -> Settings:
    # OCR_SPLIT_PARTS=2 splits whatever the prediction: these tests are about the split, not the decision.
    return dataclasses.replace(settings, cpu_count=2)


def assert_same_structure(original: Path, result: Path) -> None:
    """Page order, sizes and rotations, a text layer on every page, outline, named destination,
    links and page labels of ``result`` are ``original``'s."""
    with pikepdf.open(original) as before, pikepdf.open(result) as after:
        assert len(after.pages) == len(before.pages)
        for old, new in zip(before.pages, after.pages):
            assert list(new.mediabox) == list(old.mediabox) and int(new.obj.get("/Rotate", 0)) == int(old.Rotate)
            if not old.Resources.get("/XObject"):  # its own page, in its place (the fake's OCR layer after it)
                assert new.obj.Contents[0].read_bytes() == old.Contents.read_bytes()
            assert has_text_layer(new)
        assert page_images(after) == page_images(before)  # each scan on its own page, in order
        objgen = {page.obj.objgen: n for n, page in enumerate(after.pages)}
        with after.open_outline() as outline:
            [chapter] = outline.root
            assert (chapter.title, objgen[chapter.destination[0].objgen]) == ("Chapter 1", 1)
            assert [(c.title, objgen[c.destination[0].objgen]) for c in chapter.children] == [
                ("The end", len(after.pages) - 1)]
        names = after.Root.Names.Dests.Names
        assert str(names[0]) == "third" and objgen[names[1][0].objgen] == 2
        assert objgen[after.pages[0].obj.Annots[0].Dest[0].objgen] == len(after.pages) - 1
        assert str(after.pages[1].obj.Annots[0].A.D) == "third"
        assert after.Root.PageLabels == before.Root.PageLabels


@pytest.mark.parametrize(("scenario", "calls"), [
    ("book", ["range-0.pdf", "range-1.pdf"]),
    ("flaky-range", ["range-0.pdf", "range-0.pdf", "range-1.pdf", "range-1.pdf"]),  # each failed once: again alone
])
def test_long_document_is_ocred_in_ranges_and_merged_with_its_structure(
        scenario: str, calls: list[str], tmp_path: Path, data_dir: Path, tool_log: Path,
        make_settings: Callable[..., Settings], scheduler_for: Callable[..., Any]) -> None:
    settings = two_cores(make_settings(OCR_CONCURRENCY="2", OCR_SPLIT_MIN_PAGES="8", OCR_SPLIT_PARTS="2"))
    book = inputs.book_pdf(tmp_path / "book.pdf", PAGES, marker=f"FAKE-SCENARIO:{scenario}")
    ready(settings, "book", book)

    drive(scheduler_for(settings))

    [done] = finished_jobs(data_dir)
    assert done["state"] == "DONE" and done["attempts"]["OCR"] == 1
    assert sorted(ocr_calls(tool_log)) == calls
    assert_same_structure(book, data_dir / "out" / "book.pdf")


def test_short_or_whole_documents_are_not_split(tmp_path: Path, data_dir: Path, tool_log: Path,
                                                make_settings: Callable[..., Settings],
                                                scheduler_for: Callable[..., Any]) -> None:
    settings = two_cores(make_settings(OCR_CONCURRENCY="2", OCR_SPLIT_MIN_PAGES="8", OCR_SPLIT_PARTS="2"))
    (tmp_path / "short.pdf").write_bytes(make_pdf(7))
    ready(settings, "short", tmp_path / "short.pdf")
    drive(scheduler_for(settings))
    assert ocr_calls(tool_log) == ["raw.pdf"]


def test_a_split_whose_range_fails_again_runs_whole_at_no_attempts_cost(
        tmp_path: Path, data_dir: Path, tool_log: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    settings = two_cores(make_settings(OCR_CONCURRENCY="2", OCR_SPLIT_MIN_PAGES="8", OCR_SPLIT_PARTS="2",
                                       MAX_ATTEMPTS_OCR="1"))
    book = inputs.book_pdf(tmp_path / "book.pdf", PAGES, marker="FAKE-SCENARIO:fail-range")
    ready(settings, "book", book)

    drive(scheduler_for(settings))

    [done] = finished_jobs(data_dir)  # MAX_ATTEMPTS_OCR=1: the failed split did not use it up
    assert done["state"] == "DONE" and done["attempts"]["OCR"] == 2
    [retry] = [r.getMessage() for r in caplog.records if r.name == "ocrpipe.lifecycle" and "retry" in r.getMessage()]
    first = describe_pages(split_stage.plan_ranges(book, 2)[0])  # the book's page sizes differ: not 1-5
    assert f"pages {first} failed twice" in retry and "OCRing the document whole); retry in 0s" in retry
    calls = ocr_calls(tool_log)
    # Both ranges together, the first failed one alone again (it fails too: the split gives up), then whole.
    assert calls[-1] == "raw.pdf" and sorted(calls[:-1]) == ["range-0.pdf", "range-0.pdf", "range-1.pdf"]
    with pikepdf.open(data_dir / "out" / "book.pdf") as pdf:
        assert len(pdf.pages) == PAGES


def test_a_failed_split_is_remembered_across_a_restart(data_dir: Path, tmp_path: Path, tool_log: Path,
                                                        make_settings: Callable[..., Settings],
                                                        scheduler_for: Callable[..., Any]) -> None:
    settings = two_cores(make_settings(OCR_CONCURRENCY="2", OCR_SPLIT_MIN_PAGES="8", OCR_SPLIT_PARTS="2"))
    job_dir = ready(settings, "book", inputs.book_pdf(tmp_path / "book.pdf", PAGES, marker="FAKE-SCENARIO:book"))
    update_state(job_dir, lambda record: record.update(splitFailed=True))
    drive(scheduler_for(settings))
    assert ocr_calls(tool_log) == ["raw.pdf"]


@pytest.mark.parametrize("interrupted", ["a range", "the merge"])
def test_crash_between_ranges_and_merge_is_finished_on_restart(
        interrupted: str, tmp_path: Path, data_dir: Path, tool_log: Path,
        make_settings: Callable[..., Settings], scheduler_for: Callable[..., Any]) -> None:
    settings = two_cores(make_settings(OCR_CONCURRENCY="2", OCR_SPLIT_MIN_PAGES="8", OCR_SPLIT_PARTS="2"))
    book = inputs.book_pdf(tmp_path / "book.pdf", PAGES, marker="FAKE-SCENARIO:book")
    job_dir = ready(settings, "book", book)
    # What a worker killed mid-split leaves: OCR_RUNNING, range outputs in split/, a partial merge.
    transition(job_dir, JobState.OCR_SUBMITTED, attempts={"PREP": 1, "OCR": 1})
    transition(job_dir, JobState.OCR_RUNNING)
    ranges = split_stage.plan_ranges(job_dir / RAW_PDF, 2)
    folder = split_stage._prepared_folder(job_dir, ranges)
    split_stage._ocr_ranges(settings, folder, ranges, jobs=1)
    if interrupted == "a range":  # range 1's ocrmypdf was killed: its output half written
        (folder / "range-1.ocr.pdf").unlink()
        (folder / "range-1.partial.pdf").write_bytes(b"%PDF-1.7 half a file")
    (job_dir / "final.partial.pdf").write_bytes(b"%PDF-1.7 half a merge")
    calls_before = len(ocr_calls(tool_log))

    drive(scheduler_for(settings))

    [done] = finished_jobs(data_dir)
    assert done["state"] == "DONE"
    assert ocr_calls(tool_log)[calls_before:] == (["range-1.pdf"] if interrupted == "a range" else [])
    assert [p.name for p in (data_dir / "out").iterdir()] == ["book.pdf"]
    assert_same_structure(book, data_dir / "out" / "book.pdf")
