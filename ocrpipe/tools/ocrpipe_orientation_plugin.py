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
# The first page (1-based) of each document in the call, comma-separated; unset, no page is judged by
# the other pages of its document.
DOCUMENTS_ENV = "OCRPIPE_ORIENTATION_DOCUMENTS"
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
# A page read along horizontal lines that reads poorly (a degraded print, Fraktur read as English) is
# upright or upside down, and its strokes say which: in Latin print, more ink lies above a line's x-height
# band (ascenders, capitals, digits, the dots on i) than below it (descenders); upside down, the two swap
# (Leptonica's up-down test rests on the same). A line leans one way when that side has LINE_LEAN times the
# ink of the other. Measured on 40 pages (the corpus' upright scans, four more real ones, generated prose,
# letters and blurred prose; docs/ocr.md), each upright and upside down: no upside-down page had even 1.2
# times as many lines leaning up as down (three or more up), upright pages that read poorly 1.5 to 8.5 times.
# So a page with UPRIGHT_LINES lines leaning up, UPRIGHT_MAJORITY times as many as down, is upright: it
# costs no orientation detection.
LINE_LEAN = 1.5
MIN_OUTSIDE_INK = 0.05  # a line with less ink outside its band than this share of the band's has no say
UPRIGHT_LINES = 4
UPRIGHT_MAJORITY = 3
# A document of poor prints: once SETTLED_PAGES of its pages were found upright (checked, or by clear strokes)
# and none turned, a page of it with LEANING_LINES lines leaning up, LEANING_MAJORITY times as many as down,
# is upright too.
SETTLED_PAGES = 2
LEANING_LINES = 3
LEANING_MAJORITY = 1.5
# Orientation detection is asked only about pages that already read wrong, and its answer is kept
# only when the page then reads right, so any answer it is sure of at all is worth trying: on small
# pages its right answers come with confidences as low as 1.3.
MIN_OSD_CONFIDENCE = 0.5

_WORD = re.compile(r"<span class=['\"]ocrx_word['\"][^>]*title=['\"][^'\"]*x_wconf (\d+)[^>]*>(.*?)</span>", re.S)
_LINE = re.compile(r"<span class=['\"]ocr_(?:line|caption|header|textfloat)['\"][^>]*?title=\"bbox (\d+) (\d+) "
                   r"(\d+) (\d+)[^\"]*\"[^>]*>(.*?)</span>\s*</span>", re.S)
_TAG = re.compile(r"<[^>]+>")
_LINE_ATTRS = re.compile(r"class=['\"]ocr_(?:line|caption|header|textfloat)['\"][^>]*?title=\"([^\"]*)\"")
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


def _line_box(title: str) -> tuple[int, int, int, int] | None:
    """A horizontal line's bbox from its hOCR title; None for a line that is vertical or turned (textangle)."""
    fields = dict(part.strip().partition(" ")[::2] for part in title.split(";"))
    try:
        x0, y0, x1, y1 = map(int, fields["bbox"].split())
    except (KeyError, ValueError):
        return None
    if "textangle" in fields or x1 - x0 <= y1 - y0 or y1 - y0 < 6:
        return None
    return x0, y0, x1, y1


def _ink_threshold(histogram: list[int]) -> int:
    """Otsu's threshold of a grey histogram: a line's own, so a dark or stained page counts its ink only."""
    total = sum(histogram)
    weighted = sum(level * count for level, count in enumerate(histogram))
    below = below_weighted = 0
    best, threshold = -1.0, 127
    for level, count in enumerate(histogram[:255]):
        below += count
        below_weighted += level * count
        above = total - below
        if not below or not above:
            continue
        spread = below * above * (below_weighted / below - (weighted - below_weighted) / above) ** 2
        if spread > best:
            best, threshold = spread, level
    return threshold


def line_lean(line: Image.Image) -> tuple[float, float]:
    """The ink of a line of text (greyscale) above and below its x-height band, each as a share of the
    band's: the band is the run of pixel rows inked at least half as much as the most inked one (every
    letter has a part there). The line's own rows, not Tesseract's baseline, which it fits to the
    bottoms of whatever blobs it sees: upside down and blurred, those were the ascenders'."""
    threshold = _ink_threshold(line.histogram()[:256])
    ink = line.point(lambda level: 255 if level <= threshold else 0)
    rows = list(ink.resize((1, line.height), Image.Resampling.BOX).tobytes())  # each row's mean ink
    peak = max(rows)
    if not peak:
        return 0.0, 0.0
    band = [n for n, value in enumerate(rows) if value >= peak / 2]
    top, bottom = band[0], band[-1]
    core = sum(rows[top:bottom + 1]) or 1
    return sum(rows[:top]) / core, sum(rows[bottom + 1:]) / core


