"""Whether a lone long document is OCRed as page ranges in concurrent ocrmypdf calls, and in how many:
the wall time of one call and of k calls is predicted from what an ocrmypdf call's phases cost, and the
document is split only when that is predicted clearly shorter. Pure, no I/O.

One ocrmypdf call has a **start** on one core (Python imports, reading and analysing the PDF), a **page
phase** (each page rasterised by the call's own process, then read by a Tesseract process, ``--jobs``
pages at a time) and a **tail** on one core (each page's text layer rendered from its hOCR, PDF/A, the
optimizer, the save and ocrmypdf's check of the output). The start and the tail leave the other cores
idle. k calls on k ranges run their starts side by side (no shorter: each call has its own), share the
page phase, and each renders and checks only its own pages in its tail. Within one call, PDFium renders
one page at a time (ocrmypdf holds a lock around it), so on many cores one call's page phase can be no
shorter than its pages' rendering in a row; k calls render k pages at a time. Against this the split pays
ranges that balance worse than one call's pages shared by all its page workers, and ocrpipe's cut before
the calls and merge after them, on one core. So a split pays on many cores for long documents, most for
small pages (a tail's part per page is the same for every page); on 2 or 4 cores, never.

The figures are seconds of one core of the machine they were traced on (``bench/phasetrace.py``; how, in
docs/speed.md, "When a split pays"): on a faster machine all of them shrink alike, and the decision, a
ratio, holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ocrpipe.stages.rangeplan import PAGE_OVERHEAD_MPX

# A page whose work PREP did not record (a job queued by an older ocrpipe): a 300-dpi Letter scan.
DEFAULT_PAGE_WORK = 8.4 + PAGE_OVERHEAD_MPX
# Split only when the split is predicted this much shorter than one call: the constants were traced on a
# loaded 2-core machine, and a split's k - 1 extra calls cost about 1.5 CPU-s each.
MARGIN = 0.10
MIN_GAIN_SECONDS = 0.5


@dataclass(frozen=True)
class DocumentWork:
    """What the scheduler knows of a document's OCR: its pages, and their work as rangeplan estimates it
    (megapixels rasterised plus a fixed part a page), in all and of its heaviest page."""

    pages: int
    work: float
    heaviest: float

    @classmethod
    def of(cls, pages: int, work: tuple[float, float] | None = None) -> DocumentWork:
        """``work``: (in all, heaviest page) as PREP recorded it; None: every page a full scan."""
        if work is None:
            return cls(pages, pages * DEFAULT_PAGE_WORK, DEFAULT_PAGE_WORK)
        return cls(pages, *work)


@dataclass(frozen=True)
class CallCosts:
    """Seconds of one core: ocrmypdf 17.13 (pypdfium2 rasteriser), Tesseract 5.3.0, traced on 2 cores."""

    start: float = 0.8  # before its first page: imports, reading and analysing the PDF
    tail: float = 0.75  # after its last page: PDF/A, the optimizer, the save …
    tail_per_page: float = 0.06  # … and each page's text layer (from its hOCR) and ocrmypdf's check of it
    ocr_per_work: float = 0.25  # Tesseract on real scans, per unit of estimated work
    own_per_work: float = 0.035  # the call's own process: rendering, preprocessing, the page's image …
    rendering_per_work: float = 0.013  # … of which PDFium's rendering, one page at a time in a call
    # Ranges of equal estimated work take unequal time (Tesseract's time per megapixel differs 2.5 times
    # between the corpus' scans), and a call's page workers cannot take another call's pages: the slowest
    # of k ranges of n pages overruns its share by imbalance * sqrt(2 ln k * k / n), the expected largest
    # of k draws. 0.25 predicts what 2 cores measured: 18 scanned pages split in two took 1.00-1.14 times
    # (median 1.08) as long as in one call, interleaved.
    imbalance: float = 0.25
    merge: float = 0.1  # ocrpipe's split: the ranges cut, then grafted back, saved as PDF/A and checked …
    merge_per_page: float = 0.015  # … per page


COSTS = CallCosts()


def _page_phase(doc: DocumentWork, cores: int, calls: int, costs: CallCosts) -> float:
    """The page phases' wall time: the pages' work shared by the cores, but no shorter than each call's
    rendering in a row, nor than the heaviest page."""
    per_work = costs.ocr_per_work + costs.own_per_work
    return max(doc.work * per_work / max(1, min(cores, doc.pages)), doc.work * costs.rendering_per_work / calls,
               doc.heaviest * per_work)


def one_call_seconds(doc: DocumentWork, cores: int, costs: CallCosts = COSTS) -> float:
    """Predicted wall time of the document in one call, its page workers on ``cores`` free cores."""
    return costs.start + _page_phase(doc, cores, 1, costs) + costs.tail + costs.tail_per_page * doc.pages


def split_seconds(doc: DocumentWork, cores: int, parts: int, costs: CallCosts = COSTS) -> float:
    """Predicted wall time of ``parts`` (at most ``cores``) concurrent calls on ranges of about equal work,
    with the cut and the merge."""
    tail = costs.tail + costs.tail_per_page * math.ceil(doc.pages / parts)
    overrun = costs.imbalance * math.sqrt(2 * math.log(parts) * parts / doc.pages)
    return (costs.start + _page_phase(doc, cores, parts, costs) * (1 + overrun) + tail
            + costs.merge + costs.merge_per_page * doc.pages)


def split_parts(doc: DocumentWork, *, spare_slots: int, free_cores: int, min_pages: int, always: int = 0,
                costs: CallCosts = COSTS) -> int:
    """Into how many page ranges a lone document is OCRed (1: whole): the count predicted shortest, when it
    beats one call by MARGIN and MIN_GAIN_SECONDS; ``always`` (OCR_SPLIT_PARTS) overrides the prediction.
    Never under ``min_pages`` pages (0: never split), never more ranges than free OCR slots, never a range
    of one page; predicted, never more ranges than free cores."""
    if always:
        return max(1, min(always, spare_slots, doc.pages // 2)) if min_pages and doc.pages >= min_pages else 1
    most = min(spare_slots, free_cores, doc.pages // 2)
    if not min_pages or doc.pages < min_pages or most < 2:
        return 1
    whole = one_call_seconds(doc, free_cores, costs)
    best = min(range(2, most + 1), key=lambda parts: (split_seconds(doc, free_cores, parts, costs), parts))
    gain = whole - split_seconds(doc, free_cores, best, costs)
    return best if gain >= max(MARGIN * whole, MIN_GAIN_SECONDS) else 1


def recorded_work(value: object) -> tuple[float, float] | None:
    """PREP's ``pageWork`` from state.json, checked (anyone who can write work/ can write it): in all and
    the heaviest page, finite, not negative, the heaviest no more than all; else None."""
    if not isinstance(value, dict):
        return None
    numbers = [value.get("total"), value.get("heaviest")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
               for v in numbers):
        return None
    total, heaviest = float(numbers[0]), float(numbers[1])  # type: ignore[arg-type]
    return (total, heaviest) if heaviest <= total else None
