"""ocrmypdf plugin: each page's reading confidence, and for ROTATE_PAGES=auto, a page whose OCR reads like a
turned page is turned and read again."""

# ocrmypdf loads this file by its path (``--plugin``), in its own processes: it imports nothing of
# ocrpipe, so it works with any ocrmypdf the OCRMYPDF setting names. ocrpipe reads what it decided
# from the files it writes into $OCRPIPE_ORIENTATION_DIR and sets the turned pages' /Rotate; the
# pages are checked for orientation only when that variable is set (ROTATE_PAGES=auto). How well each
# page read (from the hOCR Tesseract writes anyway) goes into $OCRPIPE_READING_DIR when that is set.

from __future__ import annotations

import filecmp
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pikepdf
from ocrmypdf import hookimpl
from ocrmypdf.builtin_plugins.tesseract_ocr import TesseractOcrEngine
from ocrmypdf.exceptions import SubprocessOutputError
from ocrmypdf.helpers import Resolution
from PIL import Image

pypdfium: ModuleType | None
try:  # ocrmypdf 17's pdfium rasterizer; with an older ocrmypdf (>= 16 is allowed) the raster is turned instead
    from ocrmypdf.builtin_plugins import pypdfium
except ImportError:
    pypdfium = None

log = logging.getLogger("ocrmypdf.ocrpipe_orientation")

ORIENTATION_DIR_ENV = "OCRPIPE_ORIENTATION_DIR"
READING_DIR_ENV = "OCRPIPE_READING_DIR"
# Measured on generated pages and real scans (README "Orientation"): most upright pages read at a
# character-weighted word confidence of 82-96, the same pages turned 90° or 180° at 11-43. Below 70, a
# page reads like a turned one only if hardly any of its words read well: turned, at most 10 % of the
# characters lie in words read at 90 or more; the real upright pages that read below 70 because of a
# map or a few words on a small page still had 31-42 % of them. Pages poor all over (a degraded DIBCO
# print, Fraktur read as English: 0-17 %) cost an orientation check, which answers 0°.
MIN_CONFIDENCE = 70.0
SURE_WORD = 90
MIN_SURE_SHARE = 0.2
# Tesseract reads a page turned 270° (and some turned 90°) correctly but along vertical lines: the
# words are right, the page is sideways. Upright pages have no vertical lines of text.
MAX_VERTICAL_SHARE = 0.5
# A page read again turned is kept when it reads this much better (word confidence, lines taller than
# wide counting 50 less): degraded scans read poorly either way, but upright better (measured on two
# DIBCO pages: 43 upright vs 13-39 turned, 23 vs 13-17).
MIN_GAIN = 5.0
VERTICAL_PENALTY = 50.0
# Orientation detection is asked only about pages that already read wrong, and its answer is kept
# only when the page then reads right, so any answer it is sure of at all is worth trying: on small
# pages its right answers come with confidences as low as 1.3.
MIN_OSD_CONFIDENCE = 0.5

_WORD = re.compile(r"<span class=['\"]ocrx_word['\"][^>]*title=['\"][^'\"]*x_wconf (\d+)[^>]*>(.*?)</span>", re.S)
_LINE = re.compile(r"<span class=['\"]ocr_(?:line|caption|header|textfloat)['\"][^>]*?title=\"bbox (\d+) (\d+) "
                   r"(\d+) (\d+)[^\"]*\"[^>]*>(.*?)</span>\s*</span>", re.S)
_TAG = re.compile(r"<[^>]+>")
_BBOX = re.compile(r"bbox (\d+) (\d+) (\d+) (\d+)")
_LINE_TITLE = re.compile(r"(class=['\"]ocr_(?:line|caption|header|textfloat)['\"][^>]*?title=\")([^\"]*)\"")
_PAGE_NUMBER = re.compile(r"^(\d+)_")


@dataclass(frozen=True)
class Reading:
    """What the hOCR of one page says about how well it was read."""

    chars: int  # characters in words
    confidence: float  # Tesseract's word confidence, weighted by characters (0-100)
    vertical: float  # share of the characters on lines taller than wide
    sure: float = 0.0  # share of the characters in words read with a confidence of SURE_WORD or more

    @property
    def suspicious(self) -> bool:
        """Reads like a turned page: poorly all over, or along vertical lines; a page without text
        (blank, a photo) never does."""
        poor = self.confidence < MIN_CONFIDENCE and self.sure < MIN_SURE_SHARE
        return self.chars > 0 and (poor or self.vertical > MAX_VERTICAL_SHARE)

    @property
    def score(self) -> float:
        return self.confidence - (VERTICAL_PENALTY if self.vertical > MAX_VERTICAL_SHARE else 0.0)


def reads_better(before: Reading, after: Reading) -> bool:
    """Whether the page read again turned (``after``) reads clearly better than as it came."""
    return after.chars > 0 and after.vertical <= MAX_VERTICAL_SHARE and after.score >= before.score + MIN_GAIN


