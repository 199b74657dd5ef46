"""PREP with the real 7-Zip: compressed tarballs, archives inside archives, bombs, path traversal, the shared limits."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pikepdf
import pytest

import inputs
from conftest import make_pdf
from ocrpipe.config import load_settings
from ocrpipe.stages.prep import run_prep
from ocrpipe.store import new_state_record, read_state, write_new_state

pytestmark = pytest.mark.integration


def prep_job(tmp_path: Path, name: str, content: bytes, **env: str):  # type: ignore[no-untyped-def]
    settings = load_settings({"DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/local/bin:/usr/bin:/bin", **env})
    job_dir = settings.work_dir / f"{name}__p"
    write_new_state(job_dir, new_state_record(job_key=job_dir.name, run_id="r", file_hash=name, profile_hash="p",
                                              source_name=name, source_relpath=name, size=len(content)))
    (job_dir / "input").mkdir()
    (job_dir / "input" / name).write_bytes(content)
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
    assert outcome.fields == {"kind": "archive", "pages": 3, "soloReason": None}
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
    assert not outcome.ok and not outcome.transient
    assert outcome.reason.startswith("archive refused: 3 files, more than the limit of 1")


def test_zip_bomb_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = inputs.zip_bomb(tmp_path / "bomb.zip", megabytes=16)
    assert bomb.stat().st_size < 2**20  # small packed, big unpacked: what makes it a bomb
    outcome, job_dir = prep_job(tmp_path, "bomb.zip", bomb.read_bytes(), MAX_ARCHIVE_MB="8")
    assert not outcome.ok and not outcome.transient
    assert outcome.reason.startswith("archive refused: it unpacks to 16 MB, more than the limit of 8 MB")
    assert not (job_dir / "prep" / "zeros.pdf").exists()


def test_bomb_inside_a_zip_counts_against_the_same_limit(tmp_path: Path) -> None:
    """5 MB at the top level and 6 MB inside are each under 8 MB, but not together."""
    bomb = inputs.zip_bomb(tmp_path / "bomb.zip", megabytes=6)
    outer = inputs.zip_of(tmp_path / "outer.zip", {"page.pdf": make_pdf(1), "padding.bin": bytes(5 * 2**20),
                                                   "inner.zip": bomb})
    outcome, _ = prep_job(tmp_path, "outer.zip", outer.read_bytes(), MAX_ARCHIVE_MB="8")
    assert not outcome.ok and not outcome.transient
    assert outcome.reason.startswith("archive refused: it unpacks to 6 MB, more than the limit of 2 MB"), \
        outcome.reason


def test_tar_slip_is_refused_and_writes_nothing_outside(tmp_path: Path) -> None:
    evil = inputs.tar_slip(tmp_path / "slip.tar", target="escaped.txt", depth=3)
    outcome, _ = prep_job(tmp_path, "slip.tar", evil.read_bytes())
    assert not outcome.ok and not outcome.transient
    assert "points outside the archive" in outcome.reason
    assert list(tmp_path.rglob("escaped.txt")) == []
