"""Which pages of a long document each ocrmypdf call OCRs (its page range). Tesseract's time
on a page grows with the pixels ocrmypdf rasterises it at (the whole page at its images' resolution),
and a scanned document mixes full 300-dpi pages with small or 1440-dpi strips; so the ranges carry
about equal estimated work, not equal page counts. The estimate reads what the PDF declares: nothing
is decoded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the scheduler reads PAGE_OVERHEAD_MPX from here: an empty run must not load pikepdf
    import pikepdf

POINTS_PER_INCH = 72.0
# ocrmypdf rasterises a page without images (vector art, text) at this resolution (VECTOR_PAGE_DPI).
VECTOR_DPI = 400.0
# Fitted on the corpus' scans (19 pages, one ocrmypdf --jobs 1 call, Tesseract's CPU per page): a
# 300-dpi Letter page (8.4 Mpx) 2.8-3.7 s, a 0.8 Mpx colour page 0.7-0.9 s, a 0.02 Mpx strip 0.12 s,
# and ocrmypdf's own work about 0.2 s a page: about 0.37 s per Mpx plus 0.3 s a page. So a page's
# fixed part weighs about one megapixel.
PAGE_OVERHEAD_MPX = 1.0
# … but a 1440-dpi strip (11.5 Mpx) took 1.4 s, what 3.4 Mpx take at 300 dpi: text that large is
# read quickly. Finer than this counts as this.
MAX_DPI = 800.0


def page_work(page: pikepdf.Page) -> float:
    """Estimated OCR work of one page: megapixels of the page rasterised at its finest image's
    resolution (an image is taken to fill the page, turned if need be), plus a fixed part."""
    box = page.mediabox
    width, height = (abs(float(box[2]) - float(box[0])) / POINTS_PER_INCH,
                     abs(float(box[3]) - float(box[1])) / POINTS_PER_INCH)
    if width <= 0 or height <= 0:
        return PAGE_OVERHEAD_MPX
    dpi = 0.0
    for image in page.get_images().values():
        try:
            pixels_long_side = max(int(image.get("/Width", 0)), int(image.get("/Height", 0)))
        except (TypeError, ValueError):
            continue  # a damaged declaration: the page keeps the estimate its other images give
        dpi = max(dpi, pixels_long_side / max(width, height))
    return width * height * min(dpi or VECTOR_DPI, MAX_DPI) ** 2 / 1e6 + PAGE_OVERHEAD_MPX


def document_work(pdf: pikepdf.Pdf) -> list[float]:
    return [page_work(page) for page in pdf.pages]


def work_summary(raw: Path) -> dict[str, float]:
    """The document's estimated work, in all and of its heaviest page: what PREP records (``pageWork``) for
    the scheduler, which reads no PDF, to predict whether splitting the document pays (engine/splitplan.py)."""
    import pikepdf

    with pikepdf.open(raw) as pdf:
        work = document_work(pdf)
    return {"total": round(sum(work), 2), "heaviest": round(max(work, default=0.0), 2)}


def balanced_ranges(work: Sequence[float], parts: int) -> list[list[int]]:
    """``parts`` non-empty page ranges (page indices, ascending) holding every page once, of about
    equal work: the heaviest pages first, each to the range with the least work so far (so the heaviest
    range exceeds an equal share by at most one page's work). A range's pages need not follow each
    other: the merge puts every OCRed page back in the document's own page object, wherever it is.

    Consecutive ranges could not balance the corpus' 19-page scan (2 s pages in clusters): the best
    cut left one call 16 % more work and one core idle for the last 3 s (README, Speed)."""
    if not 1 <= parts <= len(work):
        raise ValueError(f"cannot cut {len(work)} page(s) into {parts} range(s)")
    ranges: list[list[int]] = [[] for _ in range(parts)]
    loads = [0.0] * parts
    for page in sorted(range(len(work)), key=lambda n: (-work[n], n)):
        lightest = min(range(parts), key=lambda n: (loads[n], n))
        ranges[lightest].append(page)
        loads[lightest] += work[page]
    return [sorted(pages) for pages in ranges]


def describe_pages(pages: Sequence[int]) -> str:
    """Page indices as a reader counts them: [0, 1, 2, 4] -> "1-3, 5"."""
    runs: list[list[int]] = []
    for page in sorted(pages):
        if runs and page == runs[-1][1] + 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    return ", ".join(f"{a + 1}" if a == b else f"{a + 1}-{b + 1}" for a, b in runs)
