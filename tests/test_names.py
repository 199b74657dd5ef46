"""Names every file system accepts: reserved device names, forbidden characters, trailing dots, 255 bytes, NFC/NFD."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import drive, finished_jobs, make_pdf
from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import candidate_names, place_file
from ocrpipe.folders.names import MAX_NAME_BYTES, safe_name, safe_relpath
from ocrpipe.engine.scheduler import Scheduler


@pytest.mark.parametrize(("name", "safe"), [
    ("CON", "_CON"), ("con.pdf", "_con.pdf"), ("NUL.tar.gz", "_NUL.tar.gz"), ("Aux.PDF", "_Aux.PDF"),
    ("COM1.pdf", "_COM1.pdf"), ("lpt9", "_lpt9"), ("PRN .pdf", "_PRN .pdf"), ("console.pdf", "console.pdf"),
    ("COM10.pdf", "COM10.pdf"), ('in<v>o:i"c|e?*.pdf', "in_v_o_i_c_e__.pdf"), ("tab\there\x01.pdf", "tab_here_.pdf"),
    ("report. . ", "report"), ("...", "_"), ("scan.pdf", "scan.pdf"),
    (unicodedata.normalize("NFD", "café.pdf"), "café.pdf"),
])
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


def test_long_names_keep_their_extension_and_fit_255_bytes() -> None:
    name = safe_name("é" * 300 + ".tif")
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES and name.endswith(".tif") and name.startswith("é")
    numbered = list(zip(range(12), candidate_names(name)))[-1][1]
    assert numbered.endswith(" (12).tif") and len(numbered.encode("utf-8")) <= MAX_NAME_BYTES


@given(st.text(min_size=0, max_size=300))
def test_any_name_becomes_one_every_os_accepts(name: str) -> None:
    safe = safe_name(name)
    assert safe and len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert not any(c in safe for c in '<>:"/\\|?*') and all(ord(c) >= 32 and ord(c) != 127 for c in safe)
    assert not safe.endswith((".", " "))
    assert safe.split(".")[0].rstrip(" ").upper() not in ("CON", "PRN", "AUX", "NUL", "COM1", "LPT1")
    assert safe_name(safe) == safe  # stable: a safe name is left as it is


def test_relative_paths_are_made_safe_part_by_part() -> None:
    assert str(safe_relpath("AUX/May./scan:1.pdf")) == "_AUX/May/scan_1.pdf"


def test_the_two_unicode_forms_of_a_name_are_one_name(tmp_path: Path) -> None:
    (tmp_path / unicodedata.normalize("NFD", "café.pdf")).write_bytes(b"earlier")  # as macOS wrote it
    source = tmp_path / "new.pdf"
    source.write_bytes(b"new")
    placed = place_file(source, tmp_path, safe_name("café.pdf"), tmp_name=".t", keep_source=True)
    assert placed.name == "café (2).pdf" and placed.read_bytes() == b"new"


def test_hostile_names_are_published_under_safe_names_and_kept_as_they_were(
        data_dir: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[[Settings], Scheduler]) -> None:
    in_dir = data_dir / "in"
    (in_dir / "AUX").mkdir(parents=True)
    hostile = {"CON.pdf": "_CON.pdf", "AUX/nul.tif.pdf": "_AUX/_nul.tif.pdf", "bad:name?.pdf": "bad_name_.pdf",
               "trailing .pdf": "trailing .pdf",
               "x" * 252 + ".p": "x" * 251 + ".pdf"}  # 254 bytes in; its .pdf must be cut to 255
    for n, relpath in enumerate(hostile):
        (in_dir / relpath).write_bytes(make_pdf(1, scenario=f"ok-{n}"))
    drive(scheduler_for(make_settings()), timeout=60)
    jobs = {job["source"]: job for job in finished_jobs(data_dir)}
    assert set(jobs) == set(hostile)  # the original names, in the index
    for relpath, safe in hostile.items():
        assert jobs[relpath]["state"] == "DONE"
        output = Path(jobs[relpath]["output"])
        assert output == data_dir / "out" / safe
        assert Path(jobs[relpath]["archived"]) == data_dir / "archive" / safe_relpath(relpath)
    assert (data_dir / "archive" / "_CON.pdf").is_file() and (data_dir / "archive" / "_AUX").is_dir()
