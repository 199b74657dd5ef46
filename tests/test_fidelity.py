"""A document's output never depends on its batch mates: image signatures, PREP's prediction of
Ghostscript, the planner that keeps those documents apart, and the check after a batch's split
(with fake tools that re-encode, or claim Ghostscript, only when given a batch)."""

from __future__ import annotations

import io
import logging
from functools import cache
from pathlib import Path
from typing import Any, Callable

import pikepdf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fidelity_inputs as gen
from conftest import drive, finished_jobs, job_ready_for_ocr
from ocrpipe.engine.batching import plan_ocr_units
from ocrpipe.config import Settings
from ocrpipe.errors import Code, ConfigError, PermanentError
from ocrpipe.config import load_settings
from ocrpipe.stages.fidelity import ImageSig, batch_group, ghostscript_reason, image_changes, page_images
from ocrpipe.stages.pdfa import run_fields
from ocrpipe.folders.store import update_state
from ocrpipe.tools.ocrmypdf import build_argv, profile_args

LOSSLESS_KINDS = ("png", "rgb", "ccitt", "bilevel", "palette", "16bit", "userunit", "rotate")


def images_of(pdf_bytes: bytes) -> list[list[ImageSig]]:
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        return page_images(pdf)


def test_page_images_name_codec_size_bits_and_colour_of_each_kind() -> None:
    assert images_of(gen.png_page()) == [[ImageSig(("/FlateDecode",), 600, 300, 8, "/DeviceGray")]]
    assert images_of(gen.jpx_page()) == [[ImageSig(("/JPXDecode",), 600, 300, 8, "/DeviceRGB")]]
    assert images_of(gen.ccitt_page()) == [[ImageSig(("/CCITTFaxDecode",), 600, 300, 1, "/DeviceGray")]]
    assert images_of(gen.bilevel_page()) == [[ImageSig(("/FlateDecode",), 600, 300, 1, "/DeviceGray")]]
    assert images_of(gen.palette_page()) == [[ImageSig(("/FlateDecode",), 600, 300, 4, "/Indexed")]]
    assert images_of(gen.sixteen_bit_page()) == [[ImageSig(("/FlateDecode",), 600, 300, 16, "/DeviceGray")]]


def test_image_changes_ignore_the_optimizers_lossless_wrapping_but_not_a_new_codec() -> None:
    jpeg = [[ImageSig(("/DCTDecode",), 10, 10, 8, "/DeviceRGB")]]
    wrapped = [[ImageSig(("/FlateDecode", "/DCTDecode"), 10, 10, 8, "/DeviceRGB")]]
    flate = [[ImageSig(("/FlateDecode",), 10, 10, 8, "/DeviceRGB")]]
    assert image_changes(jpeg, wrapped) is None and image_changes(flate, flate) is None
    assert image_changes(flate, wrapped) == (
        "page 1: /FlateDecode 10x10 8-bit /DeviceRGB became /FlateDecode+/DCTDecode 10x10 8-bit /DeviceRGB")
    assert image_changes(flate, [[]]) == "page 1: /FlateDecode 10x10 8-bit /DeviceRGB became nothing"
    assert image_changes(flate, flate + flate) == "2 pages instead of 1"


@cache
def reason_for(kind: str, tmp: Path) -> str | None:
    path = tmp / f"{kind}.pdf"
    path.write_bytes(gen.KINDS[kind](kind))
    return ghostscript_reason(path)


def test_prep_predicts_ghostscript_for_jpeg_2000_and_cmyk_only(tmp_path: Path) -> None:
    assert {kind: reason_for(kind, tmp_path) for kind in LOSSLESS_KINDS} == dict.fromkeys(LOSSLESS_KINDS)
    assert reason_for("jpx", tmp_path) == "JPEG 2000 images are not supported"
    cmyk = tmp_path / "cmyk.pdf"
    cmyk.write_bytes(gen.cmyk_jpeg_page())
    assert "DeviceCMYK" in (ghostscript_reason(cmyk) or "")


