"""ROTATE_PAGES and DESKEW: the options, the plugin's reading of hOCR, the turn of reported pages, doctor's advice."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pikepdf
import pytest

from ocrpipe.config import ConfigError, Settings, load_settings
from ocrpipe.ops.doctor import doctor
from ocrpipe.errors import ExitCode, MissingToolError
from ocrpipe.tools.check import check_tools
from ocrpipe.stages import orientation
from ocrpipe.stages.orientation import (PLUGIN, apply_turns, ocrmypdf_options, orientation_env, orientation_fields,
                                        read_reports)
from ocrpipe.tools.ocrmypdf import build_argv, profile_args
from ocrpipe.tools.ocrpipe_orientation_plugin import (ORIENTATION_DIR_ENV, Reading, read_hocr, reads_better,
                                                      turn_hocr_back)


def _hocr(lines: list[tuple[tuple[int, int, int, int], list[tuple[str, int]]]], size: tuple[int, int] = (1000, 2000)
          ) -> str:
    """Tesseract-shaped hOCR of a page of ``size``: one line per entry, its bbox and its (word, confidence) pairs."""
    spans = []
    for n, ((x0, y0, x1, y1), words) in enumerate(lines):
        inner = "".join(f"<span class='ocrx_word' id='word_1_{n}{k}' title='bbox {x0} {y0} {x1} {y1}; "
                        f"x_wconf {conf}'>{text}</span> " for k, (text, conf) in enumerate(words))
        spans.append(f"<span class='ocr_line' id='line_1_{n}' title=\"bbox {x0} {y0} {x1} {y1}; "
                     f"baseline 0 -11; x_size 54\">{inner}</span>\n      </span>")
    return (f"<div class='ocr_page' id='page_1' title='image \"x.png\"; bbox 0 0 {size[0]} {size[1]}; ppageno 0'>"
            "<span class='ocr_par'>" + "".join(spans) + "</div>")


def test_pool_workers_name_the_plugins_folder_variable_without_importing_ocrmypdf() -> None:
    """Importing the plugin (hence ocrmypdf) cost every PREP and OCR worker 0.3 s of CPU."""
    assert orientation.ORIENTATION_DIR_ENV == ORIENTATION_DIR_ENV
    probe = "import sys, ocrpipe.engine.worker; ocrpipe.engine.worker.warm_up(); print(sorted(m for m in sys.modules if m == 'ocrmypdf'))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


UPRIGHT = _hocr([((100, 100, 600, 150), [("The", 96), ("quick", 95), ("brown", 93)])])


def test_upright_text_reads_right_and_turned_text_or_vertical_lines_read_suspicious() -> None:
    upright = read_hocr(UPRIGHT)
    assert (upright.chars, round(upright.confidence), upright.vertical) == (13, 94, 0.0)
    assert not upright.suspicious
    garbage = read_hocr(_hocr([((100, 100, 600, 150), [("XO}", 40), ("UMO1Q", 52), ("4OINb", 31)])]))
    assert garbage.suspicious and garbage.confidence < 50
    # Tesseract reads a page turned 270° right, along lines taller than wide: the page is sideways.
    sideways = read_hocr(_hocr([((100, 100, 150, 600), [("The", 96), ("quick", 95), ("brown", 93)])]))
    assert sideways.vertical == 1.0 and sideways.suspicious


@pytest.mark.parametrize(("before", "after", "kept"), [
    (Reading(100, 35.0, 0.0), Reading(100, 95.0, 0.0), True),  # upside down, then upright
    (Reading(100, 95.0, 1.0), Reading(100, 95.0, 0.0), True),  # sideways: right words on vertical lines
    (Reading(100, 22.5, 0.0), Reading(100, 15.7, 0.0), False),  # a poor upright scan wrongly detected turned
    (Reading(100, 15.7, 0.0), Reading(100, 22.5, 0.0), True),  # the same scan upside down: upright reads better
    (Reading(100, 40.0, 0.0), Reading(100, 43.0, 0.0), False),  # no clear gain
    (Reading(100, 40.0, 0.0), Reading(0, 0.0, 0.0), False),
    (Reading(100, 40.0, 0.0), Reading(100, 90.0, 1.0), False),  # still vertical
])
def test_a_page_read_again_turned_is_kept_only_when_it_reads_clearly_better(before: Reading, after: Reading,
                                                                           kept: bool) -> None:
    assert reads_better(before, after) is kept


def test_a_page_without_words_is_never_suspicious() -> None:
    assert not read_hocr(_hocr([])).suspicious
    assert not read_hocr(_hocr([((10, 10, 20, 20), [("", 0)])])).suspicious


@pytest.mark.parametrize(("angle", "expected_bbox", "textangle"), [
    (90, "bbox 850 100 900 600", 270),  # page 1000 x 2000 turned back clockwise: x = W - y, y = x
    (180, "bbox 400 1850 900 1900", 180),
    (270, "bbox 100 1400 150 1900", 90),  # x = y, y = H - x
])
def test_hocr_read_upright_is_put_back_where_the_words_are_on_the_page(angle: int, expected_bbox: str,
                                                                    textangle: int) -> None:
    upright = _hocr([((100, 100, 600, 150), [("The", 96), ("quick", 95), ("brown", 93)])],
                    (1000, 2000) if angle == 180 else (2000, 1000))
    back = turn_hocr_back(upright, angle, (1000, 2000))
    assert "bbox 0 0 1000 2000; ppageno 0" in back  # the page as it was
    assert f"title=\"{expected_bbox}; x_size 54; textangle {textangle}\"" in back
    assert "baseline" not in back  # measured along the upright line; ocrmypdf derives one instead
    assert back.count(expected_bbox) == 4  # the line and its three words


def _pdf(path: Path, rotations: list[int]) -> Path:
    pdf = pikepdf.new()
    for rotation in rotations:
        pdf.add_blank_page(page_size=(200, 300))
        if rotation:
            pdf.pages[-1].obj.Rotate = rotation
    pdf.save(path)
    return path


def test_reported_turns_add_to_a_pages_rotation_and_nothing_else_changes(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "out.pdf", [0, 90, 0, 0])
    reports = [{"page": 2, "turned": 270}, {"page": 3, "turned": 180}, {"page": 4, "turned": 0}]
    assert apply_turns(pdf, reports) == {2: 270, 3: 180}
    with pikepdf.open(pdf) as result:
        assert [int(p.obj.get("/Rotate", 0)) for p in result.pages] == [0, 0, 180, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pdf"]


def test_without_a_turn_the_output_is_not_rewritten(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "out.pdf", [0])
    before = pdf.read_bytes()
    assert apply_turns(pdf, [{"page": 1, "checked": True, "turned": 0}]) == {}
    assert pdf.read_bytes() == before


def test_reports_are_read_from_a_fresh_folder_and_split_by_document(tmp_path: Path) -> None:
    env = orientation_env({"TMPDIR": str(tmp_path)}, "auto")
    folder = Path(env[ORIENTATION_DIR_ENV])
    for page, turned in ((5, 90), (2, 0)):
        (folder / f"page-{page:06d}.json").write_text(json.dumps({"page": page, "turned": turned}))
    reports = read_reports(env)
    assert [r["page"] for r in reports or []] == [2, 5]
    assert orientation_fields(reports, {5: 90}, first=1, pages=3) == {"orientationChecked": 1, "pagesTurned": {}}
    assert orientation_fields(reports, {5: 90}, first=4, pages=2) == {"orientationChecked": 1,
                                                                      "pagesTurned": {"2": 90}}
    # The next attempt starts without the last one's reports; off runs no plugin and records nothing.
    assert read_reports(orientation_env({"TMPDIR": str(tmp_path)}, "auto")) == []
    assert read_reports(orientation_env({"TMPDIR": str(tmp_path)}, "off")) is None
    assert orientation_fields(None, {}) == {}


def _settings(**env: str) -> Settings:
    return load_settings({"DATA_DIR": "/nonexistent-ocrpipe-test", **env})


def test_rotate_pages_and_deskew_become_ocrmypdf_options() -> None:
    assert _settings().rotate_pages == "auto" and not _settings().deskew
    argv = build_argv(["ocrmypdf"], Path("in.pdf"), Path("out.pdf"), lang="eng", jobs=1,
                      orientation=ocrmypdf_options(_settings(DESKEW="on")))
    assert argv[argv.index("--plugin") + 1] == str(PLUGIN) and PLUGIN.is_file()
    assert "--deskew" in argv and argv[-2:] == ["in.pdf", "out.pdf"]
    assert ocrmypdf_options(_settings(ROTATE_PAGES="always")) == ["--rotate-pages", "--rotate-pages-threshold", "1"]
    assert ocrmypdf_options(_settings(ROTATE_PAGES="off")) == []


def test_the_profile_names_the_setting_not_the_plugins_path_and_off_keeps_old_job_keys() -> None:
    assert profile_args([], rotate_pages="off") == ["--output-type", "auto", "--skip-text"]
    assert profile_args([], rotate_pages="auto") == ["--output-type", "auto", "--skip-text", "ROTATE_PAGES=auto"]
    assert len({tuple(profile_args([], rotate_pages=r, deskew=d)) for r in ("auto", "always", "off")
                for d in (True, False)}) == 6


@pytest.mark.parametrize(("name", "value"), [("ROTATE_PAGES", "sometimes"), ("DESKEW", "maybe")])
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        _settings(**{name: value})


def test_doctor_names_the_osd_package_unless_rotation_is_off(make_settings: Callable[..., Settings]) -> None:
    out = io.StringIO()
    assert doctor(make_settings(FAKE_TESSERACT_LANGS="eng fra"), out=out) == ExitCode.MISSING_TOOL
    text = out.getvalue()
    assert "MISSING  osd" in text and "sudo apt-get install -y tesseract-ocr-osd" in text
    assert "UB-Mannheim Tesseract installer" in text and "osd.traineddata" in text
    out = io.StringIO()
    doctor(make_settings(FAKE_TESSERACT_LANGS="eng fra", ROTATE_PAGES="off"), out=out)
    assert "not needed while ROTATE_PAGES=off" in out.getvalue() and "tesseract-ocr-osd" not in out.getvalue()
    out = io.StringIO()
    doctor(make_settings(), out=out)
    assert "ok       osd" in out.getvalue()


def test_run_refuses_to_start_without_orientation_data_unless_rotation_is_off(
        make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(MissingToolError, match=r"no orientation data \('osd'\), which ROTATE_PAGES=auto needs"):
        check_tools(make_settings(FAKE_TESSERACT_LANGS="eng fra", OCR_LANG="eng"))
    profile = check_tools(make_settings(FAKE_TESSERACT_LANGS="eng fra", OCR_LANG="eng", ROTATE_PAGES="off"))
    assert "ROTATE_PAGES=auto" not in profile["ocrmypdf_args"]
    assert "ROTATE_PAGES=auto" in check_tools(make_settings(OCR_LANG="eng"))["ocrmypdf_args"]


def _words(n: int, conf: int, text: str = "word") -> list[tuple[str, int]]:
    return [(text, conf)] * n


@pytest.mark.parametrize(("words", "suspicious"), [
    # A turned page: garbage all over, a stray word read with confidence here and there.
    (_words(18, 25, "Iiol") + _words(2, 92, "wa"), True),
    # An upright page that reads poorly on the whole (a map, a smudge), but a third of it well.
    (_words(14, 25, "Iiol") + _words(6, 93, "Bokale"), False),
    # Poor all over, with nothing read well (a degraded print): checked, as a turned page would be.
    (_words(20, 45, "tbe"), True),
    (_words(20, 75, "tbe"), False),  # no word read with confidence, but above 70 on the whole
])
def test_a_page_reads_like_a_turned_one_when_it_reads_poorly_and_hardly_any_word_reads_well(
        words: list[tuple[str, int]], suspicious: bool) -> None:
    reading = read_hocr(_hocr([((100, 100 + 60 * n, 900, 150 + 60 * n), [word]) for n, word in enumerate(words)]))
    assert reading.suspicious is suspicious, reading
