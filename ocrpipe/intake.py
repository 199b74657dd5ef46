"""Watch ``in/`` by polling: ignore partial and system files, wait until a file is stable, stage it."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote_to_bytes
from typing import Iterator

from ocrpipe.layout import MAX_PATH_CHARS, long_path
from ocrpipe.fsutil import atomic_write_json
from ocrpipe.names import name_bytes, readable_name
from ocrpipe.store import utc_now

STAGING_DIR = ".ocrpipe-staging"
INTENT_FILE = "staging.json"
MAX_FLAT_NAME = 240  # bytes: most file systems allow 255 in one name
_IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".ocrpipe-tmp")
_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "@eadir", "$recycle.bin", "system volume information"})


def is_ignored(name: str) -> bool:
    """Partial downloads, editor locks, OS litter and anything hidden (our staging folder included)."""
    lowered = name.lower()
    return (
        name.startswith((".", "~$"))
        or lowered.endswith(_IGNORED_SUFFIXES)
        or lowered in _IGNORED_NAMES
    )


@dataclass(frozen=True)
class Candidate:
    path: Path
    relpath: str  # with forward slashes, relative to in/
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class StagedFile:
    path: Path
    relpath: str  # where it was dropped, relative to in/
    size: int
    staging_dir: Path | None  # only for paths too long to carry in the staged name

    @property
    def name(self) -> str:
        return PurePosixPath(self.relpath).name


def walk_inbox(in_dir: Path) -> Iterator[Candidate]:
    """Every file in in/ that ocrpipe would take, ignored names and our staging folder left out."""
    root = str(in_dir)
    for path, size, mtime_ns in _scan(root):
        yield Candidate(Path(path), os.path.relpath(path, root).replace(os.sep, "/"), size, mtime_ns)


def _scan(folder: str) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime) of each file: plain strings, since in/ may hold thousands of files."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # a folder vanishing mid-scan is normal on a busy share
    for entry in entries:
        if is_ignored(entry.name):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _scan(entry.path)
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                yield entry.path, stat.st_size, stat.st_mtime_ns
        except OSError:
            continue


def _can_open(path: Path) -> bool:
    # On Windows a program still writing usually holds the file open without read sharing.
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False


class Intake:
    """Remembers each file's size and mtime across polls; hands out the ones that held still."""

    def __init__(self, in_dir: Path, stable_seconds: float) -> None:
        self.in_dir = in_dir
        self.stable_seconds = stable_seconds
        self._seen: dict[str, tuple[int, int, float]] = {}
        self.blocked: set[Path] = set()  # stable, but another program holds them
        self._set_aside: dict[str, tuple[int, int]] = {}  # could not be taken in: left alone while unchanged

    @property
    def pending(self) -> int:
        """Files seen in in/ that are still settling or ready to be taken (held files not counted)."""
        return len(self._seen) - len(self.blocked)

    def block(self, path: Path) -> None:
        """The file could not be taken (locked): it is tried again at the next poll."""
        if str(path) in self._seen:
            self.blocked.add(path)

    def poll(self, now: float, limit: int | None = None) -> list[Candidate]:
        """Up to ``limit`` files whose size and mtime have not changed for ``stable_seconds`` and that
        can be opened, oldest first. Every file's stability clock runs, taken or not."""
        seen: dict[str, tuple[int, int, float]] = {}
        aside: dict[str, tuple[int, int]] = {}
        stable = []
        for path, size, mtime_ns in _scan(str(self.in_dir)):
            if self._set_aside.get(path) == (size, mtime_ns):
                aside[path] = (size, mtime_ns)
                continue
            old_size, old_mtime, since = self._seen.get(path, (-1, -1, now))
            if (old_size, old_mtime) != (size, mtime_ns):
                since = now
            seen[path] = (size, mtime_ns, since)
            if now - since >= self.stable_seconds:
                stable.append((mtime_ns, path, size))
        self._seen, self._set_aside = seen, aside
        self.blocked = set()
        ready: list[Candidate] = []
        root = str(self.in_dir)
        for mtime_ns, path, size in sorted(stable):
            if limit is not None and len(ready) >= limit:
                break
            if _can_open(Path(path)):  # only for the files about to be taken: opening costs
                ready.append(Candidate(Path(path), os.path.relpath(path, root).replace(os.sep, "/"), size, mtime_ns))
            else:
                self.blocked.add(Path(path))
        return ready

    def forget(self, path: Path) -> None:
        self._seen.pop(str(path), None)
        self.blocked.discard(path)

    def set_aside(self, candidate: Candidate) -> None:
        """The file could not be taken in nor moved to error/: not handed out again, nor counted as
        waiting (``run --once`` ends), until it changes."""
        self.forget(candidate.path)
        self._set_aside[str(candidate.path)] = (candidate.size, candidate.mtime_ns)


