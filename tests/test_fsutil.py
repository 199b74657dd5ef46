"""Moves that never lose or overwrite a file, on one volume or across two."""

from __future__ import annotations

import errno
import os
from itertools import islice
from pathlib import Path

import pytest

from ocrpipe import fsutil
from ocrpipe.fsutil import candidate_names, move_file, publish_copy, sha256_file


def test_candidate_names() -> None:
    assert list(islice(candidate_names("scan.pdf"), 3)) == ["scan.pdf", "scan (2).pdf", "scan (3).pdf"]
    assert list(islice(candidate_names("README"), 2)) == ["README", "README (2)"]


def test_publish_never_overwrites(tmp_path: Path) -> None:
    src = tmp_path / "final.pdf"
    src.write_bytes(b"new")
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan.pdf").write_bytes(b"old")
    first = publish_copy(src, out, "scan.pdf")
    second = publish_copy(src, out, "scan.pdf")
    assert (first.name, second.name) == ("scan (2).pdf", "scan (3).pdf")
    assert (out / "scan.pdf").read_bytes() == b"old" and src.exists()
    assert sorted(p.name for p in out.iterdir()) == ["scan (2).pdf", "scan (3).pdf", "scan.pdf"]


@pytest.mark.parametrize("cross_volume", [False, True])
def test_move_file_keeps_bytes_and_removes_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  cross_volume: bool) -> None:
    if cross_volume:
        real_rename = os.rename

        def rename(src: str, dst: str) -> None:
            if "dest" in str(dst):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            real_rename(src, dst)

        monkeypatch.setattr(fsutil.os, "rename", rename)
    src = tmp_path / "a.tif"
    src.write_bytes(os.urandom(300_000))
    digest = sha256_file(src)
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "a.tif").write_bytes(b"someone else's")
    moved = move_file(src, tmp_path / "dest")
    assert moved.name == "a (2).tif" and sha256_file(moved) == digest and not src.exists()
    assert not [p for p in (tmp_path / "dest").iterdir() if "ocrpipe-tmp" in p.name]


def test_move_file_overwrite_replaces(tmp_path: Path) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"1")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"0")
    assert move_file(src, tmp_path / "d", overwrite=True).read_bytes() == b"1"
