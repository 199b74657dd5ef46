"""A long document's page ranges carry about equal estimated work (pixels Tesseract reads),
cover every page once and in order, and the estimate reads only what the PDF declares."""

from __future__ import annotations

from pathlib import Path

import pikepdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import inputs
from ocrpipe.stages.rangeplan import (MAX_DPI, PAGE_OVERHEAD_MPX, VECTOR_DPI, balanced_ranges, describe_pages,
                                      document_work)
from ocrpipe.stages.split import plan_ranges

LETTER = (612, 792)


def heaviest(work: list[float], ranges: list[list[int]]) -> float:
    return max(sum(work[page] for page in pages) for pages in ranges)


@settings(max_examples=300, deadline=None)
@given(work=st.lists(st.floats(0.01, 100.0), min_size=1, max_size=40), data=st.data())
def test_ranges_hold_every_page_once_in_order_and_none_much_heavier_than_a_share(
        work: list[float], data: st.DataObject) -> None:
    parts = data.draw(st.integers(1, len(work)))
    ranges = balanced_ranges(work, parts)
    assert len(ranges) == parts and all(ranges)  # none empty
    assert sorted(page for pages in ranges for page in pages) == list(range(len(work)))  # each page once
    assert all(pages == sorted(pages) for pages in ranges)  # in the document's order
    # Heaviest first, to the lightest range: no range exceeds an equal share by more than one page.
    assert heaviest(work, ranges) <= sum(work) / parts + max(work) + 1e-9


def test_heavier_pages_are_spread_rather_than_counted() -> None:
    # Four full scans, then eight small strips: equal page counts would give one call all the work.
    work = [10.0] * 4 + [1.0] * 8
    assert balanced_ranges(work, 2) == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]]
    # The corpus' 19-page scan by its estimate: consecutive ranges could do no better than 65 against 56.
    scan = [9.4, 9.4, 1.8, 1.4, 1.0, 4.5, 9.4, 9.4, 9.4, 9.4, 9.4, 9.4, 9.7, 9.4, 9.4, 1.8, 1.4, 1.0, 4.5]
    assert heaviest(scan, balanced_ranges(scan, 2)) < 61.0
    assert balanced_ranges([5.0], 1) == [[0]]
    with pytest.raises(ValueError, match="cannot cut 2 page"):
        balanced_ranges([1.0, 1.0], 3)


def test_a_ranges_pages_are_named_as_a_reader_counts_them() -> None:
    assert describe_pages([0, 1, 2, 4, 6, 7]) == "1-3, 5, 7-8" and describe_pages([3]) == "4"


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
    call the four scans; by work each call gets two."""
    big = inputs.save_image(inputs.prose_page(1), tmp_path / "big.png")
    small = inputs.save_image(inputs.prose_page(2).resize((60, 80)), tmp_path / "small.png")
    pdf = inputs.image_pdf(tmp_path / "doc.pdf", [big] * 4 + [small] * 10)
    assert plan_ranges(pdf, 2) == [[0, 2, 4, 6, 8, 10, 12], [1, 3, 5, 7, 9, 11, 13]]
    assert plan_ranges(pdf, 99) == [[n] for n in range(14)]  # never more ranges than pages