def read_hocr(hocr: str) -> Reading:
    words = [(int(conf), _TAG.sub("", text).strip()) for conf, text in _WORD.findall(hocr)]
    words = [(conf, text) for conf, text in words if text]
    chars = sum(len(text) for _, text in words)
    if not chars:
        return Reading(0, 0.0, 0.0)
    confidence = sum(conf * len(text) for conf, text in words) / chars
    sure = sum(len(text) for conf, text in words if conf >= SURE_WORD) / chars
    vertical = total = 0
    for x0, y0, x1, y1, body in _LINE.findall(hocr):
        count = len(re.sub(r"\s", "", _TAG.sub("", body)))
        total += count
        if int(y1) - int(y0) > int(x1) - int(x0):
            vertical += count
    return Reading(chars, confidence, vertical / total if total else 0.0, sure)


def turn_hocr_back(hocr: str, angle: int, size: tuple[int, int]) -> str:
    """hOCR of the page turned upright (its image rotated ``angle``° counter-clockwise) in the
    coordinates of the page as it was (``size``: width, height), lines marked with the angle of their
    text (hOCR's ``textangle``, counter-clockwise), so the text layer lies over the words it reads."""
    width, height = size

    def back(x: int, y: int) -> tuple[int, int]:
        if angle == 90:
            return width - y, x
        if angle == 180:
            return width - x, height - y
        return y, height - x  # 270

    def bbox(match: re.Match[str]) -> str:
        x0, y0, x1, y1 = map(int, match.groups())
        (ax, ay), (bx, by) = back(x0, y0), back(x1, y1)
        return f"bbox {min(ax, bx)} {min(ay, by)} {max(ax, bx)} {max(ay, by)}"

    def line_title(match: re.Match[str]) -> str:
        # The baseline is measured along an upright line; ocrmypdf derives it from the font instead.
        parts = [p.strip() for p in match.group(2).split(";")
                 if p.strip() and not p.strip().startswith(("baseline", "textangle"))]
        return f'{match.group(1)}{"; ".join([*parts, f"textangle {(360 - angle) % 360}"])}"'

    return _BBOX.sub(bbox, _LINE_TITLE.sub(line_title, hocr))


def upright_image(source: Path, angle: int, target: Path, options: object) -> tuple[int, int]:
    """``source`` rotated ``angle``° counter-clockwise into ``target``; returns the source's size.
    Rasterized again turned, as ocrmypdf's own --rotate-pages does, when ``source`` is ocrmypdf's plain
    raster of a page; else (a preprocessed image, --deskew) the image itself is turned."""
    with Image.open(source) as image:
        size, dpi, mode = image.size, image.info.get("dpi"), image.mode
        if not (dpi and _rasterize_upright(Path(source), angle, target, dpi, mode, options)):
            turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
                    270: Image.Transpose.ROTATE_270}
            turned = image.transpose(turn[angle])
            params: dict[str, Any] = {"dpi": (dpi[1], dpi[0]) if angle != 180 else dpi} if dpi else {}
            turned.save(target, **params)
    return size


_DEVICE = {"1": "pngmono", "L": "pnggray", "P": "png256"}  # by the raster's image mode


def _rasterize_upright(source: Path, angle: int, target: Path, dpi: tuple[float, float], mode: str,
                       options: object) -> bool:
    """The page of ``source`` (ocrmypdf's raster of it) drawn again from the PDF, turned ``angle``°
    counter-clockwise, with ocrmypdf's own pdfium rasterizer: the raster of the page turned upright,
    pixel for pixel what ocrmypdf reads of the page upright (turning the raster instead can shift it
    a pixel, and a degraded page then reads a few words differently). False when ``source`` is not
    such a raster, the page has a /Rotate, or ocrmypdf rasterizes with Ghostscript (pdfium's hook then
    declines)."""
    match = _PAGE_NUMBER.match(source.name)
    if not match or pypdfium is None:
        return False
    page = int(match.group(1))
    raster, origin = source.with_name(f"{match.group(1)}_rasterize.png"), source.parent / "origin.pdf"
    # The image OCRed is the raster itself: linked to it, or on Windows a copy of it.
    if not (raster.is_file() and origin.is_file()
            and (source.resolve() == raster.resolve() or filecmp.cmp(source, raster, shallow=False))):
        return False
    with pikepdf.open(origin) as pdf:
        if int(pdf.pages[page - 1].obj.get("/Rotate", 0)) % 360:
            # ocrmypdf's rotation replaces a page's /Rotate, and its raster of such a page turned comes
            # out a pixel taller or wider than the page: turning the raster is closer.
            return False
    # A PNG keeps its resolution in pixels per metre: 300 comes back as 299.9994, a page then drawn
    # at a slightly different scale.
    resolution = Resolution(round(dpi[0], 2), round(dpi[1], 2))
    done = pypdfium.rasterize_pdf_page(
        input_file=origin, output_file=target, raster_device=_DEVICE.get(mode, "png16m"), raster_dpi=resolution,
        pageno=page, page_dpi=resolution, rotation=angle, filter_vector=False,
        stop_on_soft_error=False, options=options, use_cropbox=False)
    return done is not None