def stage(candidate: Candidate, in_dir: Path) -> StagedFile | None:
    """Take the file out of the scanner's sight by one rename; None if another program still holds it.

    The staged name carries where the file came from (``<token>~<quoted relpath>``), so a crash
    right after the rename loses nothing; a path too long for one name gets a folder and a note.
    """
    root = in_dir / STAGING_DIR
    token = uuid.uuid4().hex[:16]
    flat = f"{token}~{quote_relpath(candidate.relpath)}"
    if len(flat.encode("utf-8")) > MAX_FLAT_NAME or len(str(root / flat)) > MAX_PATH_CHARS:
        return _stage_in_folder(candidate, root / token)
    try:
        _rename_into(candidate.path, root, flat)
    except OSError:  # locked by its writer (Windows) or gone: try again on a later poll
        return None
    return StagedFile(root / flat, candidate.relpath, candidate.size, None)


def quote_relpath(relpath: str) -> str:
    """``relpath`` as one name of ASCII characters; its bytes on disk, so a name that is not UTF-8 survives."""
    return quote(os.fsencode(relpath), safe="")


def unquote_relpath(quoted: str) -> str:
    return os.fsdecode(unquote_to_bytes(quoted))


def _rename_into(src: Path, folder: Path, name: str) -> None:
    try:
        os.rename(src, folder / name)
    except FileNotFoundError:
        if not src.exists():
            raise
        folder.mkdir(parents=True, exist_ok=True)  # first use
        os.rename(src, folder / name)


def _stage_in_folder(candidate: Candidate, staging: Path) -> StagedFile | None:
    staging.mkdir(parents=True)
    # The intent goes first: after a crash, the file in here is known to come from this path.
    # Not fsynced: after a power loss an empty intent only costs the sub-folder in the output's path.
    raw = name_bytes(candidate.relpath)
    intent = {"relpath": readable_name(candidate.relpath), **({"relpathBytes": raw} if raw else {}), "stagedAt": utc_now()}
    atomic_write_json(staging / INTENT_FILE, intent, durable=False)
    target = long_path(staging / candidate.path.name)  # 34 characters deeper than in/ itself
    try:
        os.rename(candidate.path, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return None
    return StagedFile(target, candidate.relpath, candidate.size, staging)


def staged_leftovers(in_dir: Path) -> list[StagedFile]:
    """Files a previous run staged but did not finish taking in (it crashed in between)."""
    leftovers = []
    root = in_dir / STAGING_DIR
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.is_file() and "~" in entry.name and not entry.name.startswith("."):
            relpath = unquote_relpath(entry.name.split("~", 1)[1])
            leftovers.append(StagedFile(entry, relpath, entry.stat().st_size, None))
        elif entry.is_dir():
            leftovers += _folder_leftover(entry)
    return leftovers


def _folder_leftover(folder: Path) -> list[StagedFile]:
    try:
        intent = json.loads((folder / INTENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        intent = None
    # Hidden names are our own temp files (an intent being written when the crash came).
    files = [p for p in folder.iterdir() if p.is_file() and p.name != INTENT_FILE and not p.name.startswith(".")]
    if not files:  # crashed before the rename, or after the file moved on: nothing to take
        shutil.rmtree(folder, ignore_errors=True)
        return []
    relpath = files[0].name
    if intent:
        relpath = unquote_relpath(intent["relpathBytes"]) if intent.get("relpathBytes") else intent["relpath"]
    return [StagedFile(files[0], relpath, files[0].stat().st_size, folder)]


def unstage(staged: StagedFile) -> None:
    """Remove the emptied staging folder, if the file had one."""
    if staged.staging_dir is not None:
        shutil.rmtree(staged.staging_dir, ignore_errors=True)
