"""ROTATE_PAGES=auto with the real tools: turned pages come out upright with their text, the others as they were."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pikepdf
import pypdfium2
import pytest
from ocrmypdf.builtin_plugins import pypdfium
from ocrmypdf.helpers import Resolution
from pdfminer.high_level import extract_text
from pikepdf.pdfa import validate_written
from PIL import Image

import inputs
from conftest import job_ready_for_ocr
from ocrpipe.config import Settings, load_settings
from ocrpipe.stages.batch import run_ocr_batch
from ocrpipe.stages.ocr import run_ocr
from ocrpipe.stages.split import run_ocr_split
from ocrpipe.folders.store import read_state, update_state
from ocrpipe.tools.ocrpipe_orientation_plugin import MIN_CONFIDENCE, Reading, read_hocr, upright_image

pytestmark = pytest.mark.integration

ATTEMPTS = {"PREP": 1, "OCR": 1}


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"DATA_DIR": str(tmp_path / "data"), "OCR_LANG": "eng",
                          "PATH": "/usr/local/bin:/usr/bin:/bin", **env})


def _page_text(pdf: Path, page: int) -> str:
    return " ".join(extract_text(str(pdf), page_numbers=[page]).lower().split())


def _rotations(pdf: Path) -> list[int]:
    with pikepdf.open(pdf) as doc:
        return [int(page.obj.get("/Rotate", 0)) for page in doc.pages]


def _ink_under(pdf: Path, page: int, word: str, folder: Path) -> float:
    """The share of dark pixels under ``word`` of the text layer, on the page drawn without its
    /Rotate (both in the page's own coordinates): about a quarter over printed words, 1 % elsewhere."""
    plain = folder / "plain.pdf"
    with pikepdf.open(pdf) as doc:
        doc.pages[page].obj.Rotate = 0
        doc.save(plain)
    doc = pypdfium2.PdfDocument(str(plain))
    try:
        drawn = doc[page]
        height = drawn.get_size()[1]
        text = drawn.get_textpage()
        start = text.get_text_range().lower().index(word)
        boxes = [text.get_charbox(start + n) for n in range(len(word))]
        left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
        image = drawn.render(scale=1).to_pil().convert("L")
        box = image.crop((int(left), int(height - top), int(right) + 1, int(height - bottom) + 1))
        return sum(1 for value in box.tobytes() if value < 128) / (box.width * box.height)
    finally:
        doc.close()


def test_turned_pages_come_out_upright_in_order_and_upright_blank_and_photo_pages_as_they_were(
        tmp_path: Path) -> None:
    """One document: an upright page, pages turned 90°, 180° (upside down) and 270°, a blank page
    and a photo. Each turned page gets the /Rotate that shows it upright and its own text, in its
    place; the others are not turned, and the blank page and the photo cost no orientation check."""
    turns = [0, 90, 180, 270]
    pages = [inputs.turned(inputs.text_page(inputs.numbered(n + 1, 6) + inputs.FOX), degrees)
             for n, degrees in enumerate(turns)]
    pages += [Image.new("L", inputs.PAGE_PX, 255), inputs.photo_page()]
    raw = inputs.pages_pdf(tmp_path / "mixed.pdf", pages)
    settings = _settings(tmp_path)
    job_dir = job_ready_for_ocr(settings.work_dir, "mixed", raw.read_bytes())

    outcome = run_ocr(settings, job_dir, pages=6, jobs=2, attempts=ATTEMPTS)

    assert outcome.ok, outcome.reason
    final = settings.out_dir / "mixed.pdf"
    assert _rotations(final) == [0, 90, 180, 270, 0, 0]
    for n in range(4):
        text = _page_text(final, n)
        assert f"page {n + 1} of a multi page document" in text and "quick brown fox" in text, (n, text)
        assert _ink_under(final, n, "quick", tmp_path) > 0.1  # the text layer lies over the printed word
    assert _page_text(final, 4) == _page_text(final, 5) == ""
    record = read_state(job_dir)
    assert record["pagesTurned"] == {"2": 90, "3": 180, "4": 270}
    assert record["orientationChecked"] == 3  # the three turned pages; not the upright, blank or photo ones
    assert validate_written(final, "2b").passed  # still PDF/A after the turn


def test_a_poor_print_upright_costs_no_orientation_check_but_upside_down_is_checked(tmp_path: Path) -> None:
    """Both pages read poorly all over; the upright one's lines lean up, so it gets no orientation
    detection and stays as it is; the same page upside down leans down and is checked."""
    page = inputs.poor_print_page()
    raw = inputs.pages_pdf(tmp_path / "poor.pdf", [page, inputs.turned(page, 180)])
    settings = _settings(tmp_path)
    job_dir = job_ready_for_ocr(settings.work_dir, "poor", raw.read_bytes())

    outcome = run_ocr(settings, job_dir, pages=2, jobs=1, attempts=ATTEMPTS)

    assert outcome.ok, outcome.reason
    assert _rotations(settings.out_dir / "poor.pdf")[0] == 0
    assert read_state(job_dir)["orientationChecked"] == 1  # the upside-down page only


def test_a_batch_with_one_upside_down_page_turns_that_page_only(tmp_path: Path) -> None:
    """Two documents in one ocrmypdf call; the second's middle page is upside down."""
    first = inputs.pages_pdf(tmp_path / "first.pdf", [inputs.text_page(inputs.GOOSE)])
    second = inputs.pages_pdf(tmp_path / "second.pdf", [
        inputs.turned(inputs.text_page(inputs.numbered(n, 3)), 180 if n == 2 else 0) for n in (1, 2, 3)])
    settings = _settings(tmp_path)
    members = [(job_ready_for_ocr(settings.work_dir, name, src.read_bytes()), pages, ATTEMPTS)
               for name, src, pages in (("first", first, 1), ("second", second, 3))]

    outcomes = run_ocr_batch(settings, settings.work_dir / ".batch-turn", members, jobs=2)

    assert [o.ok for o in outcomes] == [True, True], [o.reason for o in outcomes]
    assert _rotations(settings.out_dir / "first.pdf") == [0]
    assert _rotations(settings.out_dir / "second.pdf") == [0, 180, 0]
    assert "goose ate my spam" in _page_text(settings.out_dir / "first.pdf", 0)
    for n in range(3):
        assert f"sheet number {n + 1} of 3" in _page_text(settings.out_dir / "second.pdf", n)
    assert read_state(members[0][0])["pagesTurned"] == {}
    assert read_state(members[1][0])["pagesTurned"] == {"2": 180}


def test_a_document_split_into_page_ranges_turns_its_upside_down_page_in_its_place(tmp_path: Path) -> None:
    """Four pages OCRed as two ranges in concurrent calls; the third is upside down."""
    raw = inputs.pages_pdf(tmp_path / "long.pdf", [
        inputs.turned(inputs.text_page(inputs.numbered(n, 4)), 180 if n == 3 else 0) for n in (1, 2, 3, 4)])
    settings = dataclasses.replace(_settings(tmp_path), cpu_count=2)
    job_dir = job_ready_for_ocr(settings.work_dir, "long", raw.read_bytes())
    update_state(job_dir, lambda record: record.update(pages=4))

    outcome = run_ocr_split(settings, job_dir, pages=4, parts=2, jobs=1, attempts=ATTEMPTS)

    assert outcome.ok, outcome.reason
    assert outcome.fields["splitInto"] == 2
    final = settings.out_dir / "long.pdf"
    assert _rotations(final) == [0, 0, 180, 0]
    for n in range(4):
        assert f"sheet number {n + 1} of 4" in _page_text(final, n)
    assert read_state(job_dir)["pagesTurned"] == {"3": 180}


def test_rotate_pages_off_leaves_a_turned_page_as_it_was(tmp_path: Path) -> None:
    raw = inputs.pages_pdf(tmp_path / "upside-down.pdf", [inputs.turned(inputs.text_page(inputs.MIDI), 180)])
    settings = _settings(tmp_path, ROTATE_PAGES="off")
    job_dir = job_ready_for_ocr(settings.work_dir, "upside-down", raw.read_bytes())

    assert run_ocr(settings, job_dir, pages=1, jobs=1, attempts=ATTEMPTS).ok

    assert _rotations(settings.out_dir / "upside-down.pdf") == [0]
    assert "sequencer" not in _page_text(settings.out_dir / "upside-down.pdf", 0)  # what auto is for
    assert "pagesTurned" not in read_state(job_dir)


def test_without_orientation_data_a_turned_page_is_left_as_read_and_the_job_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Tesseract without its 'osd' data (TESSDATA_PREFIX names a copy of its folder without it): the
    check fails, the page stays as read, the document is done and the log says what to install."""
    listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=True).stdout
    tessdata = Path(re.search(r'"(.+?)/?"', listed).group(1))  # type: ignore[union-attr]
    without_osd = tmp_path / "tessdata"
    without_osd.mkdir()
    for item in tessdata.iterdir():  # the languages, and the configs that name hOCR and text output
        if item.name != "osd.traineddata":
            (without_osd / item.name).symlink_to(item)
    raw = inputs.pages_pdf(tmp_path / "upside-down.pdf", [inputs.turned(inputs.text_page(inputs.MIDI), 180)])
    settings = _settings(tmp_path, TESSDATA_PREFIX=str(without_osd))
    job_dir = job_ready_for_ocr(settings.work_dir, "upside-down", raw.read_bytes())

    outcome = run_ocr(settings, job_dir, pages=1, jobs=1, attempts=ATTEMPTS)

    assert outcome.ok, outcome.reason
    assert _rotations(settings.out_dir / "upside-down.pdf") == [0]
    assert read_state(job_dir)["pagesTurned"] == {}
    assert "orientation detection failed on page(s) 1, left as read: is its 'osd' data installed?" in caplog.text


def _tesseract_reading(page: Image.Image, folder: Path) -> Reading:
    image = inputs.save_image(page, folder / "page.png")
    subprocess.run(["tesseract", str(image), str(folder / "page"), "-l", "eng", "hocr"], check=True,
                   capture_output=True)
    return read_hocr((folder / "page.hocr").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["letter", "degraded scan", "partly blurred"])
def test_tesseracts_reading_of_upright_pages_is_left_alone_and_of_the_same_pages_turned_checked(
        tmp_path: Path, name: str) -> None:
    """Generated pages of known text, read by Tesseract: upright, none reads like a turned page, not
    even one that reads below 70 on the whole; turned 90°, 180° or 270°, each does."""
    page = {"letter": inputs.text_page(inputs.LETTER),
            "degraded scan": inputs.text_page(inputs.LETTER, grey=215, noise=0.4, skew=1.0),
            "partly blurred": inputs.partly_blurred_page()}[name]
    upright = _tesseract_reading(page, tmp_path)
    assert upright.chars and not upright.suspicious, upright
    if name == "partly blurred":  # what the page is for: a poor reading that is still upright
        assert upright.confidence < MIN_CONFIDENCE, upright
    for degrees in (90, 180, 270):
        turned = _tesseract_reading(inputs.turned(page, degrees), tmp_path)
        assert turned.suspicious, (degrees, turned)


# (image turned counter-clockwise, /Rotate): the page as shown is turned; the plugin's angle sets it
# upright. A page turned by its /Rotate has its raster turned (ocrmypdf's own rasterizer draws such a
# page turned a pixel larger): read right, not pixel for pixel.
TURNS = [(90, 0), (180, 0), (270, 0), (0, 90), (0, 180), (0, 270), (180, 90)]


@pytest.mark.parametrize(("image_turn", "rotate"), TURNS)
def test_a_page_read_again_upright_is_pixel_for_pixel_the_page_as_ocrmypdf_rasterizes_it_upright(
        tmp_path: Path, image_turn: int, rotate: int) -> None:
    """The plugin draws the page again turned from ocrmypdf's copy of the PDF (origin.pdf beside the
    page's raster, as in ocrmypdf's work folder), so the page is read as if it had come in upright.
    Turning the raster itself instead shifts it by a pixel on most of these turns (pdfium places the
    image's pixels from the page's corner, and the corner differs), and a degraded page then reads a few
    words differently."""
    page = inputs.text_page(inputs.LETTER, grey=215, noise=0.4, skew=1.0)
    dpi = Resolution(inputs.DPI, inputs.DPI)
    options = SimpleNamespace(rasterizer="auto")

    def raster(pdf: Path, out: Path, rotation: int = 0) -> Image.Image:
        pypdfium.rasterize_pdf_page(input_file=pdf, output_file=out, raster_device="pnggray", raster_dpi=dpi,
                                    pageno=1, page_dpi=dpi, rotation=rotation, filter_vector=False,
                                    stop_on_soft_error=True, options=options, use_cropbox=False)
        with Image.open(out) as image:
            return image.copy()

    expected = raster(inputs.pages_pdf(tmp_path / "upright.pdf", [page]), tmp_path / "upright.png")
    work = tmp_path / "ocrmypdf.io"
    work.mkdir()
    origin = inputs.pages_pdf(work / "origin.pdf", [inputs.turned(page, image_turn)])
    with pikepdf.open(origin, allow_overwriting_input=True) as pdf:
        pdf.pages[0].obj.Rotate = rotate
        pdf.save(origin)
    shown = raster(origin, work / "000001_rasterize.png")
    # ocrmypdf links the raster as the image to OCR; on Windows it copies it
    if image_turn == 180 or sys.platform == "win32":
        shutil.copyfile(work / "000001_rasterize.png", work / "000001_ocr.png")
    else:
        (work / "000001_ocr.png").symlink_to("000001_rasterize.png")
    angle = (rotate - image_turn) % 360

    size = upright_image(work / "000001_ocr.png", angle, tmp_path / "read-again.png", options)

    assert size == shown.size
    with Image.open(tmp_path / "read-again.png") as again:
        again.load()
    assert again.size == expected.size
    if not rotate:
        assert again.tobytes() == expected.tobytes()


def test_with_ghostscript_as_rasterizer_the_raster_itself_is_turned(tmp_path: Path) -> None:
    """OCR_ARGS may choose ocrmypdf's Ghostscript rasterizer: the page was not drawn by pdfium, so
    drawing it again with pdfium would not be the same raster; the raster is turned instead."""
    page = inputs.text_page(inputs.LETTER, grey=215, noise=0.4, skew=1.0)
    dpi = Resolution(inputs.DPI, inputs.DPI)
    work = tmp_path / "ocrmypdf.io"
    work.mkdir()
    origin = inputs.pages_pdf(work / "origin.pdf", [inputs.turned(page, 180)])
    pypdfium.rasterize_pdf_page(input_file=origin, output_file=work / "000001_rasterize.png",
                                raster_device="pnggray", raster_dpi=dpi, pageno=1, page_dpi=dpi, rotation=0,
                                filter_vector=False, stop_on_soft_error=True,
                                options=SimpleNamespace(rasterizer="auto"), use_cropbox=False)
    shutil.copyfile(work / "000001_rasterize.png", work / "000001_ocr.png")

    upright_image(work / "000001_ocr.png", 180, tmp_path / "read-again.png", SimpleNamespace(rasterizer="ghostscript"))

    with Image.open(work / "000001_rasterize.png") as shown, Image.open(tmp_path / "read-again.png") as again:
        assert again.tobytes() == shown.transpose(Image.Transpose.ROTATE_180).tobytes()
