"""Opt-in: ``ocrpipe run --once`` over the real scans of a corpus folder (``OCRPIPE_CORPUS=DIR``).

Collected only when ``OCRPIPE_CORPUS`` names a folder with a MANIFEST.tsv (for example ``../shared/corpus``);
otherwise deselected, so the README's test command neither needs the corpus nor skips anything.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from test_integration import Run, drop, page_count, page_texts, pdfa_status, run_ocrpipe

pytestmark = [pytest.mark.integration, pytest.mark.corpus]

# Scans with a ground-truth file beside them, and words of it OCR must find.
GROUND_TRUTH = {"tesseract/phototest.tif": ("quick", "brown", "jumped"),
                "tesseract/eurotext.tif": ("goose", "spam", "lazy"),
                "ocrmypdf/linn.png": ("midi", "track", "sequence"),
                "ocrmypdf/linn.pdf": ("midi", "track", "sequence")}
MAX_PAGES = 6  # the manifest's small scans: the run stays within a few minutes


def dropped_as(name: str) -> str:
    """linn.png and linn.pdf would both give linn.pdf: the suffix goes into the name."""
    path = Path(name)
    return (path.parent / f"{path.stem}_{path.suffix[1:]}{path.suffix}").as_posix()


def output_of(run: Run, name: str) -> Path:
    return run.data / "out" / Path(dropped_as(name)).with_suffix(".pdf")


def corpus_scans(corpus: Path) -> dict[str, int]:
    """Manifest name -> pages of every small scan in the corpus."""
    with open(corpus / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {row["file"]: int(row["pages"]) for row in rows
            if row["kind"] == "scan" and row["pages"].isdigit() and int(row["pages"]) <= MAX_PAGES
            and (corpus / row["file"]).stat().st_size < 2 * 2**20 and "2400dpi" not in row["file"]}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Run, dict[str, int]]:
    root = tmp_path_factory.mktemp("corpus")
    scans = corpus_scans(corpus)
    dropped: dict[str, str] = {}
    for name in scans:
        drop(corpus / name, root / "data" / "in", dropped_as(name), dropped)
    return run_ocrpipe(root, root / "data", timeout=900, dropped=dropped), scans


def test_corpus_scans_all_become_pdfa(corpus_run: tuple[Run, dict[str, int]]) -> None:
    run, scans = corpus_run
    assert run.returncode == 0, run.log_tail()
    for name, pages in scans.items():
        out = output_of(run, name)
        assert out.is_file(), f"{out} missing\n{run.log_tail()}"
        assert page_count(out) == pages, name
        assert pdfa_status(out).startswith("2"), name


@pytest.mark.parametrize("name", GROUND_TRUTH)
def test_corpus_text_is_found(corpus_run: tuple[Run, dict[str, int]], name: str) -> None:
    run, scans = corpus_run
    if name not in scans:
        pytest.fail(f"{name} is not among the corpus's small scans: {sorted(scans)}")
    text = " ".join(" ".join(page_texts(output_of(run, name))).split())
    missing = [word for word in GROUND_TRUTH[name] if word not in text]
    assert not missing, f"{missing} not found in {name}: {text[:800]}"
