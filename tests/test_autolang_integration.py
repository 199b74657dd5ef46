"""OCR_LANG=auto with the real tools: pages in French, German and English, ready together as a batch
(as a restart finds them), each read in its own language with its accented words right, its language
recorded; the English one and a page of 20 characters are read once only."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import inputs
import pytest
from conftest import drive, finished_jobs, job_ready_for_ocr
from pdfminer.high_level import extract_text

from ocrpipe.config import load_settings
from ocrpipe.tools.check import tesseract_languages

pytestmark = pytest.mark.integration
LANGS = ("deu", "eng", "fra")
MIN_RECALL = 0.85  # of the accented words; measured: fra 20/22 in eng+fra (reçu, château lost), deu 16/16


def recall(pdf: Path, lang: str) -> float:
    words = set(re.findall(r"\w+", extract_text(str(pdf)).lower()))
    wanted = inputs.accented_words(lang)
    return sum(w in words for w in wanted) / len(wanted)


def test_each_page_is_read_in_its_own_language(tmp_path: Path, scheduler_for: Callable[..., Any]) -> None:
    settings = load_settings({"DATA_DIR": str(tmp_path / "data"), "OCR_LANG": "auto",
                              "OCR_LANG_CANDIDATES": "+".join(LANGS), "ORCHESTRATOR_PORT": "0",
                              "PATH": "/usr/local/bin:/usr/bin:/bin", "OCR_CONCURRENCY": "1"})
    missing = set(LANGS) - (tesseract_languages(settings) or set())
    assert not missing, f"Tesseract lacks {missing}: scripts/test.sh installs them (OCR_LANG=deu)"
    for lang in LANGS:
        pdf = inputs.pages_pdf(tmp_path / f"{lang}.pdf", [inputs.language_page(lang)])
        job_ready_for_ocr(settings.work_dir, lang, pdf.read_bytes())
    stamp = inputs.pages_pdf(tmp_path / "stamp.pdf", [inputs.language_page("fra", lines=["Reçu à Paris, été"])])
    job_ready_for_ocr(settings.work_dir, "stamp", stamp.read_bytes())

    drive(scheduler_for(settings), timeout=300)

    jobs = {entry["source"]: entry for entry in finished_jobs(settings.data_dir)}
    assert {name: job["state"] for name, job in jobs.items()} == dict.fromkeys(
        ("deu.pdf", "eng.pdf", "fra.pdf", "stamp.pdf"), "DONE")
    for lang in LANGS:
        job = jobs[f"{lang}.pdf"]
        assert job["languages"] == [lang] and job["languageProbability"] >= 0.95
        assert job["secondReading"] is (lang != "eng")  # English, the default, is read once: in the batch
        assert job["batchSize"] == (4 if lang == "eng" else 1)  # the batch of all four, or alone
        assert recall(settings.out_dir / f"{lang}.pdf", lang) >= MIN_RECALL, extract_text(
            str(settings.out_dir / f"{lang}.pdf"))
    assert jobs["fra.pdf"]["ocrLang"] == "eng+fra" and jobs["deu.pdf"]["ocrLang"] == "deu+eng"
    assert (jobs["stamp.pdf"]["languages"], jobs["stamp.pdf"]["secondReading"]) == ([], False)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
