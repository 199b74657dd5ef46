"""Splitting a long document, with the real tools: a generated 10-page document split in two, merged into one valid PDF/A
with every page's text, its structure (outline, destinations, links, page labels) and page geometry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pdfminer.high_level import extract_text
from pikepdf.pdfa import validate_written

import inputs
from ocrpipe.config import load_settings
from ocrpipe.stages.split import run_ocr_split
from ocrpipe.folders.store import read_state, update_state
from conftest import job_ready_for_ocr
from test_split import assert_same_structure

pytestmark = pytest.mark.integration
PAGES = 10


def test_ten_pages_split_in_two_make_one_valid_pdfa_with_all_text_and_structure(tmp_path: Path) -> None:
    images = [inputs.text_page_png(tmp_path / f"p{n}.png", [f"Chapter {n + 1} begins", inputs.prose(n, 1)[0]])
              for n in range(PAGES)]
    book = inputs.book_pdf(tmp_path / "book.pdf", PAGES, images=images)
    # ROTATE_PAGES=off: the book's turned pages keep their /Rotate, as the structure check expects
    # (test_orientation_integration turns a split document's upside-down page).
    settings = dataclasses.replace(load_settings({"DATA_DIR": str(tmp_path / "data"), "OCR_LANG": "eng",
                                                  "PATH": "/usr/local/bin:/usr/bin:/bin", "ROTATE_PAGES": "off"}),
                                   cpu_count=2)
    job_dir = job_ready_for_ocr(settings.work_dir, "book", book.read_bytes())
    update_state(job_dir, lambda record: record.update(pages=PAGES))

    outcome = run_ocr_split(settings, job_dir, pages=PAGES, parts=2, jobs=1, attempts={"PREP": 1, "OCR": 1})

    assert outcome.ok, outcome.reason
    assert (outcome.fields["pdfa"], outcome.fields["splitInto"]) == ("2B", 2)
    final = settings.out_dir / "book.pdf"
    assert read_state(job_dir)["splitInto"] == 2 and validate_written(final, "2b").passed
    assert_same_structure(book, final)
    for n, ((_, rotate)) in enumerate(inputs.BOOK_PAGES[n % len(inputs.BOOK_PAGES)] for n in range(PAGES)):
        if rotate == 0:  # a turned page is OCRed as it shows: its words are read sideways, if at all
            text = " ".join(extract_text(str(final), page_numbers=[n]).lower().split())
            assert f"chapter {n + 1} begins" in text, (n, text)
