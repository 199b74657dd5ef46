"""Issue 17: where a long document is cut into page ranges. Tesseract's time on a page grows with the
pixels ocrmypdf rasterises it at (the whole page at its images' resolution), and a scanned document
mixes full 300-dpi pages with small or 1440-dpi strips; so the ranges carry about equal estimated
work, not equal page counts. The estimate reads what the PDF declares: nothing is decoded."""

from __future__ import annotations

from typing import Sequence

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
BISECTION_STEPS = 60


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


def balanced_ranges(work: Sequence[float], parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive, non-empty [start, stop) ranges covering every page once, in order, whose
    heaviest range carries as little work as any cut into ``parts`` can give it."""
    pages = len(work)
    if not 1 <= parts <= pages:
        raise ValueError(f"cannot cut {pages} page(s) into {parts} range(s)")
    low, high = max(work), sum(work)
    for _ in range(BISECTION_STEPS):  # the least cap on a range's work that needs no more than ``parts`` ranges
        cap = (low + high) / 2
        if _ranges_needed(work, cap) <= parts:
            high = cap
        else:
            low = cap
    return _cut(work, high, parts)


def _ranges_needed(work: Sequence[float], cap: float) -> int:
    needed, load = 1, 0.0
    for item in work:
        if load + item > cap and load > 0:
            needed, load = needed + 1, 0.0
        load += item
    return needed


def _cut(work: Sequence[float], cap: float, parts: int) -> list[tuple[int, int]]:
    """Fill ranges up to ``cap`` from the left, cutting early where the pages left are only enough
    for one each of the ranges left."""
    ranges, start, load = [], 0, 0.0
    for index, item in enumerate(work):
        ranges_left = parts - len(ranges)
        if index > start and ranges_left > 1 and (load + item > cap or len(work) - index < ranges_left):
            ranges.append((start, index))
            start, load = index, 0.0
        load += item
    ranges.append((start, len(work)))
    return ranges
