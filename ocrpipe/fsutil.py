"""File moves that never lose data: atomic writes, cross-volume moves, no-overwrite publishing."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

HASH_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    # Makes a rename durable on POSIX; Windows cannot open folders, and NTFS journals renames anyway.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def candidate_names(name: str) -> Iterator[str]:
    """``report.pdf``, ``report (2).pdf``, ``report (3).pdf``…"""
    yield name
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    n = 2
    while True:
        yield f"{stem} ({n}){dot}{suffix}"
        n += 1


def _claim_name(tmp: Path, folder: Path, name: str) -> Path:
    """Give the finished temp file its final name without ever overwriting another file."""
    for candidate in candidate_names(name):
        target = folder / candidate
        try:
            os.link(tmp, target)  # fails if target exists: no overwrite, even under races
        except FileExistsError:
            continue
        except OSError:
            # File systems without hard links (FAT, some SMB shares): check, then rename.
            if target.exists():
                continue
            os.replace(tmp, target)
            return target
        tmp.unlink()
        return target
    raise AssertionError("unreachable")


def copy_durably(src: Path, dest: Path) -> None:
    """Copy and fsync, then check the size, so a short copy is never taken for a good one."""
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, HASH_CHUNK)
        fout.flush()
        os.fsync(fout.fileno())
    if dest.stat().st_size != src.stat().st_size:
        dest.unlink(missing_ok=True)
        raise OSError(errno.EIO, f"copy of {src} is incomplete", str(dest))


def publish_copy(src: Path, folder: Path, name: str) -> Path:
    """Copy ``src`` into ``folder`` as ``name`` (or ``name (2)``…); the source stays."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.ocrpipe-tmp"
    try:
        copy_durably(src, tmp)
        final = _claim_name(tmp, folder, name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return final


def move_file(src: Path, folder: Path, name: str | None = None, *, overwrite: bool = False) -> Path:
    """Move ``src`` into ``folder``; across volumes it copies, fsyncs, checks, then deletes.

    Without ``overwrite`` an existing file of that name is kept and the new one gets a suffix.
    """
    name = name or src.name
    folder.mkdir(parents=True, exist_ok=True)
    if overwrite:
        target = folder / name
        try:
            os.replace(src, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.ocrpipe-tmp"
            copy_durably(src, tmp)
            os.replace(tmp, target)
            src.unlink()
        _fsync_dir(folder)
        return target
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.ocrpipe-tmp"
    try:
        os.rename(src, tmp)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        final = publish_copy(src, folder, name)
        src.unlink()
        return final
    try:
        final = _claim_name(tmp, folder, name)
    except BaseException:
        os.rename(tmp, src)  # put it back where it was
        raise
    _fsync_dir(folder)
    return final


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