class Doc:
    """As the scheduler sees a job after PREP: solo from ghostscriptReason, its batchGroup."""

    def __init__(self, kind: str, pages: int, tmp: Path) -> None:
        self.kind, self.pages = kind, pages
        self.needs_ghostscript = reason_for(kind, tmp) is not None
        self.batch_group = group_of(kind, tmp)

    @property
    def solo(self) -> bool:
        return self.needs_ghostscript


@cache
def group_of(kind: str, tmp: Path) -> str | None:
    reason_for(kind, tmp)  # writes the file
    return batch_group(tmp / f"{kind}.pdf")


def test_prep_groups_documents_with_jpegs_the_optimizer_deflates(tmp_path: Path) -> None:
    assert {kind: group_of(kind, tmp_path) for kind in gen.KINDS} == {
        kind: "deflatable JPEG" if kind == "jpeg" else None for kind in gen.KINDS}


@pytest.fixture(scope="session")
def kinds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated file per kind, for the property below (a session fixture: hypothesis reruns the test)."""
    return tmp_path_factory.mktemp("kinds")


@settings(max_examples=300, deadline=None)
@given(kinds=st.lists(st.tuples(st.sampled_from(sorted(gen.KINDS)), st.integers(1, 6)), max_size=25),
       free_slots=st.integers(1, 4), cap=st.integers(1, 20))
def test_planner_never_puts_a_ghostscript_document_in_a_batch_nor_mixes_groups(
        kinds_dir: Path, kinds: list[tuple[str, int]], free_slots: int, cap: int) -> None:
    docs = [Doc(kind, pages, kinds_dir) for kind, pages in kinds]
    units = plan_ocr_units(docs, free_slots=free_slots, max_batch_pages=cap)
    planned = [doc for unit in units for doc in unit]
    assert len(planned) == len({id(doc) for doc in planned}) and len(units) <= free_slots
    for unit in units:
        if len(unit) > 1:
            assert not any(doc.needs_ghostscript for doc in unit)
            assert len({doc.batch_group for doc in unit}) == 1
            assert sum(doc.pages for doc in unit) <= cap


def marked(pdf_bytes: bytes, scenario: str) -> bytes:
    """The page with the fake tools' scenario written in clear into an extra content stream."""
    with pikepdf.open(io.BytesIO(pdf_bytes)) as pdf:
        pdf.pages[0].contents_add(pdf.make_stream(f"% FAKE-SCENARIO:{scenario}\n".encode()))
        buffer = io.BytesIO()
        pdf.save(buffer, compress_streams=False)
        return buffer.getvalue()


def finished(settings: Settings) -> dict[str, dict[str, Any]]:
    return {entry["source"]: entry for entry in finished_jobs(settings.data_dir)}


def retry_lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ocrpipe.lifecycle" and words in r.getMessage()]