def _record(output_hocr: Path, decision: dict[str, object]) -> None:
    folder = os.environ.get(ORIENTATION_DIR_ENV)
    match = _PAGE_NUMBER.match(Path(output_hocr).name)
    if folder and match:
        page = int(match.group(1))
        (Path(folder) / f"page-{page:06d}.json").write_text(json.dumps({"page": page, **decision}))


class AdaptiveOrientationEngine(TesseractOcrEngine):
    """Tesseract as ocrmypdf runs it, plus a look at each page's hOCR: a page that reads like a
    turned one gets Tesseract's orientation detection and, when that names a turn, is read again
    upright. Its reading is kept when it reads right; ocrpipe then turns the page (its /Rotate)."""

    @staticmethod
    def generate_hocr(input_file: Path, output_hocr: Path, output_text: Path, options: object) -> None:
        TesseractOcrEngine.generate_hocr(input_file, output_hocr, output_text, options)
        reading = read_hocr(Path(output_hocr).read_text(encoding="utf-8"))
        if os.environ.get(ORIENTATION_DIR_ENV) and reading.suspicious:
            reading = _check_orientation(Path(input_file), Path(output_hocr), Path(output_text), options, reading)
        _record_reading(Path(output_hocr), reading)


def _record_reading(output_hocr: Path, reading: Reading) -> None:
    """How well the page kept in the output read: its characters in words and their confidence."""
    folder = os.environ.get(READING_DIR_ENV)
    match = _PAGE_NUMBER.match(output_hocr.name)
    if folder and match:
        page = int(match.group(1))
        (Path(folder) / f"reading-{page:06d}.json").write_text(json.dumps(
            {"page": page, "chars": reading.chars, "confidence": round(reading.confidence, 2)}))


def _check_orientation(input_file: Path, output_hocr: Path, output_text: Path, options: object,
                       first: Reading) -> Reading:
    """Tesseract's orientation detection on a page that read like a turned one, and the page read
    again upright when it names a turn; returns the reading the output keeps."""
    try:
        found = TesseractOcrEngine.get_orientation(input_file, options)
    except SubprocessOutputError:  # no orientation data ('osd'), say: the page stays as it was read
        log.warning("%s: Tesseract's orientation detection failed (is its 'osd' data installed? run "
                    "'ocrpipe doctor'); the page is left as it is", input_file.name)
        _record(output_hocr, {"checked": True, "angle": 0, "confidence": 0.0, "turned": 0, "failed": True})
        return first
    # ocrmypdf's angle is how far the page is turned clockwise: turning it back counter-clockwise
    # by as much sets it upright.
    angle = found.angle % 360
    decision: dict[str, object] = {"checked": True, "angle": angle, "confidence": found.confidence,
                                   "turned": 0, "before": round(first.confidence, 1),
                                   "sureShare": round(first.sure, 2)}
    kept = first
    if angle and found.confidence >= MIN_OSD_CONFIDENCE:
        outcome, second = _read_upright(input_file, output_hocr, output_text, angle, options, first)
        decision.update(outcome)
        kept = second if outcome["turned"] else first
    log.info("%s: read like a turned page (confidence %.0f); orientation %d° (confidence %.2f): %s",
             input_file.name, first.confidence, angle, found.confidence,
             f"turned {decision['turned']}°" if decision["turned"] else "left as it is")
    _record(output_hocr, decision)
    return kept


def _read_upright(input_file: Path, output_hocr: Path, output_text: Path, angle: int, options: object,
                  first: Reading) -> tuple[dict[str, object], Reading]:
    stem = output_hocr.with_suffix("")
    image, hocr, text = (Path(f"{stem}_upright{ext}") for ext in (".png", ".hocr", ".txt"))
    size = upright_image(input_file, angle, image, options)
    TesseractOcrEngine.generate_hocr(image, hocr, text, options)
    upright_hocr = hocr.read_text(encoding="utf-8")
    second = read_hocr(upright_hocr)
    if not reads_better(first, second):  # turned, it reads no better: detection was wrong
        return {"turned": 0, "after": round(second.confidence, 1)}, second
    output_hocr.write_text(turn_hocr_back(upright_hocr, angle, size), encoding="utf-8")
    os.replace(text, output_text)
    return {"turned": (360 - angle) % 360, "after": round(second.confidence, 1)}, second


@hookimpl
def get_ocr_engine(options: object) -> AdaptiveOrientationEngine | None:
    """This engine wherever ocrmypdf's own Tesseract engine would run."""
    if options is not None and getattr(options, "ocr_engine", "auto") not in ("auto", "tesseract"):
        return None
    return AdaptiveOrientationEngine()
