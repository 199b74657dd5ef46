"""OCR batches: the planner, and batches through the pipeline with fake tools (split, fallback)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pikepdf

from conftest import drive, finished_jobs, job_ready_for_ocr, make_pdf, read_calls
from ocrpipe.engine.batching import page_workers, plan_ocr_units
from ocrpipe.config import Settings
from ocrpipe.stages.batch import batch_would_drop, merge, split
from ocrpipe.folders.store import update_state


@dataclass
class Doc:
    name: str
    pages: int
    solo: bool = False
    batch_group: str | None = None


def names(units: list[list[Doc]]) -> list[list[str]]:
    return [[d.name for d in unit] for unit in units]


def test_lone_document_is_not_batched() -> None:
    assert names(plan_ocr_units([Doc("a", 1)], free_slots=2, max_batch_pages=10)) == [["a"]]


def test_waiting_pages_are_shared_evenly_between_free_slots() -> None:
    docs = [Doc(str(n), 1) for n in range(8)]
    assert names(plan_ocr_units(docs, free_slots=2, max_batch_pages=10)) == [["0", "1", "2", "3"], ["4", "5", "6", "7"]]
    # One free slot (the other busy): it takes what is waiting, up to the cap; no core idles, as
    # every call gets page workers for all the cores when it runs alone.
    assert names(plan_ocr_units(docs, free_slots=1, max_batch_pages=10)) == [[str(n) for n in range(8)]]
    assert names(plan_ocr_units(docs, free_slots=1, max_batch_pages=5)) == [["0", "1", "2", "3", "4"]]


def test_batches_are_capped_and_slots_respected() -> None:
    docs = [Doc(str(n), 3) for n in range(10)]
    units = plan_ocr_units(docs, free_slots=2, max_batch_pages=6)
    assert names(units) == [["0", "1"], ["2", "3"]]
    assert plan_ocr_units(docs, free_slots=0, max_batch_pages=6) == []


def test_big_and_solo_documents_run_alone_in_order() -> None:
    docs = [Doc("big", 40), Doc("a", 1), Doc("solo", 1, solo=True), Doc("b", 2), Doc("c", 1)]
    # 4 batchable pages over 3 free slots: units of at most 2 pages; b waits for the next free slot.
    assert names(plan_ocr_units(docs, free_slots=3, max_batch_pages=10)) == [["big"], ["a", "c"], ["solo"]]
    assert names(plan_ocr_units(docs, free_slots=1, max_batch_pages=10)) == [["big"]]


def test_page_workers_use_every_core_alone_and_about_twice_the_cores_together() -> None:
    assert page_workers(2, 2, 2) == 2 and page_workers(2, 2, 1) == 2 and page_workers(2, 1, 1) == 2
    assert page_workers(8, 8, 8) == 2 and page_workers(8, 8, 1) == 8 and page_workers(8, 8, 3) == 2
    assert page_workers(8, 2, 2) == 8 and page_workers(1, 4, 4) == 1 and page_workers(4, 3, 3) == 3


def test_batching_off_with_one_page_cap() -> None:
    docs = [Doc(str(n), 1) for n in range(3)]
    assert names(plan_ocr_units(docs, free_slots=2, max_batch_pages=1)) == [["0"], ["1"]]


def finished(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {entry["source"]: entry for entry in finished_jobs(data_dir)}


def page_markers(pdf_path: Path) -> list[bytes]:
    with pikepdf.open(pdf_path) as pdf:
        return [page.Contents.read_bytes().strip() for page in pdf.pages]


def test_small_documents_share_ocr_calls_and_split_back(data_dir: Path, tool_log: Path,
                                                        make_settings: Callable[..., Settings],
                                                        scheduler_for: Callable[..., Any]) -> None:
    (data_dir / "in").mkdir(parents=True)
    for n in range(10):
        (data_dir / "in" / f"d{n}.pdf").write_bytes(make_pdf(1 + n % 3, scenario=f"doc{n}"))
    settings = make_settings(PREP_CONCURRENCY="4", OCR_CONCURRENCY="2", FAKE_OCR_DELAY="0.5",
                             OCR_BATCH_MAX_PAGES="10")
    drive(scheduler_for(settings))
    done = finished(data_dir)
    assert {e["state"] for e in done.values()} == {"DONE"} and len(done) == 10
    calls = [c for c in read_calls(tool_log) if c["tool"] == "ocrmypdf" and c["event"] == "start"]
    assert len(calls) < 10 and max(e["batchSize"] for e in done.values()) > 1
    for n in range(10):
        markers = page_markers(data_dir / "out" / f"d{n}.pdf")
        assert markers == [f"% page {p + 1} FAKE-SCENARIO:doc{n}".encode() for p in range(1 + n % 3)]


def test_failed_batch_falls_back_to_one_call_per_document(data_dir: Path, tool_log: Path,
                                                           make_settings: Callable[..., Settings],
                                                           scheduler_for: Callable[..., Any]) -> None:
    # Five documents ready together (as a restart finds them): one batch, which d3 makes fail.
    settings = make_settings(OCR_CONCURRENCY="1", FAKE_OCR_DELAY="0.3", OCR_BATCH_MAX_PAGES="10")
    for n in range(5):
        job_ready_for_ocr(settings.work_dir, f"d{n}", make_pdf(1, scenario="exit-8" if n == 3 else f"doc{n}"))
    drive(scheduler_for(settings))
    done = finished(data_dir)
    assert {k: v["state"] for k, v in done.items()} == {
        "d0.pdf": "DONE", "d1.pdf": "DONE", "d2.pdf": "DONE", "d3.pdf": "ERROR", "d4.pdf": "DONE"}
    error = json.loads(next((data_dir / "error").glob("*/error.json")).read_text())
    assert error["reason"] == "the PDF is encrypted; it needs a password to open"
    assert error["attempts"]["OCR"] == 2  # the batch's attempt, then its own
    assert sorted(p.name for p in (data_dir / "out").iterdir()) == ["d0.pdf", "d1.pdf", "d2.pdf", "d4.pdf"]
    calls = [c for c in read_calls(tool_log) if c["tool"] == "ocrmypdf" and c["event"] == "start"]
    assert len(calls) == 6  # the batch, then one call per document


def test_split_keeps_each_documents_info_even_when_stored_as_indirect_objects(tmp_path: Path) -> None:
    # Real scans (c02-22.pdf) keep /Title, /CreationDate… as indirect objects: copying them needs
    # copy_foreign, or the whole batch fails and every member is OCRed again alone.
    members = []
    for n, pages in enumerate((2, 1)):
        job_dir = tmp_path / f"job{n}"
        job_dir.mkdir()
        with pikepdf.new() as pdf:
            for p in range(pages):
                pdf.add_blank_page(page_size=(100, 100))
                pdf.pages[p].Contents = pdf.make_stream(f"% doc {n} page {p}".encode())
            title = pikepdf.String(f"Document {n}")
            pdf.docinfo["/Title"] = pdf.make_indirect(title) if n == 0 else title
            pdf.docinfo["/Author"] = pdf.make_indirect(pikepdf.String("Scanner"))
            pdf.save(job_dir / "raw.pdf")
        members.append((job_dir, pages))
    merged = tmp_path / "batch.pdf"
    assert merge(members, merged) == 3

    split(merged, members, None)

    for n, (job_dir, pages) in enumerate(members):
        with pikepdf.open(job_dir / "final.pdf") as pdf:
            assert len(pdf.pages) == pages
            assert str(pdf.docinfo["/Title"]) == f"Document {n}" and str(pdf.docinfo["/Author"]) == "Scanner"
            assert [page.Contents.read_bytes() for page in pdf.pages] == [
                f"% doc {n} page {p}".encode() for p in range(pages)]


def pdf_with(tmp_path: Path, name: str, change: Callable[[pikepdf.Pdf], None], scenario: str = "") -> Path:
    path = tmp_path / name
    with pikepdf.open(io.BytesIO(make_pdf(2, scenario=scenario or name))) as pdf:
        change(pdf)
        pdf.save(path)
    return path


def add_bookmark(pdf: pikepdf.Pdf) -> None:
    with pdf.open_outline() as outline:
        outline.root.append(pikepdf.OutlineItem("Chapter 2", 1))


def add_link_to_page_2(pdf: pikepdf.Pdf) -> None:
    link = pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[0, 0, 50, 50],
                              Dest=[pdf.pages[1].obj, pikepdf.Name.Fit])
    pdf.pages[0].obj.Annots = pdf.make_indirect(pikepdf.Array([link]))


def test_what_a_batch_would_drop_is_named(tmp_path: Path) -> None:
    assert batch_would_drop(pdf_with(tmp_path, "plain.pdf", lambda pdf: None)) is None
    assert batch_would_drop(pdf_with(tmp_path, "bookmarks.pdf", add_bookmark)) == "bookmarks"
    assert batch_would_drop(pdf_with(tmp_path, "link.pdf", add_link_to_page_2)).startswith("page annotations")

    def empty_outline_and_form(pdf: pikepdf.Pdf) -> None:  # as some scanners write them: nothing in them
        pdf.Root.Outlines = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Outlines, Count=0))
        pdf.Root.AcroForm = pikepdf.Dictionary(Fields=pikepdf.Array())

    assert batch_would_drop(pdf_with(tmp_path, "empty.pdf", empty_outline_and_form)) is None

    def labels(pdf: pikepdf.Pdf) -> None:
        pdf.Root.PageLabels = pikepdf.Dictionary(Nums=[0, pikepdf.Dictionary(S=pikepdf.Name.r)])

    assert batch_would_drop(pdf_with(tmp_path, "labels.pdf", labels)) == "page labels"


def test_documents_a_batch_would_strip_are_ocred_alone_and_keep_it(data_dir: Path, tool_log: Path,
                                                                    make_settings: Callable[..., Settings],
                                                                    scheduler_for: Callable[..., Any]) -> None:
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    for n in range(6):
        (inbox / f"d{n}.pdf").write_bytes(make_pdf(1, scenario=f"doc{n}"))
    pdf_with(inbox, "book.pdf", add_bookmark)
    pdf_with(inbox, "linked.pdf", add_link_to_page_2)
    # One OCR worker, slow fake OCR: what PREP finishes meanwhile waits, and shares the next call.
    settings = make_settings(PREP_CONCURRENCY="4", OCR_CONCURRENCY="1", FAKE_OCR_DELAY="0.5",
                             OCR_BATCH_MAX_PAGES="20")
    drive(scheduler_for(settings))
    done = finished(data_dir)
    assert {e["state"] for e in done.values()} == {"DONE"} and len(done) == 8
    assert done["book.pdf"]["batchSize"] == 1 and done["linked.pdf"]["batchSize"] == 1
    assert max(e["batchSize"] for e in done.values()) > 1  # the plain ones were batched
    with pikepdf.open(data_dir / "out" / "book.pdf") as pdf, pdf.open_outline() as outline:
        assert [item.title for item in outline.root] == ["Chapter 2"]
    with pikepdf.open(data_dir / "out" / "linked.pdf") as pdf:
        assert pdf.pages[0].obj.Annots[0].Dest[0].objgen == pdf.pages[1].obj.objgen


def test_after_a_restart_a_document_prep_kept_out_of_batches_stays_out(
        data_dir: Path, tool_log: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[..., Any]) -> None:
    settings = make_settings(OCR_CONCURRENCY="1", OCR_BATCH_MAX_PAGES="20")
    for n in range(4):  # ready together, as a restart finds them
        job_dir = job_ready_for_ocr(settings.work_dir, f"d{n}", make_pdf(1, scenario=f"doc{n}"))
        if n == 1:
            update_state(job_dir, lambda record: record.update(soloReason="bookmarks"))
    drive(scheduler_for(settings))
    done = finished(data_dir)
    assert {k: v["batchSize"] for k, v in done.items()} == {"d0.pdf": 3, "d1.pdf": 1, "d2.pdf": 3, "d3.pdf": 3}
