"""Issue 17: a long document's page ranges carry about equal estimated work (pixels Tesseract reads),
cover every page once and in order, and the estimate reads only what the PDF declares."""

from __future__ import annotations

import itertools
from pathlib import Path

import pikepdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import inputs
from ocrpipe.stages.rangeplan import MAX_DPI, PAGE_OVERHEAD_MPX, VECTOR_DPI, balanced_ranges, document_work
from ocrpipe.stages.split import plan_ranges

LETTER = (612, 792)


def heaviest(work: list[float], ranges: list[tuple[int, int]]) -> float:
    return max(sum(work[start:stop]) for start, stop in ranges)


@settings(max_examples=300, deadline=None)
@given(work=st.lists(st.floats(0.01, 100.0), min_size=1, max_size=12), data=st.data())
def test_ranges_cover_every_page_once_in_order_and_none_is_heavier_than_needed(
        work: list[float], data: st.DataObject) -> None:
    parts = data.draw(st.integers(1, len(work)))
    ranges = balanced_ranges(work, parts)
    assert len(ranges) == parts and ranges[0][0] == 0 and ranges[-1][1] == len(work)
    assert all(start < stop for start, stop in ranges)  # none empty
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # consecutive: each page once, in order
    # No cut into ``parts`` ranges has a lighter heaviest range (every cut tried).
    best = min(heaviest(work, list(zip((0, *cuts), (*cuts, len(work)))))
               for cuts in itertools.combinations(range(1, len(work)), parts - 1))
    assert heaviest(work, ranges) <= best * (1 + 1e-9)


def test_heavier_pages_are_spread_rather_than_counted() -> None:
    # Four full scans, then eight small strips: equal page counts would give one call all the work.
    work = [10.0] * 4 + [1.0] * 8
    assert balanced_ranges(work, 2) == [(0, 2), (2, 12)]
    assert balanced_ranges([1.0] * 10, 3) in ([(0, 4), (4, 8), (8, 10)], [(0, 4), (4, 7), (7, 10)])
    assert balanced_ranges([5.0], 1) == [(0, 1)]
    with pytest.raises(ValueError, match="cannot cut 2 page"):
        balanced_ranges([1.0, 1.0], 3)


def declared_image_page(pdf: pikepdf.Pdf, page_size: tuple[float, float], image_size: tuple[int, int] | None) -> None:
    """A page showing an image of this declared size (its data is never decoded: a few bytes do)."""
    pdf.add_blank_page(page_size=page_size)
    page = pdf.pages[-1]
    if image_size is None:
        page.Contents = pdf.make_stream(b"0 0 m 100 100 l S")  # vector art only
        return
    image = pdf.make_stream(b"\0" * 8, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
                            Width=image_size[0], Height=image_size[1], BitsPerComponent=1,
                            ColorSpace=pikepdf.Name.DeviceGray)
    page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    page.Contents = pdf.make_stream(f"q {page_size[0]} 0 0 {page_size[1]} 0 0 cm /Im0 Do Q".encode())


def test_page_work_is_the_page_rasterised_at_its_images_resolution() -> None:
    with pikepdf.new() as pdf:
        declared_image_page(pdf, LETTER, (2550, 3300))  # a 300-dpi Letter scan
        declared_image_page(pdf, (792, 612), (2550, 3300))  # the same scan on a landscape page (turned)
        declared_image_page(pdf, (144, 18), (400, 50))  # a 200-dpi strip
        declared_image_page(pdf, (200, 143), (4000, 2864))  # 1440 dpi: counted as MAX_DPI
        declared_image_page(pdf, LETTER, None)  # no image: ocrmypdf's resolution for vector pages
        work = document_work(pdf)
    letter = 2550 * 3300 / 1e6 + PAGE_OVERHEAD_MPX
    assert work[0] == pytest.approx(letter) and work[1] == pytest.approx(letter)
    assert work[2] == pytest.approx(400 * 50 / 1e6 + PAGE_OVERHEAD_MPX)
    assert work[3] == pytest.approx(200 / 72 * 143 / 72 * MAX_DPI ** 2 / 1e6 + PAGE_OVERHEAD_MPX)
    assert work[4] == pytest.approx(8.5 * 11 * VECTOR_DPI ** 2 / 1e6 + PAGE_OVERHEAD_MPX)


def test_a_real_documents_plan_spreads_its_full_scans(tmp_path: Path) -> None:
    """Four full 300-dpi Letter scans, then ten small stamps: equal page counts would give the first
    call the four scans and three stamps, the second call seven stamps; by work it gets three scans."""
    big = inputs.save_image(inputs.prose_page(1), tmp_path / "big.png")
    small = inputs.save_image(inputs.prose_page(2).resize((60, 80)), tmp_path / "small.png")
    pdf = inputs.image_pdf(tmp_path / "doc.pdf", [big] * 4 + [small] * 10)
    assert plan_ranges(pdf, 2) == [(0, 3), (3, 14)]
    assert plan_ranges(pdf, 99) == [(n, n + 1) for n in range(14)]  # never more ranges than pages
