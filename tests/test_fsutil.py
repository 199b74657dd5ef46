"""Moves that never lose or overwrite a file, on one volume or across two, and survive a crash."""

from __future__ import annotations

import errno
import os
from itertools import islice
from pathlib import Path

import pytest

from ocrpipe.folders import fsutil
from ocrpipe.folders.fsutil import candidate_names, drop_temp, move_replacing, place_file, sha256_file


def test_candidate_names() -> None:
    assert list(islice(candidate_names("scan.pdf"), 3)) == ["scan.pdf", "scan (2).pdf", "scan (3).pdf"]
    assert list(islice(candidate_names("README"), 2)) == ["README", "README (2)"]


def test_copies_never_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "final.pdf"
    src.write_bytes(b"new")
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan.pdf").write_bytes(b"old")
    first = place_file(src, out, "scan.pdf", tmp_name=".a", keep_source=True)
    drop_temp(out, ".a")
    second = place_file(src, out, "scan.pdf", tmp_name=".b", keep_source=True)
    drop_temp(out, ".b")
    assert (first.name, second.name) == ("scan (2).pdf", "scan (3).pdf")
    assert (out / "scan.pdf").read_bytes() == b"old" and src.exists()
    assert sorted(p.name for p in out.iterdir()) == ["scan (2).pdf", "scan (3).pdf", "scan.pdf"]


def test_placing_again_after_a_crash_finishes_instead_of_copying_twice(tmp_path: Path) -> None:
    src = tmp_path / "orig.tif"
    src.write_bytes(b"scan")
    dest = tmp_path / "archive"
    first = place_file(src, dest, "orig.tif", tmp_name=".job.orig", keep_source=False)
    # crash here: the result was not recorded, the temp link is still there; the restart repeats the call
    again = place_file(src, dest, "orig.tif", tmp_name=".job.orig", keep_source=False)
    drop_temp(dest, ".job.orig")
    assert again == first and sorted(p.name for p in dest.iterdir()) == ["orig.tif"]
    assert not src.exists()


@pytest.mark.parametrize("cross_volume", [False, True])
def test_moving_keeps_bytes_and_removes_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    cross_volume: bool) -> None:
    if cross_volume:
        def rename(src: str, dst: str) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(fsutil.os, "rename", rename)
    src = tmp_path / "a.tif"
    src.write_bytes(os.urandom(300_000))
    digest = sha256_file(src)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "a.tif").write_bytes(b"someone else's")
    moved = place_file(src, tmp_path / "dest", "a.tif", tmp_name=".t", keep_source=False)
    drop_temp(tmp_path / "dest", ".t")
    assert moved.name == "a (2).tif" and sha256_file(moved) == digest and not src.exists()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["a (2).tif", "a.tif"]


@pytest.mark.parametrize("cross_volume", [False, True])
def test_move_replacing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cross_volume: bool) -> None:
    if cross_volume:
        real = os.replace

        def replace(src: str, dst: str) -> None:
            if not str(src).endswith(".partial"):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            real(src, dst)

        monkeypatch.setattr(fsutil.os, "replace", replace)
    src = tmp_path / "x"
    src.write_bytes(b"1")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"0")
    assert move_replacing(src, tmp_path / "d", "x").read_bytes() == b"1"
    assert not src.exists() and [p.name for p in (tmp_path / "d").iterdir()] == ["x"]


@pytest.mark.parametrize("first, second", [("Scan.pdf", "scan.pdf"), ("scan.pdf", "SCAN.PDF"),
                                           ("Caf\u00e9.pdf", "Cafe\u0301.pdf"),  # composed (NFC), decomposed (NFD)
                                           ("STRASSE.pdf", "stra\u00dfe.pdf")])  # ß case-folds to ss
def test_names_that_differ_by_case_or_normalisation_get_distinct_outputs(tmp_path: Path, first: str,
                                                                         second: str) -> None:
    """On a case-insensitive volume (NTFS, APFS, a share) the second would overwrite or merge with the first;
    here, on a case-sensitive one, they would be two files that collide once synced or copied there."""
    out = tmp_path / "out"
    placed = []
    for n, name in enumerate((first, second, first)):
        src = tmp_path / f"final-{n}.pdf"
        src.write_bytes(f"document {n}".encode())
        placed.append(place_file(src, out, name, tmp_name=f".job{n}", keep_source=False))
        drop_temp(out, f".job{n}")
    (stem, ext), (second_stem, second_ext) = first.rsplit(".", 1), second.rsplit(".", 1)
    assert [p.name for p in placed] == [first, f"{second_stem} (2).{second_ext}", f"{stem} (3).{ext}"]
    assert [p.read_bytes() for p in placed] == [b"document 0", b"document 1", b"document 2"]
    assert len({fsutil.fold_name(p.name) for p in out.iterdir()}) == 3


def test_a_suffixed_name_taken_in_another_case_is_skipped_too(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "SCAN.pdf").write_bytes(b"a")
    (out / "Scan (2).PDF").write_bytes(b"b")
    src = tmp_path / "final.pdf"
    src.write_bytes(b"c")
    assert place_file(src, out, "scan.pdf", tmp_name=".t", keep_source=True).name == "scan (3).pdf"


def test_placing_again_after_a_crash_finds_its_file_under_a_folded_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "Scan.pdf").write_bytes(b"someone else's")
    src = tmp_path / "final.pdf"
    src.write_bytes(b"mine")
    first = place_file(src, out, "scan.pdf", tmp_name=".job", keep_source=True)
    again = place_file(src, out, "scan.pdf", tmp_name=".job", keep_source=True)  # restart before drop_temp
    assert first == again == out / "scan (2).pdf"
    assert sorted(p.name for p in out.iterdir()) == [".job", "Scan.pdf", "scan (2).pdf"]
