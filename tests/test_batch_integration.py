"""An OCR batch with the real tools: one ocrmypdf call, split into valid PDF/A files per document."""

from __future__ import annotations

import json
from pathlib import Path

import pikepdf
import pytest
from pdfminer.high_level import extract_text
from pikepdf.pdfa import validate_written

import inputs
from conftest import job_ready_for_ocr
from inputs import InputSet
from ocrpipe.config import load_settings
from ocrpipe.stages.batch import run_ocr_batch
from ocrpipe.folders.store import read_state

pytestmark = pytest.mark.integration

# Documents PREP lets share a call (a born-digital page with a font not embedded is not one: only
# Ghostscript could make it PDF/A, so it is OCRed alone).
MEMBERS = [("midi.pdf", 1, ["sequencer", "midi"]),
           ("fox.pdf", 1, ["quick", "brown"]),
           ("three-pages.pdf", 3, ["page 1", "page 3"])]


def test_batch_output_is_split_into_valid_pdfa_with_each_documents_pages_text_and_title(
        tmp_path: Path, made_inputs: InputSet) -> None:
    titled = inputs.with_title(made_inputs[MEMBERS[0][0]], tmp_path / "titled.pdf", "Sequencer manual")
    sources = [titled, made_inputs[MEMBERS[1][0]], made_inputs[MEMBERS[2][0]]]
    settings = load_settings({"DATA_DIR": str(tmp_path / "data"), "OCR_LANG": "eng",
                              "PATH": "/usr/local/bin:/usr/bin:/bin"})
    members = [(job_ready_for_ocr(settings.work_dir, f"doc{n}", src.read_bytes()), pages, {"PREP": 1, "OCR": 1})
               for n, (src, (_, pages, _)) in enumerate(zip(sources, MEMBERS))]

    outcomes = run_ocr_batch(settings, settings.work_dir / ".batch-test", members, jobs=2)

    assert [o.ok for o in outcomes] == [True, True, True], [o.reason for o in outcomes]
    assert not (settings.work_dir / ".batch-test").exists()
    for n, ((job_dir, pages, _), (_, _, words), outcome) in enumerate(zip(members, MEMBERS, outcomes)):
        final = settings.out_dir / f"doc{n}.pdf"
        assert (outcome.fields["pdfa"], outcome.fields["batchSize"]) == ("2B", 3)
        record = read_state(job_dir)
        assert record["state"] == "DONE" and record["output"] == str(final) == outcome.fields["record"]["output"]
        assert (settings.archive_dir / f"doc{n}.pdf").is_file()
        # The heartbeat stays until the scheduler has the outcome: it names the worker until then; pages.json
        # holds what the scheduler stores in the job index: each of this document's pages, its text and reading.
        assert sorted(p.name for p in job_dir.iterdir()) == ["ocr.heartbeat", "pages.json", "state.json",
                                                            "state.json.lock"]
        assert validate_written(final, "2b").passed
        with pikepdf.open(final) as pdf:
            assert len(pdf.pages) == pages
        text = " ".join(extract_text(str(final)).lower().split())  # OCR spacing varies
        assert all(word in text for word in words), text[:300]
        read = json.loads((job_dir / "pages.json").read_text(encoding="utf-8"))
        assert len(read["texts"]) == pages and len(read["readings"]) == pages
        assert all(word in " ".join(" ".join(read["texts"]).lower().split()) for word in words)
        assert all(r is not None and r["confidence"] > 80 for r in read["readings"]), read["readings"]
    with pikepdf.open(settings.out_dir / "doc0.pdf") as pdf:
        assert str(pdf.docinfo["/Title"]) == "Sequencer manual"
        assert pdf.open_metadata()["dc:title"] == "Sequencer manual"
