"""ROTATE_PAGES=auto: a page that reads poorly along horizontal lines is upright or upside down, and its
strokes say which; an upright one costs no orientation detection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import inputs
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ocrpipe.stages.orientation import orientation_fields
from ocrpipe.tools import ocrpipe_orientation_plugin as plugin
from ocrpipe.tools.ocrpipe_orientation_plugin import (
    ORIENTATION_DIR_ENV,
    AdaptiveOrientationEngine,
    stroke_votes,
    upright_by_strokes,
)

FONT_PX = 48
PITCH = 90


def _line_title(bbox: tuple[int, int, int, int], baseline_y: int, x_height: int, ascenders: int,
                descenders: int) -> str:
    """An hOCR line title as Tesseract writes it: the baseline as slope and offset from the bbox's bottom,
    x_size the row's whole height."""
    x0, y0, x1, y1 = bbox
    return (f"bbox {x0} {y0} {x1} {y1}; baseline 0 {baseline_y - y1}; x_size {x_height + ascenders + descenders}; "
            f"x_descenders {descenders}; x_ascenders {ascenders}")


def _page_and_hocr(lines: list[str], *, upside_down: bool) -> tuple[Image.Image, str]:
    """Prose drawn at known baselines, and the hOCR Tesseract's line finding gives of it: upright, the
    baseline under the letters; upside down, the page turned 180° and its "baseline" under the turned
    x-height band (Tesseract fits the bottoms of most blobs, which are then the letters' tops)."""
    font = ImageFont.load_default(size=FONT_PX)
    x_height = -font.getbbox("x", anchor="ls")[1]
    ascenders = -font.getbbox("h", anchor="ls")[1] - x_height
    descenders = font.getbbox("p", anchor="ls")[3]
    page = Image.new("L", (1600, 120 + PITCH * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    rows = []
    for n, text in enumerate(lines):
        baseline = 100 + PITCH * n
        draw.text((60, baseline), text, fill=0, font=font, anchor="ls")
        rows.append((draw.textbbox((60, baseline), text, font=font, anchor="ls"), baseline))
    width, height = page.size
    titles = []
    for (x0, y0, x1, y1), baseline in rows:
        if upside_down:
            bbox = (width - x1, height - y1, width - x0, height - y0)
            titles.append(_line_title(bbox, height - (baseline - x_height), x_height, descenders, ascenders))
        else:
            titles.append(_line_title((x0, y0, x1, y1), baseline, x_height, ascenders, descenders))
    hocr = "".join(f"<span class='ocr_line' id='line_1_{n}' title=\"{title}\"><span class='ocrx_word' "
                   f"title='bbox 0 0 1 1; x_wconf 30'>word</span></span>\n" for n, title in enumerate(titles))
    return (page.rotate(180) if upside_down else page), hocr


PROSE = inputs.prose(7, 6)


def test_the_lines_of_upright_prose_lean_up_and_of_the_same_prose_upside_down_lean_down() -> None:
    upright, hocr = _page_and_hocr(PROSE, upside_down=False)
    turned, turned_hocr = _page_and_hocr(PROSE, upside_down=True)

    up, down = stroke_votes(upright, hocr)
    assert up >= 5 and down == 0  # a line too light in both bands has no say
    turned_up, turned_down = stroke_votes(turned, turned_hocr)
    assert turned_down >= 4 and turned_up == 0
    assert upright_by_strokes((up, down)) and not upright_by_strokes((turned_up, turned_down))


def test_a_dark_stained_page_still_counts_only_its_ink() -> None:
    """Each line's own threshold: on a page darker than the usual halfway grey, the paper is not ink."""
    upright, hocr = _page_and_hocr(PROSE, upside_down=False)
    stained = upright.point(lambda level: 40 + level * 60 // 255)  # ink at 40, paper at 100
    assert stroke_votes(stained, hocr) == stroke_votes(upright, hocr)


def test_blurred_lines_still_lean_the_way_the_page_faces() -> None:
    """Blurred, upside down, Tesseract fitted its baseline to the bottoms of the ascenders: the test reads the
    line's own rows, not Tesseract's baseline."""
    upright, hocr = _page_and_hocr(PROSE, upside_down=False)
    turned, turned_hocr = _page_and_hocr(PROSE, upside_down=True)
    blurred = stroke_votes(upright.filter(ImageFilter.GaussianBlur(2.5)), hocr)
    assert blurred[0] >= 4 and blurred[1] == 0
    assert stroke_votes(turned.filter(ImageFilter.GaussianBlur(2.5)), turned_hocr) == (blurred[1], blurred[0])


@pytest.mark.parametrize(("votes", "upright"), [
    ((4, 0), True), ((4, 1), True), ((17, 2), True), ((40, 13), True),
    ((3, 0), False),  # too few lines to tell
    ((5, 2), False), ((9, 8), False),  # upside-down pages: at most 1.125 times as many up as down
    ((0, 0), False),
])
def test_only_enough_lines_leaning_up_three_to_one_make_a_page_upright(votes: tuple[int, int],
                                                                       upright: bool) -> None:
    assert upright_by_strokes(votes) is upright


def test_vertical_turned_and_empty_lines_do_not_vote() -> None:
    page = Image.new("L", (800, 800), 255)
    hocr = ("<span class='ocr_line' title=\"bbox 10 10 60 700; baseline 0 -5; x_size 40; x_descenders 8; "
            "x_ascenders 10\"></span>"  # taller than wide: a page turned 90°
            "<span class='ocr_line' title=\"bbox 10 10 700 60; baseline 0 -5; x_size 40; x_descenders 8; "
            "x_ascenders 10; textangle 90\"></span>"
            "<span class='ocr_line' title=\"bbox 10 100 700 160; x_size 40\"></span>"  # nothing drawn there
            "<span class='ocr_line' title=\"bbox nonsense; x_size 40\"></span>")
    assert stroke_votes(page, hocr) == (0, 0)


def _engine_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: Image.Image, hocr: str) -> list[Any]:
    """The plugin's engine on one page whose Tesseract reading is ``hocr``: the orientation detections
    it asked for."""
    image = tmp_path / "000001_ocr.png"
    page.save(image)
    reports = tmp_path / "reports"
    reports.mkdir()
    monkeypatch.setenv(ORIENTATION_DIR_ENV, str(reports))
    asked: list[Any] = []

    def reading(input_file: Path, output_hocr: Path, output_text: Path, options: object) -> None:
        Path(output_hocr).write_text(hocr, encoding="utf-8")
        Path(output_text).write_text("")

    def detection(input_file: Path, options: object) -> Any:
        asked.append(input_file)
        raise plugin.SubprocessOutputError("no osd here")

    monkeypatch.setattr(plugin.TesseractOcrEngine, "generate_hocr", staticmethod(reading))
    monkeypatch.setattr(plugin.TesseractOcrEngine, "get_orientation", staticmethod(detection))
    AdaptiveOrientationEngine.generate_hocr(image, tmp_path / "000001_ocr_hocr.hocr", tmp_path / "000001.txt", None)
    return asked


def _poorly_read(hocr: str) -> str:
    """Words read at a confidence that makes the page suspicious."""
    assert plugin.read_hocr(hocr).suspicious
    return hocr


def test_a_poorly_read_upright_page_costs_no_orientation_detection_and_counts_as_not_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page, hocr = _page_and_hocr(PROSE, upside_down=False)

    asked = _engine_on(tmp_path, monkeypatch, page, _poorly_read(hocr))

    assert asked == []
    report = json.loads((tmp_path / "reports" / "page-000001.json").read_text())
    assert report["checked"] is False and report["strokes"] == list(stroke_votes(page, hocr))
    assert orientation_fields([report], {}) == {"orientationChecked": 0, "pagesTurned": {}}


def test_the_same_page_upside_down_still_gets_its_orientation_detection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page, hocr = _page_and_hocr(PROSE, upside_down=True)

    asked = _engine_on(tmp_path, monkeypatch, page, _poorly_read(hocr))

    assert len(asked) == 1
    report = json.loads((tmp_path / "reports" / "page-000001.json").read_text())
    assert report["checked"] is True
    assert orientation_fields([report], {})["orientationChecked"] == 1


@pytest.mark.parametrize(("page", "starts", "pages"), [
    (1, "1", (1, float("inf"))), (7, "1", (1, float("inf"))),
    (4, "1,3,6", (3, 6)), (6, "1,3,6", (6, float("inf"))), (2, "3, 1", (1, 3)),
    (1, None, None), (1, "", None), (1, "1,x", None), (1, "0,2", None), (1, "2,5", None),
])
def test_the_document_a_page_belongs_to(page: int, starts: str | None, pages: tuple[int, float] | None) -> None:
    assert plugin.document_of(page, starts) == pages


def test_the_orientation_environment_names_each_documents_first_page(tmp_path: Path) -> None:
    from ocrpipe.stages.orientation import DOCUMENTS_ENV, orientation_env

    env = orientation_env({"TMPDIR": str(tmp_path)}, "auto", documents=[1, 3, 2])
    assert env[DOCUMENTS_ENV] == "1,2,5" and DOCUMENTS_ENV == plugin.DOCUMENTS_ENV
    assert DOCUMENTS_ENV not in orientation_env({"TMPDIR": str(tmp_path)}, "auto")
    assert orientation_env({"TMPDIR": str(tmp_path)}, "off", documents=[4]) == {"TMPDIR": str(tmp_path)}


def _leaning_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: list[dict[str, Any]],
                  starts: str | None, page: int = 5) -> tuple[list[Any], dict[str, Any]]:
    """Page ``page``, poorly read, its lines leaning up 3 to 2 (not enough on its own), after the
    plugin's reports ``earlier`` on other pages of the call."""
    reports = tmp_path / "reports"
    reports.mkdir()
    for report in earlier:
        (reports / f"page-{int(report['page']):06d}.json").write_text(json.dumps(report))
    monkeypatch.setenv(ORIENTATION_DIR_ENV, str(reports))
    if starts is not None:
        monkeypatch.setenv(plugin.DOCUMENTS_ENV, starts)
    monkeypatch.setattr(plugin, "stroke_votes", lambda image, hocr: (3, 2))
    _, hocr = _page_and_hocr(PROSE, upside_down=False)
    asked: list[Any] = []

    def detection(input_file: Path, options: object) -> Any:
        asked.append(input_file)
        raise plugin.SubprocessOutputError("no osd here")

    monkeypatch.setattr(plugin.TesseractOcrEngine, "generate_hocr", staticmethod(
        lambda input_file, output_hocr, output_text, options: Path(output_hocr).write_text(_poorly_read(hocr))))
    monkeypatch.setattr(plugin.TesseractOcrEngine, "get_orientation", staticmethod(detection))
    image = tmp_path / f"{page:06d}_ocr.png"
    Image.new("L", (100, 100), 255).save(image)
    AdaptiveOrientationEngine.generate_hocr(image, tmp_path / f"{page:06d}_ocr_hocr.hocr", tmp_path / "t.txt", None)
    return asked, json.loads((reports / f"page-{page:06d}.json").read_text())


def _upright(page: int, **more: Any) -> dict[str, Any]:
    return {"page": page, "checked": True, "angle": 0, "confidence": 3.1, "turned": 0, **more}


@pytest.mark.parametrize("earlier", [
    [_upright(2), _upright(3)],
    [_upright(2), {"page": 3, "checked": False, "upright": "strokes", "strokes": [9, 0]}],  # upright by its strokes
])
def test_a_leaning_page_of_a_document_whose_pages_were_found_upright_is_not_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: list[dict[str, Any]]) -> None:
    asked, report = _leaning_page(tmp_path, monkeypatch, earlier, "1")
    assert asked == [] and report["checked"] is False and report["upright"] == "document"


@pytest.mark.parametrize(("earlier", "starts"), [
    ([_upright(2)], "1"),  # one page is not yet a pattern
    ([_upright(2), _upright(3)], None),  # the call did not say where its documents begin: a batch of old
    ([_upright(2), _upright(3)], "1,4"),  # those pages are another document's
    ([_upright(2), _upright(3), _upright(4, turned=180)], "1"),  # the document has a turned page
    ([_upright(2), _upright(3, failed=True)], "1"),  # a detection that failed says nothing
    ([_upright(2), {"page": 3, "checked": False, "upright": "document", "strokes": [3, 2]}], "1"),  # no chains
    ([_upright(2), {"page": "3", "checked": "yes"}], "1"),  # not a report of the plugin's
])
def test_a_leaning_page_is_checked_unless_its_document_settled_upright(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: list[dict[str, Any]], starts: str | None) -> None:
    asked, report = _leaning_page(tmp_path, monkeypatch, earlier, starts)
    assert len(asked) == 1 and report["checked"] is True
