"""The text of each page of a PDF (the OCR layer and any text the page already had), read in the worker.

pypdfium2 (PDFium, which ocrmypdf itself uses to draw pages) reads a page's text in about a millisecond,
the OCR layer and born-digital text alike. pdfminer.six took 30 times as long per page (docs/search.md),
and ocrmypdf's ``--sidecar`` has only the OCR layer: a page kept under --skip-text is a placeholder there.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, BinaryIO

from ocrpipe.folders.fsutil import atomic_write_json
from ocrpipe.folders.layout import FINAL_PDF
from ocrpipe.stages.reading import load_readings

log = logging.getLogger("ocrpipe.ocr")

PAGES_FILE = "pages.json"  # beside state.json until the scheduler has stored it in the job index
# A page holds a few thousand characters; a born-digital page may hold far more (a table of numbers in
# 4 pt): what is past this is not indexed, so one page cannot swell the index.
MAX_PAGE_CHARS = 100_000
# Control characters (PDFium reports a line end as \r\n, a hyphen at a line end as \x02) are not text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")


def page_texts(pdf: Path | BinaryIO) -> list[str]:
    """The text of each page of ``pdf`` (a path, or a file opened for reading), in page order, lines
    separated by ``\\n``."""
    import pypdfium2 as pdfium  # here: the scheduler imports this module for its constants only

    texts = []
    document = pdfium.PdfDocument(str(pdf) if isinstance(pdf, Path) else pdf)
    try:
        for index in range(len(document)):
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    raw = textpage.get_text_bounded()
                finally:
                    textpage.close()
            finally:
                page.close()
            texts.append(clean_text(raw))
    finally:
        document.close()
    return texts


def clean_text(raw: str) -> str:
    text = _CONTROL.sub(" ", raw.replace("\r\n", "\n").replace("\r", "\n"))
    return text[:MAX_PAGE_CHARS]


def page_count(pdf_path: Path) -> int:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(pdf_path))
    try:
        return len(document)
    finally:
        document.close()


def record_page_texts(job_dir: Path, *, with_text: bool) -> None:
    """``pages.json`` beside final.pdf: each page's text (None when SEARCH_INDEX is off, or the text could
    not be read: the job is done all the same) and how well it read. Written again on a repeat after a
    crash while final.pdf is there; once final.pdf is gone, what was written stays."""
    final = job_dir / FINAL_PDF
    if not final.is_file():
        return
    started = time.monotonic()
    texts: list[str] | None = None
    problem = None
    try:
        if with_text:
            texts = page_texts(final)
        pages = len(texts) if texts is not None else page_count(final)
    except Exception as exc:  # noqa: BLE001 — the output is good: only its text is lost, never the job
        problem = f"the text of its pages could not be read ({exc}); it is not searchable"
        log.warning("%s", problem)
        texts, pages = None, 0
    record: dict[str, Any] = {"texts": texts, "readings": load_readings(job_dir, pages),
                              "seconds": round(time.monotonic() - started, 4)}
    if problem:
        record["problem"] = problem
    # Durable: DONE is recorded (fsynced) next, and final.pdf goes after it; the text must not be lost between.
    atomic_write_json(job_dir / PAGES_FILE, record)
