"""OCR_LANG=auto with fake tools: the settings and the job key, the decision on a page's text, and
documents read again in their own language (whole, pages apart, batch members alone) or not at all."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from conftest import drive, finished_jobs, job_ready_for_ocr, read_calls

from ocrpipe.config import Settings, load_settings
from ocrpipe.errors import ConfigError
from ocrpipe.folders.store import update_state
from ocrpipe.model import canonical_profile, make_job_key
from ocrpipe.stages.language import MIN_CHARS, identify
from ocrpipe.stages.ocrtext import sidecar_pages
from ocrpipe.tools.tesseract import languages_of_script, parse_script

FRENCH = ("Madame, nous avons bien reçu votre lettre du mois dernier. Le château près de la rivière sera fermé "
          "pendant l'été. Les élèves ont déjà préparé une fête très réussie à l'école. Nous espérons que cette "
          "décision vous conviendra.")
GERMAN = ("Sehr geehrte Damen und Herren, vielen Dank für Ihre Anfrage. Die Straße vor dem Gebäude wird nächste "
          "Woche gesperrt. Wir möchten Sie herzlich zur Eröffnung des Geschäfts einladen. Die Gebühren müssen bis "
          "Ende März überwiesen werden.")
ENGLISH = ("Dear Sir or Madam, thank you for your letter of last month. The meeting will take place at the town "
           "hall after lunch. Please find attached the invoice for the renovation of the office. We hope that this "
           "decision will suit you.")
AUTO = {"OCR_LANG": "auto", "OCR_LANG_CANDIDATES": "deu+eng+fra", "ROTATE_PAGES": "off"}


def lang_pdf(*pages: str) -> bytes:
    """Pages the fake ocrmypdf reads as a paragraph in a language: ``fra``, ``deu``, ``eng``, ``fra:20``
    (20 characters of it), or ``-`` (no text)."""
    pdf = pikepdf.new()
    for n, page in enumerate(pages):
        pdf.add_blank_page(page_size=(200, 200))
        lang, _, chars = page.partition(":")
        marks = (f" FAKE-LANG:{lang}" if lang != "-" else "") + (f" FAKE-CHARS:{chars}" if chars else "")
        pdf.pages[n].Contents = pdf.make_stream(f"% page {n + 1}{marks}\n".encode())
    buffer = io.BytesIO()
    pdf.save(buffer, compress_streams=False, static_id=True)
    return buffer.getvalue()


def ocr_calls(tool_log: Path) -> list[dict[str, Any]]:
    return [c for c in read_calls(tool_log) if c["tool"] == "ocrmypdf" and c["event"] == "start"]


def run(data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Any],
        files: dict[str, bytes], **env: str) -> dict[str, dict[str, Any]]:
    settings = make_settings(**{**AUTO, **env})
    settings.in_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (settings.in_dir / name).write_bytes(data)
    drive(scheduler_for(settings), timeout=120)
    return {entry["source"]: entry for entry in finished_jobs(data_dir)}


# ----- settings, key, decision -------------------------------------------------------------------------------


def test_auto_settings_are_read_and_bad_ones_named(tmp_path: Path) -> None:
    base = {"DATA_DIR": str(tmp_path)}
    settings = load_settings({**base, "OCR_LANG": "auto", "OCR_LANG_CANDIDATES": "fra, eng,deu"})
    assert (settings.ocr_lang, settings.ocr_lang_candidates, settings.ocr_lang_default) == (
        "auto", ("deu", "eng", "fra"), "eng")
    for name, value in (("OCR_LANG", "auto+eng"), ("OCR_LANG_CANDIDATES", "eng+osd"),
                        ("OCR_LANG_CANDIDATES", "eng;fra"), ("OCR_LANG_DEFAULT", "eng+fra")):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, "OCR_LANG": "auto", name: value})


def test_job_key_covers_auto_and_the_candidates() -> None:
    def key(**kw: Any) -> str:
        profile = canonical_profile(ocrmypdf_args=[], tool_versions={"t": "1"}, image_dpi=300, **kw)
        return make_job_key("f" * 64, profile)[1]

    fixed = key(ocr_lang="eng")
    assert fixed == key(ocr_lang="eng", lang_candidates=["deu"])  # only auto's key names them
    auto = key(ocr_lang="auto", lang_candidates=["deu", "eng", "fra"])
    assert auto != fixed
    assert auto == key(ocr_lang="auto", lang_candidates=["fra", "eng", "deu"])  # the order does not matter
    assert auto != key(ocr_lang="auto", lang_candidates=["eng", "fra"])
    assert auto != key(ocr_lang="auto", lang_candidates=["deu", "eng", "fra"], lang_default="fra")


def test_decision_per_document_per_page_and_below_the_threshold() -> None:
    langs = ["deu", "eng", "fra"]
    french = identify([FRENCH, FRENCH], langs, "eng")
    assert french.language == "fra" and french.reread == {"eng+fra": [0, 1]} and french.whole
    assert identify([ENGLISH], langs, "eng").reread == {}
    short = identify([FRENCH[:20]], langs, "eng")  # 20 characters: too few to tell, never read again
    assert short.reread == {} and short.fields(second=False)["languages"] == []
    assert min(map(len, (FRENCH, GERMAN, ENGLISH))) >= MIN_CHARS
    mixed = identify([FRENCH, ENGLISH, GERMAN, None], langs, "eng")
    assert mixed.reread == {"eng+fra": [0], "deu+eng": [2]} and not mixed.whole
    assert mixed.fields(second=True)["pageLanguages"] == {"1": "fra", "2": "eng", "3": "deu"}
    # A candidate outside the list is never chosen: German text among eng and fra only is not re-read as German.
    assert "deu+eng" not in identify([GERMAN], ["eng", "fra"], "eng").reread


def test_non_latin_pages_pick_the_candidates_of_their_script() -> None:
    assert parse_script("Orientation in degrees: 0\nScript: Cyrillic\nScript confidence: 4.25\n") == ("Cyrillic", 4.25)
    assert languages_of_script("Cyrillic", ["eng", "rus", "ukr", "ell"]) == ["rus", "ukr"]
    plan = identify(["Bce6 npnBeT"], ["eng", "rus", "ukr"], "eng", {0: ("Cyrillic", 4.0)})
    assert plan.reread == {"eng+rus+ukr": [0]}
    assert identify(["Bce6 npnBeT"], ["eng", "rus"], "eng", {0: ("Cyrillic", 0.2)}).reread == {}  # unsure


def test_sidecar_pages_keep_each_pages_text_and_drop_skipped_ones(tmp_path: Path) -> None:
    sidecar = tmp_path / "s.txt"
    sidecar.write_text("one\n\f[OCR skipped on page 2]\n\fthree\n\f")
    assert sidecar_pages(sidecar, 3) == ["one\n", None, "three\n"]
    assert sidecar_pages(sidecar, 2) == [None, None]  # not this document's pages
    assert sidecar_pages(tmp_path / "missing.txt", 2) == [None, None]


# ----- through the pipeline ------------------------------------------------------------------------------------


def test_english_page_runs_one_ocr_call(data_dir: Path, tool_log: Path, make_settings: Callable[..., Settings],
                                        scheduler_for: Callable[..., Any]) -> None:
    jobs = run(data_dir, make_settings, scheduler_for, {"en.pdf": lang_pdf("eng")})
    assert [c["lang"] for c in ocr_calls(tool_log)] == ["eng"]
    job = jobs["en.pdf"]
    assert (job["state"], job["languages"], job["secondReading"], job["ocrLang"]) == ("DONE", ["eng"], False, "eng")
    assert job["languageProbability"] > 0.95


def test_french_page_is_read_again_in_french(data_dir: Path, tool_log: Path, make_settings: Callable[..., Settings],
                                             scheduler_for: Callable[..., Any]) -> None:
    jobs = run(data_dir, make_settings, scheduler_for, {"fr.pdf": lang_pdf("fra", "-")})
    assert [c["lang"] for c in ocr_calls(tool_log)] == ["eng", "eng+fra"]
    job = jobs["fr.pdf"]
    assert (job["languages"], job["secondReading"], job["ocrLang"]) == (["fra"], True, "eng+fra")


def test_twenty_characters_are_not_read_again(data_dir: Path, tool_log: Path,
                                              make_settings: Callable[..., Settings],
                                              scheduler_for: Callable[..., Any]) -> None:
    jobs = run(data_dir, make_settings, scheduler_for, {"stamp.pdf": lang_pdf("fra:20")})
    assert [c["lang"] for c in ocr_calls(tool_log)] == ["eng"]
    assert (jobs["stamp.pdf"]["languages"], jobs["stamp.pdf"]["secondReading"]) == ([], False)


def test_pages_in_other_languages_are_read_again_apart(data_dir: Path, tool_log: Path,
                                                       make_settings: Callable[..., Settings],
                                                       scheduler_for: Callable[..., Any]) -> None:
    jobs = run(data_dir, make_settings, scheduler_for, {"mixed.pdf": lang_pdf("fra", "eng", "deu")})
    calls = ocr_calls(tool_log)
    assert sorted(c["lang"] for c in calls) == ["deu+eng", "eng", "eng+fra"]
    assert all(Path(c["input"]).name.startswith("range-reread-") for c in calls if c["lang"] != "eng")
    job = jobs["mixed.pdf"]
    assert job["pageLanguages"] == {"1": "fra", "2": "eng", "3": "deu"}
    assert job["languages"] == ["deu", "eng", "fra"] and job["secondReading"]
    with pikepdf.open(data_dir / "out" / "mixed.pdf") as pdf:
        assert len(pdf.pages) == 3


def test_batch_members_in_other_languages_are_redone_alone(data_dir: Path, tool_log: Path,
                                                           make_settings: Callable[..., Settings],
                                                           scheduler_for: Callable[..., Any]) -> None:
    # Three documents ready together (as a restart finds them): one batch.
    settings = make_settings(**AUTO, OCR_CONCURRENCY="1")
    for name, lang in (("en", "eng"), ("fr", "fra"), ("de", "deu")):
        job_ready_for_ocr(settings.work_dir, name, lang_pdf(lang))
    drive(scheduler_for(settings), timeout=120)
    jobs = {entry["source"]: entry for entry in finished_jobs(data_dir)}
    calls = ocr_calls(tool_log)
    assert [c["lang"] for c in calls][0] == "eng" and Path(calls[0]["input"]).parent.name.startswith(".batch-")
    assert sorted(c["lang"] for c in calls[1:]) == ["deu+eng", "eng+fra"]  # one reading each, no first pass again
    assert jobs["en.pdf"]["secondReading"] is False and jobs["en.pdf"]["batchSize"] == 3
    for name, lang in (("fr.pdf", "fra"), ("de.pdf", "deu")):
        assert (jobs[name]["languages"], jobs[name]["secondReading"], jobs[name]["readAlone"]) == ([lang], True, True)
        assert jobs[name]["state"] == "DONE" and jobs[name]["batchSize"] == 1


def test_cyrillic_page_is_read_in_the_candidates_of_its_script(data_dir: Path, tool_log: Path,
                                                               make_settings: Callable[..., Settings],
                                                               scheduler_for: Callable[..., Any]) -> None:
    # The fake Tesseract names Cyrillic on every page; the English reading of such a page is junk.
    jobs = run(data_dir, make_settings, scheduler_for, {"ru.pdf": lang_pdf("eng")}, OCR_LANG_CANDIDATES="eng+rus",
               FAKE_OSD_SCRIPT="Cyrillic")
    assert [c["lang"] for c in ocr_calls(tool_log)] == ["eng", "eng+rus"]
    assert jobs["ru.pdf"]["languages"] == ["rus"] and jobs["ru.pdf"]["secondReading"]


@pytest.mark.parametrize(("pages", "calls"), [
    # All French: both ranges read first in English, then both again in French and English.
    (("fra",) * 8, ["eng", "eng", "eng+fra", "eng+fra"]),
    # French on page 2 only: the ranges in English, then that page alone.
    (("eng", "fra") + ("eng",) * 6, ["eng", "eng", "eng+fra"]),
])
def test_split_document_is_read_in_its_language(pages: tuple[str, ...], calls: list[str], data_dir: Path,
                                                tool_log: Path, make_settings: Callable[..., Settings],
                                                scheduler_for: Callable[..., Any]) -> None:
    settings = dataclasses.replace(make_settings(**AUTO, OCR_CONCURRENCY="2", OCR_SPLIT_MIN_PAGES="8",
                                                 OCR_SPLIT_PARTS="2"), cpu_count=2)
    job_dir = job_ready_for_ocr(settings.work_dir, "long", lang_pdf(*pages))
    update_state(job_dir, lambda record: record.update(pages=len(pages)))  # which decides the split
    drive(scheduler_for(settings), timeout=120)
    [done] = finished_jobs(data_dir)
    assert done["state"] == "DONE"
    made = ocr_calls(tool_log)
    assert [c["lang"] for c in made] == calls and all(Path(c["input"]).name.startswith("range-") for c in made)
    assert done["secondReading"] and "fra" in done["languages"]


def test_status_page_shows_each_documents_language_and_second_reading() -> None:
    from ocrpipe.web.statuspage import _languages_table

    html = _languages_table([
        {"jobKey": "k1", "source": "lettre.pdf", "languages": ["fra"], "languageProbability": 0.9987,
         "secondReading": True, "ocrLang": "eng+fra"},
        {"jobKey": "k2", "source": "<stamp>.pdf", "languages": [], "languageProbability": 0.0, "secondReading": False},
    ])
    assert "<td>fra</td><td>1.00</td><td>yes: eng+fra</td>" in html
    assert "&lt;stamp&gt;.pdf" in html and "unknown (too little text)</td><td></td><td>no</td>" in html