def test_a_part_whose_images_a_batch_changed_is_redone_alone_for_free(
        tool_log: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(OCR_CONCURRENCY="1", OCR_BATCH_MAX_PAGES="10", MAX_ATTEMPTS_OCR="1")
    job_ready_for_ocr(settings.work_dir, "scan", marked(gen.png_page(), "reencode-batch"))
    job_ready_for_ocr(settings.work_dir, "blank", marked(gen.png_page(), "plain"))
    with pikepdf.open(io.BytesIO(marked(gen.png_page(), "x"))) as pdf:  # a mate without images
        del pdf.pages[0].Resources["/XObject"]
        buffer = io.BytesIO()
        pdf.save(buffer)
    job_ready_for_ocr(settings.work_dir, "text", buffer.getvalue())
    caplog.set_level(logging.INFO, logger="ocrpipe")

    drive(scheduler_for(settings))

    done = finished(settings)
    # The fake re-encodes every image of the batch: both scans are redone alone, the imageless page is not.
    assert {name: (e["state"], e["batchSize"], e["attempts"]["OCR"]) for name, e in done.items()} == {
        "scan.pdf": ("DONE", 1, 2), "blank.pdf": ("DONE", 1, 2), "text.pdf": ("DONE", 3, 1)}
    assert {e["imagesReencoded"] for e in done.values()} == {False}
    lines = retry_lines(caplog, "images changed in a batch")
    assert len(lines) == 2 and all("/FlateDecode 600x300 8-bit /DeviceGray became /DCTDecode" in line
                                   for line in lines)
    with pikepdf.open(settings.out_dir / "scan.pdf") as pdf:
        assert page_images(pdf) == [[ImageSig(("/FlateDecode",), 600, 300, 8, "/DeviceGray")]]


def test_a_batch_that_went_through_ghostscript_is_redone_one_document_at_a_time(
        tool_log: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(OCR_CONCURRENCY="1", OCR_BATCH_MAX_PAGES="10", MAX_ATTEMPTS_OCR="1")
    for n in range(3):  # PREP's prediction missed one (no ghostscriptReason): the log tells
        job_ready_for_ocr(settings.work_dir, f"d{n}", marked(gen.png_page(), "ghostscript-batch" if n else "plain"))
    caplog.set_level(logging.INFO, logger="ocrpipe")

    drive(scheduler_for(settings))

    done = finished(settings)
    assert {name: (e["state"], e["batchSize"]) for name, e in done.items()} == {
        f"d{n}.pdf": ("DONE", 1) for n in range(3)}
    assert len(retry_lines(caplog, "made its PDF/A with Ghostscript")) == 3


def test_a_jpeg_left_undeflated_by_a_batch_the_optimizer_gave_up_on_is_redone_alone(
        tool_log: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Any],
        caplog: pytest.LogCaptureFixture) -> None:
    # ocrmypdf keeps its optimizer's work only if the whole file shrank: alone, a JPEG is deflated.
    settings = make_settings(OCR_CONCURRENCY="1", OCR_BATCH_MAX_PAGES="10", MAX_ATTEMPTS_OCR="1")
    job_ready_for_ocr(settings.work_dir, "photo", marked(gen.jpeg_page(), "unoptimised-batch"))
    job_ready_for_ocr(settings.work_dir, "scan", marked(gen.png_page(), "plain"))
    caplog.set_level(logging.INFO, logger="ocrpipe")

    drive(scheduler_for(settings))

    assert {name: (e["state"], e["batchSize"]) for name, e in finished(settings).items()} == {
        "photo.pdf": ("DONE", 1), "scan.pdf": ("DONE", 2)}
    assert len(retry_lines(caplog, "so its JPEGs were not deflated as they are alone")) == 1


def test_prep_s_prediction_and_group_keep_documents_apart_also_after_a_restart(
        tool_log: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Any]) -> None:
    settings = make_settings(OCR_CONCURRENCY="1", OCR_BATCH_MAX_PAGES="20")
    for n in range(6):  # ready together, as a restart finds them
        job_dir = job_ready_for_ocr(settings.work_dir, f"d{n}", marked(gen.png_page(), f"doc{n}"))
        if n == 2:
            update_state(job_dir, lambda record: record.update(ghostscriptReason="JPEG 2000 images are not supported"))
        if n >= 4:
            update_state(job_dir, lambda record: record.update(batchGroup="deflatable JPEG"))
    drive(scheduler_for(settings))
    assert {k: v["batchSize"] for k, v in finished(settings).items()} == {
        "d0.pdf": 3, "d1.pdf": 3, "d2.pdf": 1, "d3.pdf": 3, "d4.pdf": 2, "d5.pdf": 2}


