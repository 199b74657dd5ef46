"""With the real tools: each document's output has the images, page geometry and metadata keys
that ocrmypdf alone gives it with the same options, whatever it was batched with."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import pikepdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fidelity_inputs as gen
from conftest import TEST_PROFILE, finished_jobs, made_job_key
from ocrpipe.config import Settings, load_settings
from ocrpipe.folders.layout import short_name
from ocrpipe.model import normalise_languages
from ocrpipe.engine.pools import process_pool_factory
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.stages.batch import run_ocr_batch
from ocrpipe.stages.fidelity import ImageSig, page_images
from ocrpipe.stages.prep import run_prep
from ocrpipe.folders.store import new_state_record, read_state, write_new_state
from ocrpipe.tools.ocrmypdf import build_argv

pytestmark = pytest.mark.integration

BATCHED_KINDS = ("png", "ccitt", "bilevel", "palette", "16bit", "userunit", "rotate")
_ALONE: dict[str, dict[str, Any]] = {}  # ocrmypdf alone, per kind: computed once per session


def real_settings(data_dir: Path, **extra: str) -> Settings:
    return load_settings({"DATA_DIR": str(data_dir), "OCR_LANG": "eng", "PATH": os.environ["PATH"],
                          "OCR_CONCURRENCY": "1", "OCR_BATCH_MAX_PAGES": "20", **extra})


def describe(path: Path) -> dict[str, Any]:
    """What must not depend on batch mates; timestamps and IDs may differ in value, not in presence."""
    with pikepdf.open(path) as pdf:
        meta = pdf.open_metadata()
        return {
            "images": page_images(pdf),
            "geometry": [{key: repr(page.obj.get(key)) for key in ("/MediaBox", "/CropBox", "/UserUnit", "/Rotate")}
                         for page in pdf.pages],
            "docinfo": sorted(pdf.docinfo.keys()), "xmp": sorted(meta.keys()), "pdfa": meta.pdfa_status,
        }


def kind_bytes(kind: str) -> bytes:
    return gen.titled(gen.KINDS[kind](kind), f"{kind} document") if kind in ("png", "jpx", "ccitt") else \
        gen.KINDS[kind](kind)


def alone(kind: str, settings: Settings) -> dict[str, Any]:
    """ocrmypdf alone on the document, with the options ocrpipe gives it."""
    if kind not in _ALONE:
        folder = Path(tempfile.mkdtemp(prefix="ocrpipe-alone-"))
        source, output = folder / f"{kind}.pdf", folder / "out.pdf"
        source.write_bytes(kind_bytes(kind))
        argv = build_argv(settings.ocrmypdf, source, output, lang=normalise_languages(settings.ocr_lang), jobs=1,
                          extra_args=settings.ocr_args, pdfa=settings.pdfa)
        subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL,
                       env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        _ALONE[kind] = describe(output)
        shutil.rmtree(folder)
    return _ALONE[kind]


def prepared(settings: Settings, name: str, data: bytes) -> Path:
    """A job through the real PREP stage (in this process), left in PREP_DONE as a restart finds it."""
    key = made_job_key(name)
    job_dir = settings.work_dir / short_name(key)
    file_hash, _, profile_hash = key.partition("__")
    record = new_state_record(job_key=key, run_id="run", file_hash=file_hash, profile_hash=profile_hash,
                              source_name=f"{name}.pdf", source_relpath=f"{name}.pdf", size=len(data))
    write_new_state(job_dir, record)
    (job_dir / "input").mkdir()
    (job_dir / record["input"]).write_bytes(data)
    outcome = run_prep(settings, job_dir, attempts={"PREP": 1, "OCR": 0})
    assert outcome.ok, outcome.reason
    return job_dir


def run_all(settings: Settings) -> dict[str, dict[str, Any]]:
    """Everything in work/ OCRed by the scheduler with real pools; the index entries by source name."""
    scheduler = Scheduler(settings, profile=TEST_PROFILE, executor_factory=process_pool_factory(None, "WARNING"))
    try:
        import time

        scheduler.tick(time.monotonic())
        deadline = time.monotonic() + 600
        while not scheduler.idle():
            assert time.monotonic() < deadline, "scheduler did not finish"
            scheduler.wait(0.2)
            scheduler.tick(time.monotonic())
    finally:
        scheduler.close(wait=True)
    return {entry["source"]: entry for entry in finished_jobs(settings.data_dir)}


def test_every_kind_of_page_keeps_images_geometry_and_metadata_keys_in_a_batch(tmp_path: Path) -> None:
    settings = real_settings(tmp_path / "data")
    for kind in BATCHED_KINDS:
        prepared(settings, kind, kind_bytes(kind))
    done = run_all(settings)
    assert {name: (e["state"], e["batchSize"]) for name, e in done.items()} == {
        f"{kind}.pdf": ("DONE", len(BATCHED_KINDS)) for kind in BATCHED_KINDS}
    for kind in BATCHED_KINDS:
        assert describe(settings.out_dir / f"{kind}.pdf") == alone(kind, settings), kind
    with pikepdf.open(settings.out_dir / "userunit.pdf") as pdf:
        assert pdf.pages[0].obj.UserUnit == 10
    with pikepdf.open(settings.out_dir / "rotate.pdf") as pdf:
        assert pdf.pages[0].obj.Rotate == 90
    with pikepdf.open(settings.out_dir / "ccitt.pdf") as pdf:
        assert page_images(pdf) == [[ImageSig(("/CCITTFaxDecode",), 600, 300, 1, "/DeviceGray")]]
        assert str(pdf.docinfo["/Title"]) == "ccitt document"


def test_a_png_page_dropped_with_a_jpeg_2000_page_stays_lossless(tmp_path: Path) -> None:
    settings = real_settings(tmp_path / "data")
    for name, kind in (("png", "png"), ("png2", "png"), ("jpx", "jpx")):
        prepared(settings, name, kind_bytes(kind))
    done = run_all(settings)
    assert {name: (e["state"], e["batchSize"]) for name, e in done.items()} == {
        "png.pdf": ("DONE", 2), "png2.pdf": ("DONE", 2), "jpx.pdf": ("DONE", 1)}
    for name in ("png", "png2"):
        with pikepdf.open(settings.out_dir / f"{name}.pdf") as pdf:
            assert page_images(pdf) == [[ImageSig(("/FlateDecode",), 600, 300, 8, "/DeviceGray")]]
        assert describe(settings.out_dir / f"{name}.pdf") == alone("png", settings)
        assert done[f"{name}.pdf"]["imagesReencoded"] is False
    assert describe(settings.out_dir / "jpx.pdf") == alone("jpx", settings)
    # Alone, ocrmypdf needs Ghostscript for it: the index says so, and why.
    assert done["jpx.pdf"]["imagesReencoded"] is True
    assert "JPEG 2000 images are not supported" in done["jpx.pdf"]["reencodeReason"]


def test_a_batch_forced_to_hold_a_jpeg_2000_page_is_caught_and_each_member_redone_alone(tmp_path: Path) -> None:
    settings = real_settings(tmp_path / "data")
    members = [(prepared(settings, name, kind_bytes(name)), 1, {"PREP": 1, "OCR": 1}) for name in ("png", "jpx")]
    outcomes = run_ocr_batch(settings, settings.work_dir / ".batch-forced", members, jobs=2)
    assert [(o.ok, o.batch_failure, o.transient) for o in outcomes] == [(False, True, True)] * 2
    assert all("made its PDF/A with Ghostscript" in o.reason for o in outcomes)
    for job_dir, _, _ in members:
        assert not (job_dir / "final.pdf").exists() and read_state(job_dir)["state"] == "OCR_ERROR"


def test_pdfa_lossless_writes_a_regular_pdf_rather_than_re_encode(tmp_path: Path) -> None:
    settings = real_settings(tmp_path / "data", PDFA="lossless")
    prepared(settings, "jpx", kind_bytes("jpx"))
    done = run_all(settings)["jpx.pdf"]
    assert (done["state"], done["pdfa"], done["imagesReencoded"]) == ("DONE", None, False)
    assert done["pdfaSkippedReason"].startswith("a regular PDF, since only Ghostscript could make PDF/A")
    with pikepdf.open(settings.out_dir / "jpx.pdf") as pdf:
        assert page_images(pdf) == [[ImageSig(("/JPXDecode",), 600, 300, 8, "/DeviceRGB")]]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(("png", "jpeg", "jpx", "ccitt", "palette", "16bit", "userunit")), min_size=2,
                      max_size=4))
def test_same_image_encodings_alone_and_in_any_group(kinds: list[str]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ocrpipe-group-"))
    try:
        settings = real_settings(folder / "data")
        for n, kind in enumerate(kinds):
            prepared(settings, f"{n}-{kind}", kind_bytes(kind))
        done = run_all(settings)
        assert {e["state"] for e in done.values()} == {"DONE"}
        for n, kind in enumerate(kinds):
            got = describe(settings.out_dir / f"{n}-{kind}.pdf")
            assert got == alone(kind, settings), (kinds, kind)
    finally:
        shutil.rmtree(folder)
