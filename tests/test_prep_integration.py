"""PREP with the real 7-Zip: compressed tarballs, archives inside archives, bombs, path traversal, the shared limits."""

from __future__ import annotations

import io
import tarfile
import threading
import time
import zipfile
from typing import Callable
from pathlib import Path

import pikepdf
import psutil
import pytest

import inputs
from conftest import folder_usage, make_pdf
from ocrpipe.config import load_settings
from ocrpipe.stages.prep import run_prep
from ocrpipe.folders.store import new_state_record, read_state, write_new_state

pytestmark = pytest.mark.integration


def prep_job(tmp_path: Path, name: str, content: bytes, **env: str):  # type: ignore[no-untyped-def]
    settings = load_settings({"DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/local/bin:/usr/bin:/bin", **env})
    job_dir = settings.work_dir / f"{name}__p"
    record = new_state_record(job_key=job_dir.name, run_id="r", file_hash=name, profile_hash="p",
                              source_name=name, source_relpath=name, size=len(content))
    write_new_state(job_dir, record)
    (job_dir / "input").mkdir()
    (job_dir / record["input"]).write_bytes(content)
    return run_prep(settings, job_dir, attempts={"PREP": 1, "OCR": 0}), job_dir


def tarball(mode: str, members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_compressed_tarball_is_unpacked_through(tmp_path: Path, mode: str) -> None:
    content = tarball(mode, {"scans/page10.pdf": make_pdf(1), "scans/page2.pdf": make_pdf(2)})
    outcome, job_dir = prep_job(tmp_path, "scans.tar.x", content)
    assert outcome.ok, outcome.reason
    work = outcome.fields.pop("pageWork")  # for the scheduler's split decision: 3 pages, their work
    assert outcome.fields == {"kind": "archive", "pages": 3, "soloReason": None, "ghostscriptReason": None,
                              "batchGroup": None}
    assert 0 < work["heaviest"] <= work["total"]
    with pikepdf.open(job_dir / "raw.pdf") as pdf:
        assert len(pdf.pages) == 3
    assert read_state(job_dir)["state"] == "PREP_DONE"


def test_zip_inside_zip_keeps_its_place_in_page_order(tmp_path: Path) -> None:
    inner = zipped({"b.pdf": make_pdf(2, scenario="inner")})
    content = zipped({"a.pdf": make_pdf(1, scenario="first"), "b.zip": inner, "c.pdf": make_pdf(1, scenario="last")})
    outcome, job_dir = prep_job(tmp_path, "nested.zip", content)
    assert outcome.ok, outcome.reason
    with pikepdf.open(job_dir / "raw.pdf") as pdf:
        marks = [page.Contents.read_bytes() for page in pdf.pages]
    assert [m.split(b"FAKE-SCENARIO:")[1].strip() for m in marks] == [b"first", b"inner", b"inner", b"last"]


def test_limits_count_every_level(tmp_path: Path) -> None:
    inner = zipped({f"p{n}.pdf": make_pdf(1) for n in range(3)})
    content = zipped({"one.pdf": make_pdf(1), "more.zip": inner})
    outcome, _ = prep_job(tmp_path, "nested.zip", content, MAX_ARCHIVE_MEMBERS="3")
    assert not outcome.ok and not outcome.transient and outcome.code == "ARCHIVE_BOMB"
    assert outcome.reason.startswith("archive bomb refused: 3 files, more than the limit of 1"), outcome.reason


def test_zip_bomb_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = inputs.zip_bomb(tmp_path / "bomb.zip", megabytes=16)
    assert bomb.stat().st_size < 2**20  # small packed, big unpacked: what makes it a bomb
    outcome, job_dir = prep_job(tmp_path, "bomb.zip", bomb.read_bytes(), MAX_ARCHIVE_MB="8")
    assert not outcome.ok and not outcome.transient and outcome.code == "ARCHIVE_BOMB"
    assert outcome.reason.startswith("archive bomb refused: it unpacks to 16 MB, more than the limit of 8 MB")
    assert not (job_dir / "prep" / "zeros.pdf").exists()


def test_bomb_inside_a_zip_counts_against_the_same_limit(tmp_path: Path) -> None:
    """5 MB at the top level and 6 MB inside are each under 8 MB, but not together."""
    bomb = inputs.zip_bomb(tmp_path / "bomb.zip", megabytes=6)
    outer = inputs.zip_of(tmp_path / "outer.zip", {"page.pdf": make_pdf(1), "padding.bin": bytes(5 * 2**20),
                                                   "inner.zip": bomb})
    outcome, _ = prep_job(tmp_path, "outer.zip", outer.read_bytes(), MAX_ARCHIVE_MB="8", MAX_ARCHIVE_RATIO="100000")
    assert not outcome.ok and not outcome.transient and outcome.code == "ARCHIVE_BOMB"
    assert outcome.reason.startswith("archive bomb refused: it unpacks to 6 MB, more than the limit of 2 MB"), \
        outcome.reason


def test_tar_slip_is_refused_and_writes_nothing_outside(tmp_path: Path) -> None:
    evil = inputs.tar_slip(tmp_path / "slip.tar", target="escaped.txt", depth=3)
    outcome, _ = prep_job(tmp_path, "slip.tar", evil.read_bytes())
    assert not outcome.ok and not outcome.transient
    assert "points outside the archive" in outcome.reason
    assert list(tmp_path.rglob("escaped.txt")) == []


@pytest.mark.parametrize(("env", "limit_named"), [
    ({"MAX_ARCHIVE_MB": "32", "MAX_ARCHIVE_RATIO": "100000"}, "MAX_ARCHIVE_MB"),
    ({}, "MAX_ARCHIVE_RATIO"),  # 500 kB packed may unpack to 16 MB (the floor), not 512 MB
])
def test_a_bomb_that_lies_is_stopped_while_it_unpacks(tmp_path: Path, env: dict[str, str], limit_named: str) -> None:
    """The .gz declares 1000 bytes and holds 512 MB: the listing passes, the watch on the extraction
    folder stops 7-Zip's tree long before the end, and the folder is emptied."""
    bomb = inputs.lying_gzip(tmp_path / "bomb.gz", megabytes=512)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            work = tmp_path / "data" / "work"
            peak[0] = max(peak[0], folder_usage(work) if work.is_dir() else 0)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        outcome, job_dir = prep_job(tmp_path, "bomb.gz", bomb.read_bytes(), **env)
    finally:
        done.set()
        sampler.join()
    assert not outcome.ok and not outcome.transient and outcome.code == "ARCHIVE_BOMB"
    assert "though the archive declared less" in outcome.reason and limit_named in outcome.reason, outcome.reason
    assert peak[0] < 256 * 2**20, f"the work folder reached {peak[0] / 2**20:.0f} MB"
    assert not (job_dir / "prep").exists()
    assert [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("7z", "7za", "7zz")] == []


def test_archives_nested_beyond_three_levels_are_refused_with_a_reason(tmp_path: Path) -> None:
    three = inputs.nested_zips(tmp_path / "three.zip", 3, make_pdf(1))
    outcome, _ = prep_job(tmp_path / "a", "three.zip", three.read_bytes())
    assert outcome.ok, outcome.reason
    four = inputs.nested_zips(tmp_path / "four.zip", 4, make_pdf(1))
    outcome, _ = prep_job(tmp_path / "b", "four.zip", four.read_bytes())
    assert not outcome.ok and not outcome.transient and outcome.code == "ARCHIVE_NESTED"
    assert "'level2.zip.unpacked/level3.zip.unpacked/level4.zip' is an archive nested more than 3 levels" \
        in outcome.reason, outcome.reason


def test_an_office_document_not_converted_is_refused_once_saying_what_would_take_it(tmp_path: Path) -> None:
    odt = inputs.office_zip(tmp_path / "letter.odt")
    outcome, _ = prep_job(tmp_path, "letter.odt", odt.read_bytes())
    assert not outcome.ok and not outcome.transient and outcome.code == "OFFICE_UNAVAILABLE"
    assert "an Office document (.odt)" in outcome.reason and "OFFICE_INPUT" in outcome.reason


def test_a_file_that_only_looks_like_a_zip_is_damaged_not_retried(tmp_path: Path) -> None:
    outcome, _ = prep_job(tmp_path, "fake.zip", b"PK\x03\x04" + bytes(200))
    assert not outcome.ok and not outcome.transient and outcome.code == "ARCHIVE_DAMAGED", outcome.reason


def test_a_signed_pdf_is_refused_with_its_code_when_the_settings_say_so(tmp_path: Path) -> None:
    signed = inputs.signed(inputs.text_pdf(tmp_path / "c.pdf", ["Contract"]), tmp_path / "signed.pdf")
    outcome, _ = prep_job(tmp_path, "signed.pdf", signed.read_bytes(), SIGNED_PDF="error")
    assert not outcome.ok and not outcome.transient and outcome.code == "PDF_SIGNED"
    assert "SIGNED_PDF=error" in outcome.reason


def test_a_signed_pdf_is_ocred_anyway_when_asked_and_says_the_signature_is_gone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ocrpipe.stages.ocr import run_ocr

    signed = inputs.signed(inputs.scanned_pdf(tmp_path / "c.pdf", [inputs.FOX]), tmp_path / "signed.pdf")
    env = {"SIGNED_PDF": "ocr", "OCR_LANG": "eng"}
    outcome, job_dir = prep_job(tmp_path, "signed.pdf", signed.read_bytes(), **env)
    assert outcome.ok and outcome.fields["signed"] and outcome.fields["soloReason"] == "digital signature"
    settings = load_settings({"DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/local/bin:/usr/bin:/bin", **env})
    with caplog.at_level("WARNING", logger="ocrpipe.ocr"):
        done = run_ocr(settings, job_dir, pages=1, jobs=1, attempts={"PREP": 1, "OCR": 1})
    assert done.ok, done.reason
    record = done.fields["record"]
    assert record["state"] == "DONE" and record["signature"] == "invalidated"
    assert "its digital signature is no longer valid" in caplog.text


def test_a_pdf_holding_an_image_over_the_limit_is_refused_before_ocr(tmp_path: Path) -> None:
    """Like OCRmyPDF's hugemono.pdf (35,000 × 35,000): the declared size is read, nothing is decoded."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(612, 792))
    image = pdf.make_stream(b"\x00" * 16, Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image, Width=35_000,
                            Height=35_000, ColorSpace=pikepdf.Name.DeviceGray, BitsPerComponent=1)
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    pdf.pages[0].Contents = pdf.make_stream(b"q 612 0 0 792 0 0 cm /Im0 Do Q")
    pdf.save(tmp_path / "huge.pdf")
    outcome, _ = prep_job(tmp_path, "huge.pdf", (tmp_path / "huge.pdf").read_bytes())
    assert not outcome.ok and not outcome.transient and outcome.code == "IMAGE_TOO_LARGE"
    assert "image too large (35000 × 35000, 1,225 megapixels, in the PDF" in outcome.reason


def _damaged_pdf(tmp_path: Path) -> bytes:
    return b"%PDF-1.7\n" + bytes(range(256)) * 16


@pytest.mark.parametrize(("name", "make", "code"), [
    ("Contrat signé 2026.pdf",
     lambda tmp: inputs.encrypted(inputs.text_pdf(tmp / "c.pdf", ["Contract"]), tmp / "locked.pdf",
                                  user="open-sesame").read_bytes(), "PDF_PASSWORD"),
    ("Relevé mars.pdf", _damaged_pdf, "PDF_DAMAGED"),
    ("Plan du site.png", lambda tmp: inputs.lying_png(tmp / "huge.png", 20_000, 20_000).read_bytes(),
     "IMAGE_TOO_LARGE"),
])
def test_a_refused_file_is_named_by_the_name_it_was_dropped_under(tmp_path: Path, name: str,
                                                                  make: Callable[[Path], bytes], code: str) -> None:
    """The job's copy is ``input/original.<ext>``, a name the person never gave it: reasons name theirs."""
    outcome, job_dir = prep_job(tmp_path, name, make(tmp_path))
    assert not outcome.ok and not outcome.transient and outcome.code == code, outcome.reason
    assert outcome.reason.startswith(f"{name}: "), outcome.reason
    assert "original" not in outcome.reason
    assert read_state(job_dir)["lastError"]["reason"] == outcome.reason  # what error.json and the index get