def test_prep_records_its_prediction_and_the_jpeg_2000_scan_goes_alone(
        data_dir: Path, tool_log: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    for kind in ("png", "jpx", "ccitt", "palette"):
        (inbox / f"{kind}.pdf").write_bytes(marked(gen.KINDS[kind](kind), kind))
    settings = make_settings(PREP_CONCURRENCY="4", OCR_CONCURRENCY="1", FAKE_OCR_DELAY="0.5")
    caplog.set_level(logging.INFO, logger="ocrpipe")
    drive(scheduler_for(settings))
    done = finished(settings)
    assert done["jpx.pdf"]["batchSize"] == 1 and max(e["batchSize"] for e in done.values()) > 1
    assert any("OCRed alone, since its PDF/A needs Ghostscript (JPEG 2000 images are not supported)"
               in r.getMessage() for r in caplog.records)


def write_log(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ocr.log"
    path.write_text(text)
    return path


def test_the_run_records_ghostscript_and_pdfa_choices(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw.pdf", tmp_path / "out.pdf"
    raw.write_bytes(gen.png_page())
    out.write_bytes(gen.png_page())
    quiet, via_gs = write_log(tmp_path, "Output file is a PDF/A-2b\n"), tmp_path / "gs.log"
    via_gs.write_text("Auto mode: produced PDF/A via Ghostscript\n")
    common = dict(raw=raw, output=out, predicted="JPEG 2000 images are not supported")
    assert run_fields(pdfa_setting="auto", pdfa="2B", tool_log=quiet, **common) == {
        "imagesReencoded": False, "reencodeReason": None, "pdfaSkippedReason": None}
    fields = run_fields(pdfa_setting="auto", pdfa="2B", tool_log=via_gs, **common)
    assert fields["imagesReencoded"] is True
    assert fields["reencodeReason"] == ("PDF/A made by Ghostscript, which rewrites the images, since "
                                        "JPEG 2000 images are not supported")
    skipped = run_fields(pdfa_setting="lossless", pdfa=None, tool_log=quiet, **common)["pdfaSkippedReason"]
    assert skipped.startswith("a regular PDF, since only Ghostscript could make PDF/A (JPEG 2000")
    with pytest.raises(PermanentError, match="could not be made PDF/A .JPEG 2000.*PDFA=required") as refused:
        run_fields(pdfa_setting="required", pdfa=None, tool_log=quiet, **common)
    assert refused.value.code is Code.PDF_PDFA_FAILED  # the reason code for a PDF/A that could not be made
    out.write_bytes(gen.jpx_page())
    assert run_fields(pdfa_setting="auto", pdfa="2B", tool_log=quiet, **common)["reencodeReason"] == (
        "page 1: /FlateDecode 600x300 8-bit /DeviceGray became /JPXDecode 600x300 8-bit /DeviceRGB")


def test_pdfa_setting_chooses_ocrmypdfs_backend_and_is_part_of_the_profile(tmp_path: Path) -> None:
    assert load_settings({"DATA_DIR": str(tmp_path)}).pdfa == "auto"
    assert load_settings({"DATA_DIR": str(tmp_path), "PDFA": "Lossless"}).pdfa == "lossless"
    with pytest.raises(ConfigError, match="PDFA='NEVER' is not valid: expected one of AUTO, LOSSLESS, REQUIRED"):
        load_settings({"DATA_DIR": str(tmp_path), "PDFA": "never"})
    argv = build_argv(["ocrmypdf"], Path("in.pdf"), Path("out.pdf"), lang="eng", jobs=1, pdfa="lossless")
    assert argv[:6] == ["ocrmypdf", "--output-type", "auto", "--skip-text", "--pdfa-backend", "internal"]
    assert profile_args([]) == ["--output-type", "auto", "--skip-text"]  # old job keys stay valid
    assert len({tuple(profile_args([], choice)) for choice in ("auto", "lossless", "required")}) == 3


def test_an_image_with_damaged_values_is_compared_as_it_is_never_a_crash() -> None:
    with pikepdf.open(io.BytesIO(gen.png_page())) as pdf:
        image = next(iter(pdf.pages[0].Resources.XObject.values()))
        image.Width, image.BitsPerComponent = pikepdf.Name("/Wide"), pikepdf.Array([8])
        assert page_images(pdf) == [[ImageSig(("/FlateDecode",), 0, 300, 0, "/DeviceGray")]]