def stroke_votes(image: Image.Image, hocr: str) -> tuple[int, int]:
    """(lines leaning up, lines leaning down): horizontal lines with LINE_LEAN times more ink above their
    x-height band than below it, and the reverse; a line with next to nothing outside its band (text in
    capitals, specks) has no say."""
    grey = image.convert("L")
    up = down = 0
    for title in _LINE_ATTRS.findall(hocr):
        box = _line_box(title)
        if box is None:
            continue
        above, below = line_lean(grey.crop(box))
        if above + below < MIN_OUTSIDE_INK:
            continue
        if above > LINE_LEAN * below:
            up += 1
        elif below > LINE_LEAN * above:
            down += 1
    return up, down


def upright_by_strokes(votes: tuple[int, int]) -> bool:
    up, down = votes
    return up >= UPRIGHT_LINES and up >= UPRIGHT_MAJORITY * down


def leans_upright(votes: tuple[int, int]) -> bool:
    up, down = votes
    return up >= LEANING_LINES and up >= LEANING_MAJORITY * down


def document_of(page: int, starts: str | None) -> tuple[int, float] | None:
    """The pages (first, last + 1) of the document ``page`` belongs to, from DOCUMENTS_ENV's value;
    None when it is unset or not a list of page numbers."""
    try:
        firsts = sorted({int(part) for part in (starts or "").split(",") if part.strip()})
    except ValueError:
        return None
    if not firsts or firsts[0] < 1 or page < firsts[0]:
        return None
    first = max(n for n in firsts if n <= page)
    return first, min((n for n in firsts if n > page), default=float("inf"))


def settled_upright(folder: Path, pages: tuple[int, float]) -> bool:
    """Whether SETTLED_PAGES pages of the document (``pages``: first, last + 1) were found upright by a check
    or clearly by their strokes, and none turned, by the reports the plugin wrote so far (other pages run at
    the same time). A page taken as upright only because of its document's other pages does not count."""
    upright = 0
    for path in folder.glob("page-*.json"):
        try:
            report = json.loads(path.read_text())
            page, checked, turned = int(report["page"]), report.get("checked"), report.get("turned")
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if not pages[0] <= page < pages[1] or report.get("failed"):
            continue
        if checked is not True and not (checked is False and report.get("upright") == "strokes"):
            continue
        if turned:
            return False
        upright += 1
    return upright >= SETTLED_PAGES


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
        hocr = Path(output_hocr).read_text(encoding="utf-8")
        reading = read_hocr(hocr)
        if os.environ.get(ORIENTATION_DIR_ENV) and reading.suspicious:
            if not _reads_upright_by_strokes(Path(input_file), Path(output_hocr), hocr, reading):
                reading = _check_orientation(Path(input_file), Path(output_hocr), Path(output_text), options, reading)
        _record_reading(Path(output_hocr), reading)


def _reads_upright_by_strokes(input_file: Path, output_hocr: Path, hocr: str, reading: Reading) -> bool:
    """Whether a page that reads poorly along horizontal lines shows by its strokes that it is upright:
    then it costs no orientation detection (recorded as not checked)."""
    if reading.vertical > MAX_VERTICAL_SHARE:
        return False
    with Image.open(input_file) as image:
        votes = stroke_votes(image, hocr)
    if upright_by_strokes(votes):
        why, by = "upright by its strokes", "strokes"
    elif leans_upright(votes) and _document_settled(output_hocr):
        why, by = "leaning upright in a document of pages found upright", "document"
    else:
        return False
    log.info("%s: reads poorly (confidence %.0f) but %s (%d lines lean up, %d down): not checked",
             input_file.name, reading.confidence, why, *votes)
    _record(output_hocr, {"checked": False, "upright": by, "strokes": list(votes),
                          "before": round(reading.confidence, 1)})
    return True


def _document_settled(output_hocr: Path) -> bool:
    folder, match = os.environ.get(ORIENTATION_DIR_ENV), _PAGE_NUMBER.match(output_hocr.name)
    pages = document_of(int(match.group(1)), os.environ.get(DOCUMENTS_ENV)) if match else None
    return bool(folder and pages and settled_upright(Path(folder), pages))


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
