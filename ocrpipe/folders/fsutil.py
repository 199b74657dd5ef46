"""File moves that never lose data: atomic writes, cross-volume moves, no-overwrite publishing."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocrpipe.folders.names import MAX_NAME_BYTES, fit
from ocrpipe.folders.nofollow import open_regular, refuse_link

HASH_CHUNK = 1024 * 1024
# Windows: an antivirus, a backup agent or ``ocrpipe status`` may hold a file open for a moment, and a
# rename over it fails with PermissionError until they let go.
REPLACE_RETRIES = 8
REPLACE_FIRST_PAUSE = 0.02
PLACED_SUFFIX = ".placed"  # beside a placement's temp file on volumes without hard links: the name chosen


def sha256_file(path: Path) -> str:
    """Of a regular file only: a link is not read through, a FIFO does not block (NotRegularFile)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
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


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Readers see the old file or the new one, never half of one. ``durable`` fsyncs the content
    first, so after a power loss the file is the old one or the new one, never empty."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        replace_retrying(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_retrying(src: Path, dest: Path) -> None:
    """``os.replace``, tried again for a moment while another program holds ``dest`` (Windows)."""
    pause = REPLACE_FIRST_PAUSE
    for _ in range(REPLACE_RETRIES - 1):
        try:
            os.replace(src, dest)
            return
        except PermissionError:
            time.sleep(pause)
            pause *= 2
    os.replace(src, dest)


def rename_new(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest`` unless ``dest`` exists (FileExistsError): never replaces a file another
    program wrote meanwhile. Windows' rename refuses by itself; elsewhere a hard link does, where the file
    system has them (on one without, the check and the rename are two steps)."""
    if os.name == "nt":
        os.rename(src, dest)
        return
    try:
        os.link(src, dest)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "file exists", str(dest)) from None
        os.rename(src, dest)
        return
    os.unlink(src)


def atomic_write_json(path: Path, obj: Any, *, durable: bool = True, pretty: bool = False) -> None:
    """``pretty`` for files people read; compact otherwise (the C encoder, several times faster)."""
    text = json.dumps(obj, indent=2 if pretty else None, ensure_ascii=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"), durable=durable)


def read_json(path: Path) -> Any:
    """A JSON file under the data folder, where anyone who can write it can put a link or a FIFO in place of
    status.json, decision.json, state.json…: only a regular file is read, never through a link nor waiting
    on a FIFO; anything else raises NotRegularFile (an OSError, as for a file that cannot be read)."""
    with open_regular(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def candidate_names(name: str) -> Iterator[str]:
    """``report.pdf``, ``report (2).pdf``, ``report (3).pdf``…, each within the length a name may have."""
    yield name
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    n = 2
    while True:
        numbered = f" ({n}){dot}{suffix}"
        yield fit(fit(stem, MAX_NAME_BYTES - len(numbered.encode("utf-8"))) + numbered)
        n += 1


def fold_name(name: str) -> str:
    """A name as a case-insensitive volume that ignores Unicode normalisation compares it (NTFS, APFS,
    an SMB share): ``Scan.pdf`` ≡ ``scan.pdf``, ``café`` composed ≡ decomposed."""
    return unicodedata.normalize("NFC", name).casefold()


def names_on_disk(folder: Path) -> dict[str, str]:
    """Folded name → the name on disk, for every entry of ``folder``."""
    with os.scandir(folder) as entries:
        return {fold_name(entry.name): entry.name for entry in entries}


def free_name(folder: Path, name: str, *, mine: Path | None = None) -> tuple[str, bool]:
    """The first of ``name``, ``name (2)``… that no entry of ``folder`` takes once folded, so outputs stay
    distinct on any volume they are synced or copied to; ``(name, True)`` when it is already ``mine``
    (the same file, placed before a crash)."""
    taken = names_on_disk(folder)
    for candidate in candidate_names(name):
        on_disk = taken.get(fold_name(candidate))
        if on_disk is None:
            return candidate, False
        if mine is not None and os.path.samefile(folder / on_disk, mine):
            return on_disk, True
    raise AssertionError("unreachable")


def copy_durably(src: Path, dest: Path) -> None:
    """Copy and fsync, then check the size, so a short copy is never taken for a good one. The source
    must be a regular file: a link planted in its place is not read through."""
    with open_regular(src) as fin, open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, HASH_CHUNK)
        fout.flush()
        os.fsync(fout.fileno())
    if dest.stat().st_size != src.stat().st_size:
        dest.unlink(missing_ok=True)
        raise OSError(errno.EIO, f"copy of {src} is incomplete", str(dest))


def move_replacing(src: Path, folder: Path, name: str) -> Path:
    """Move ``src`` to ``folder/name``, replacing what is there (our own folders only); across
    volumes it copies, fsyncs, checks the size, then deletes the source."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    refuse_link(src)
    try:
        os.replace(src, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = folder / f".{name}.partial"  # a fixed name: a crash's leftover is reused, not piled up
        copy_durably(src, partial)
        os.replace(partial, target)
        src.unlink()
    _fsync_dir(folder)
    return target


def place_file(src: Path, folder: Path, name: str, *, tmp_name: str, keep_source: bool) -> Path:
    """Copy (``keep_source``) or move ``src`` to ``folder/name`` — or ``name (2)``…, never overwriting.

    Safe to call again after a crash at any point, with the same ``tmp_name``: it finishes the same
    placement instead of making a second copy. The temp file stays, hard-linked to the result, until
    the caller has recorded the result and calls :func:`drop_temp`. Where hard links are refused
    (FAT, exFAT, some shares), a note beside the temp file names the target before the temp file is
    renamed onto it, so a second call finds the same target.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / tmp_name
    placed = _placed_before(folder, tmp_name)
    if placed is not None:
        return placed
    if not tmp.exists():
        refuse_link(src)  # a link planted in place of a result or an original is neither moved nor read
        moved = False
        if not keep_source:
            try:
                os.rename(src, tmp)
                moved = True
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        if not moved:  # a copy: across volumes, or when the source stays
            partial = folder / (tmp_name + ".partial")
            copy_durably(src, partial)
            os.replace(partial, tmp)
    if not keep_source:
        src.unlink(missing_ok=True)  # the temp file is complete: the source may go
    while True:
        candidate, already = free_name(folder, name, mine=tmp)
        target = folder / candidate
        if already:
            return target  # placed before a crash
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue  # another program took the name meanwhile: look again
        except OSError:  # no hard links here: note the name, then rename
            atomic_write_bytes(folder / (tmp_name + PLACED_SUFFIX), candidate.encode("utf-8"))
            os.replace(tmp, target)
        _fsync_dir(folder)
        return target


def _placed_before(folder: Path, tmp_name: str) -> Path | None:
    """The target a renaming placement chose before a crash; it finishes the rename if it was cut short."""
    try:
        chosen = (folder / (tmp_name + PLACED_SUFFIX)).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    target, tmp = folder / chosen, folder / tmp_name
    if tmp.exists():
        os.replace(tmp, target)
    return target


def drop_temp(folder: Path, tmp_name: str) -> None:
    (folder / tmp_name).unlink(missing_ok=True)
    (folder / (tmp_name + PLACED_SUFFIX)).unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def tree_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` now; files that vanish while it counts (a worker is
    deleting them) count as gone, never as an error in a sampling thread."""
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
