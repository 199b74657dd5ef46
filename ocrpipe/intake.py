"""Watch ``in/`` by polling: ignore partial and system files, wait until a file is stable, stage it."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ocrpipe.fsutil import atomic_write_json
from ocrpipe.store import utc_now

STAGING_DIR = ".ocrpipe-staging"
INTENT_FILE = "staging.json"
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
    relpath: str
    size: int
    staging_dir: Path


def walk_inbox(in_dir: Path) -> Iterator[Candidate]:
    """Every file in in/ that ocrpipe would take, ignored names and our staging folder left out."""
    return _walk(in_dir, in_dir)


def _walk(folder: Path, root: Path) -> Iterator[Candidate]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # a folder vanishing mid-scan is normal on a busy share
    for entry in entries:
        if is_ignored(entry.name):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path), root)
            elif entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                path = Path(entry.path)
                yield Candidate(path, path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns)
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
        self._seen: dict[Path, tuple[int, int, float]] = {}
        self.blocked: set[Path] = set()  # stable, but another program holds them

    @property
    def pending(self) -> int:
        """Files seen in in/ that are still settling or ready to be taken (held files not counted)."""
        return len(self._seen) - len(self.blocked)

    def block(self, path: Path) -> None:
        """The file could not be taken (locked): it is tried again at the next poll."""
        if path in self._seen:
            self.blocked.add(path)

    def poll(self, now: float) -> list[Candidate]:
        """Files whose size and mtime have not changed for ``stable_seconds``, oldest first."""
        current = {c.path: c for c in walk_inbox(self.in_dir)}
        seen: dict[Path, tuple[int, int, float]] = {}
        ready = []
        self.blocked = set()
        for path, cand in current.items():
            size, mtime, since = self._seen.get(path, (-1, -1, now))
            if (size, mtime) != (cand.size, cand.mtime_ns):
                since = now
            seen[path] = (cand.size, cand.mtime_ns, since)
            if now - since >= self.stable_seconds:
                if _can_open(path):
                    ready.append(cand)
                else:
                    self.blocked.add(path)
        self._seen = seen
        ready.sort(key=lambda c: (c.mtime_ns, c.relpath))
        return ready

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)
        self.blocked.discard(path)


def stage(candidate: Candidate, in_dir: Path) -> StagedFile | None:
    """Take the file out of the scanner's sight by a rename; None if another program still holds it."""
    staging = in_dir / STAGING_DIR / uuid.uuid4().hex
    staging.mkdir(parents=True)
    # The intent goes first: after a crash, the file in here is known to come from this path.
    atomic_write_json(staging / INTENT_FILE, {"relpath": candidate.relpath, "stagedAt": utc_now()})
    target = staging / candidate.path.name
    try:
        os.rename(candidate.path, target)
    except OSError:  # locked by its writer (Windows) or gone: try again on a later poll
        (staging / INTENT_FILE).unlink(missing_ok=True)
        staging.rmdir()
        return None
    return StagedFile(target, candidate.relpath, candidate.size, staging)


def staged_leftovers(in_dir: Path) -> list[StagedFile]:
    """Files a previous run staged but did not finish taking in (it crashed in between)."""
    leftovers = []
    root = in_dir / STAGING_DIR
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            intent = json.loads((folder / INTENT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            intent = None
        # Hidden names are our own temp files (an intent being written when the crash came).
        files = [p for p in folder.iterdir() if p.is_file() and p.name != INTENT_FILE and not p.name.startswith(".")]
        if not files:  # crashed before the rename, or after the file moved on: nothing to take
            shutil.rmtree(folder, ignore_errors=True)
            continue
        relpath = intent["relpath"] if intent else files[0].name
        leftovers.append(StagedFile(files[0], relpath, files[0].stat().st_size, folder))
    return leftovers


def unstage(staged: StagedFile) -> None:
    """Remove the emptied staging folder."""
    shutil.rmtree(staged.staging_dir, ignore_errors=True)
