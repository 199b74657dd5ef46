"""Search and reading confidence with the real tools: known words on generated scans find their document
and page, and a page blurred past reading flags its document while clean ones do not. (Accents are folded
in test_search.py, on real text: Pillow's built-in font draws no é for Tesseract to read.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageFilter

import inputs
from conftest import TEST_PROFILE, drive
from ocrpipe.config import Settings, load_settings
from ocrpipe.engine.pools import process_pool_factory
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.search import flagged, search

pytestmark = pytest.mark.integration

PAGE_ONE = ("Invoice number 4711", "Livraison rapide")
PAGE_TWO = ("The walrus signed the receipt", "delivery note enclosed")
BLURRED = tuple(inputs.prose(7, 8, width=5))


def hits(settings: Settings, query: str) -> list[tuple[str, int]]:
    with JobIndex(settings.index_dir, readonly=True) as index:
        return [(Path(h.output or "").name, h.page) for h in search(index, query).hits]


@pytest.fixture(scope="module")
def read_for_real(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One run of the real tools over a clean two-page scan, a noisy one and one blurred past reading."""
    root = tmp_path_factory.mktemp("search")
    settings = load_settings({"DATA_DIR": str(root / "data"), "OCR_LANG": "fra+eng", "STABLE_SECONDS": "0",
                              "ORCHESTRATOR_PORT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
    settings.in_dir.mkdir(parents=True)
    inputs.scanned_pdf(settings.in_dir / "facture.pdf", [PAGE_ONE, PAGE_TWO])
    inputs.image_pdf(settings.in_dir / "noisy.pdf", [inputs.save_image(
        inputs.text_page(inputs.FOX, grey=225, noise=0.4, skew=1.0), root / "noisy.png")])
    blurred = inputs.text_page(BLURRED).filter(ImageFilter.GaussianBlur(6))
    inputs.image_pdf(settings.in_dir / "blurred.pdf", [inputs.save_image(blurred, root / "blurred.png")])
    scheduler = Scheduler(settings, profile=TEST_PROFILE, executor_factory=process_pool_factory(None, "WARNING"))
    try:
        drive(scheduler, timeout=300)
    finally:
        scheduler.close(wait=True)
    return settings


def test_known_words_find_their_document_and_page(read_for_real: Settings) -> None:
    assert hits(read_for_real, "4711") == [("facture.pdf", 1)]
    assert hits(read_for_real, "invoice 4711") == [("facture.pdf", 1)]
    assert hits(read_for_real, "livr*") == [("facture.pdf", 1)]
    assert hits(read_for_real, "walrus receipt") == [("facture.pdf", 2)]
    assert hits(read_for_real, '"delivery note"') == [("facture.pdf", 2)]
    assert hits(read_for_real, "fox") == [("noisy.pdf", 1)]


def test_a_page_blurred_past_reading_is_flagged_and_clean_ones_are_not(read_for_real: Settings) -> None:
    with JobIndex(read_for_real.index_dir, readonly=True) as index:
        entries, _ = flagged(index, read_for_real.low_confidence)
        records = {e["source"]: e for e in index}
    assert [e["source"] for e in entries] == ["blurred.pdf"]
    assert records["blurred.pdf"]["lowConfidencePages"] == [1]
    assert records["blurred.pdf"]["confidence"] < read_for_real.low_confidence
    for clean in ("facture.pdf", "noisy.pdf"):
        assert records[clean]["lowConfidence"] is False
        assert records[clean]["confidence"] >= read_for_real.low_confidence
