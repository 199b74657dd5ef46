"""Watch ``in/`` by polling: ignore partial and system files, wait until a file is stable, stage it."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote_to_bytes

from ocrpipe.folders.fsutil import atomic_write_json
from ocrpipe.folders.layout import MAX_PATH_CHARS, long_path
from ocrpipe.folders.names import fit, name_bytes, readable_name
from ocrpipe.folders.nofollow import entry_is_link, identity, is_real_dir, is_regular, link_on_the_way, rename_into
from ocrpipe.folders.store import utc_now

log = logging.getLogger("ocrpipe.intake")

STAGING_DIR = ".ocrpipe-staging"
STAGED_JOURNAL = "staged"  # in index/: one intent per file ocrpipe staged
DEFAULT_MAX_DEPTH = 32  # levels of sub-folders of in/ entered (INTAKE_MAX_DEPTH)
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
    identity: tuple[int, int] | None = None  # (device, inode) when it was opened and found a regular file


@dataclass(frozen=True)
class StagedFile:
    path: Path
    relpath: str  # where it was dropped, relative to in/
    size: int
    staging_dir: Path | None  # only for paths too long to carry in the staged name
    intent: Path | None = None  # ocrpipe's own record that it staged this file (outside in/)

    @property
    def name(self) -> str:
        return PurePosixPath(self.relpath).name


def walk_inbox(in_dir: Path, max_depth: int = DEFAULT_MAX_DEPTH) -> Iterator[Candidate]:
    """Every file in in/ that ocrpipe would take, ignored names and our staging folder left out."""
    root = str(in_dir)
    for path, size, mtime_ns in _scan(root, max_depth):
        yield Candidate(Path(path), os.path.relpath(path, root).replace(os.sep, "/"), size, mtime_ns)


def _scan(folder: str, max_depth: int = DEFAULT_MAX_DEPTH,
          skipped: dict[str, str] | None = None) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime) of each regular file, plain strings since in/ may hold thousands of files.
    A loop, not a recursion: a folder nested a thousand levels deep is a drop like any other. Links
    are never followed; links, FIFOs, devices and folders deeper than ``max_depth`` go to ``skipped``
    (path → why)."""
    skipped = {} if skipped is None else skipped
    folders = [(folder, 0)]
    while folders:
        current, depth = folders.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError:
            continue  # a folder vanishing mid-scan is normal on a busy share
        for entry in entries:
            if is_ignored(entry.name):
                continue
            try:
                if entry_is_link(entry):
                    skipped[entry.path] = "link"
                elif entry.is_dir(follow_symlinks=False):
                    if depth < max_depth:
                        folders.append((entry.path, depth + 1))
                    else:
                        skipped[entry.path] = "deep"
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    yield entry.path, stat.st_size, stat.st_mtime_ns
                else:
                    skipped[entry.path] = "special"
            except OSError:
                continue


_SKIP_REASONS = {
    "link": "left in in/: %s is a link; ocrpipe never follows links in in/",
    "special": "left in in/: %s is not a regular file (a FIFO, device or socket)",
    "deep": "not entered: %s is deeper than INTAKE_MAX_DEPTH=%d; the files in it are not taken",
}


def _can_open(path: Path) -> tuple[int, int] | None:
    """The file's identity if it can be opened now: a regular file, not a link, not a FIFO (opened
    without blocking). On Windows a program still writing usually holds the file open without read
    sharing."""
    return identity(path)


class Intake:
    """Remembers each file's size and mtime across polls; hands out the ones that held still."""

    def __init__(self, in_dir: Path, stable_seconds: float, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.in_dir = in_dir
        self.stable_seconds = stable_seconds
        self.max_depth = max_depth
        self._reported: set[str] = set()  # what was skipped and said so: said once, not at every poll
        self._seen: dict[str, tuple[int, int, float]] = {}
        self.blocked: set[Path] = set()  # stable, but another program holds them
        self._set_aside: dict[str, tuple[int, int]] = {}  # could not be taken in: left alone while unchanged
        self.settles_at: float | None = None  # when the next file still settling has held still long enough

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
        skipped: dict[str, str] = {}
        for path, size, mtime_ns in _scan(str(self.in_dir), self.max_depth, skipped):
            if self._set_aside.get(path) == (size, mtime_ns):
                aside[path] = (size, mtime_ns)
                continue
            old_size, old_mtime, since = self._seen.get(path, (-1, -1, now))
            if (old_size, old_mtime) != (size, mtime_ns):
                since = now
                if old_size < 0 and log.isEnabledFor(logging.DEBUG):  # its wait starts now (bench/latencybench.py)
                    rel = os.path.relpath(path, self.in_dir).replace(os.sep, "/")
                    log.debug("seen in in/: %s", rel, extra={"file": rel})
            seen[path] = (size, mtime_ns, since)
            if now - since >= self.stable_seconds:
                stable.append((mtime_ns, path, size))
        self._seen, self._set_aside = seen, aside
        self.settles_at = min((since + self.stable_seconds for _, _, since in seen.values()
                               if now - since < self.stable_seconds), default=None)
        self.blocked = set()
        ready: list[Candidate] = []
        root = str(self.in_dir)
        for mtime_ns, path, size in sorted(stable):
            if limit is not None and len(ready) >= limit:
                break
            # Only for the files about to be taken, since opening costs: a file swapped for a FIFO or a
            # link since the listing is not taken, and a folder on its way swapped for a link neither.
            found = None if link_on_the_way(self.in_dir, Path(path)) else _can_open(Path(path))
            if found:
                ready.append(Candidate(Path(path), os.path.relpath(path, root).replace(os.sep, "/"), size, mtime_ns,
                                       found if isinstance(found, tuple) else None))
            else:
                self.blocked.add(Path(path))
        self._report(skipped)
        return ready

    def _report(self, skipped: dict[str, str]) -> None:
        for path, why in skipped.items():
            if path not in self._reported:
                rel = os.path.relpath(path, self.in_dir).replace(os.sep, "/")
                log.warning(_SKIP_REASONS[why], rel, *((self.max_depth,) if why == "deep" else ()))
        self._reported = set(skipped)

    def forget(self, path: Path) -> None:
        self._seen.pop(str(path), None)
        self.blocked.discard(path)

    def set_aside(self, candidate: Candidate) -> None:
        """The file could not be taken in nor moved to error/: not handed out again, nor counted as
        waiting (``run --once`` ends), until it changes."""
        self.forget(candidate.path)
        self._set_aside[str(candidate.path)] = (candidate.size, candidate.mtime_ns)


def stage(candidate: Candidate, in_dir: Path, journal: Path) -> StagedFile | None:
    """Take the file out of the scanner's sight by one rename; None if it cannot be taken now (another
    program holds it, it is gone, or it is no longer the regular file that was checked).

    ocrpipe's intent goes first, into ``journal``, which is outside in/ where droppers cannot write: the
    staged name and where the file came from. At a restart only what an intent names is taken from the
    staging folder. The staged name carries the relpath too (``<token>~<quoted relpath>``), for a person
    looking; a path too long for one name gets a folder.
    """
    root = _staging_root(in_dir)
    if root is None:
        return None
    token = uuid.uuid4().hex[:16]
    flat = f"{token}~{quote_relpath(candidate.relpath)}"
    in_folder = len(flat.encode("utf-8")) > MAX_FLAT_NAME or len(str(root / flat)) > MAX_PATH_CHARS
    # In a folder of its own the file keeps a readable form of its name (no bytes that are not UTF-8:
    # the name goes into the intent's JSON); where it came from is in the intent.
    folder, name = (root / token, fit(readable_name(candidate.path.name))) if in_folder else (root, flat)
    intent = journal / f"{token}.json"
    journal.mkdir(parents=True, exist_ok=True)
    raw = name_bytes(candidate.relpath)
    atomic_write_json(intent, {"staged": f"{token}/{name}" if in_folder else flat,
                               "relpath": readable_name(candidate.relpath), **({"relpathBytes": raw} if raw else {}),
                               "size": candidate.size, "mtimeNs": candidate.mtime_ns,
                               "identity": list(candidate.identity or ()), "stagedAt": utc_now()})
    target = long_path(folder / name) if in_folder else folder / name  # 34 characters deeper than in/ itself
    try:
        if in_folder:
            folder.mkdir()
        if link_on_the_way(in_dir, candidate.path):
            raise FileNotFoundError(str(candidate.path))  # a folder on its way was swapped for a link
        rename_into(candidate.path, target.parent, target.name)
    except OSError:  # locked by its writer (Windows), gone, or no longer reachable without a link
        _drop_intent(intent, folder if in_folder else None)
        return None
    staged = StagedFile(target, candidate.relpath, candidate.size, folder if in_folder else None, intent)
    if not _is_what_was_checked(target, candidate.identity):
        _put_back(staged, candidate.path)
        return None
    return staged


def quote_relpath(relpath: str) -> str:
    """``relpath`` as one name of ASCII characters; its bytes on disk, so a name that is not UTF-8 survives."""
    return quote(os.fsencode(relpath), safe="")


def unquote_relpath(quoted: str) -> str:
    return os.fsdecode(unquote_to_bytes(quoted))


_refused_roots: set[Path] = set()  # staging folders that are links, said once per process


def staging_refused(in_dir: Path) -> bool:
    """True while in/.ocrpipe-staging is there but is no folder of ours (a link, a file): nothing is staged."""
    root = in_dir / STAGING_DIR
    return os.path.lexists(root) and not is_real_dir(root)


def _staging_root(in_dir: Path) -> Path | None:
    """in/.ocrpipe-staging, made if missing; None while it is a link (or a file): nothing is staged then."""
    root = in_dir / STAGING_DIR
    try:
        root.mkdir()
    except FileExistsError:
        pass
    except OSError:
        return None
    if is_real_dir(root):
        _refused_roots.discard(root)
        return root
    if root not in _refused_roots:
        _refused_roots.add(root)
        log.error("nothing is taken from in/ while %s is a link or a file, not a folder: someone put it there; "
                  "remove it (ocrpipe never follows it nor deletes it)", root)
    return None


def _is_what_was_checked(path: Path, expected: tuple[int, int] | None) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return is_regular(st) and (expected is None or (st.st_dev, st.st_ino) == expected)


def _put_back(staged: StagedFile, origin: Path) -> None:
    """What the rename took was swapped in after the checks (a FIFO, a link, another file): back where
    it was, never over what is there now; left in the staging folder, said, if that is taken."""
    try:
        if not os.path.lexists(origin):
            os.rename(staged.path, origin)
    except OSError:
        pass
    left = os.path.lexists(staged.path)
    log.warning("not taken: %s changed while it was being taken in (a link, FIFO or another file)%s",
                staged.relpath, f"; left in {staged.path}" if left else "")
    if not left:
        _drop_intent(staged.intent, staged.staging_dir)


def _drop_intent(intent: Path | None, folder: Path | None) -> None:
    if folder is not None:
        try:
            os.rmdir(folder)  # only if empty: ocrpipe deletes only what it made
        except OSError:
            pass
    if intent is not None:
        intent.unlink(missing_ok=True)


def staged_leftovers(in_dir: Path, journal: Path) -> list[StagedFile]:
    """Files this ocrpipe staged and did not finish taking in (it crashed in between): only what an intent
    in ``journal`` names, and only a regular file there. Anything else in the staging folder was put there
    by someone else: left alone, said once."""
    root = in_dir / STAGING_DIR
    leftovers, ours = [], set()
    for intent in sorted(journal.glob("*.json")) if journal.is_dir() else []:
        staged = _from_intent(root, intent)
        ours.add(intent.stem)
        if staged is not None:
            leftovers.append(staged)
    if is_real_dir(root):
        with os.scandir(root) as entries:
            strangers = sorted(e.name for e in entries if e.name.split("~", 1)[0] not in ours)
        for name in strangers:
            log.warning("left alone: %s in %s was not put there by ocrpipe; it is not taken in (move it to in/ "
                        "to have it processed)", name, root)
    elif os.path.lexists(root):
        log.error("%s is a link or a file, not a folder: someone put it there; nothing is taken from it", root)
    return leftovers


def _from_intent(root: Path, intent: Path) -> StagedFile | None:
    """The staged file an intent names, if it is still the regular file ocrpipe put there."""
    token = intent.stem
    try:
        record = json.loads(intent.read_text(encoding="utf-8"))
        staged, relpath = record["staged"], record["relpath"]
        if record.get("relpathBytes"):  # a name that is not UTF-8: taken in under its own bytes again
            relpath = unquote_relpath(record["relpathBytes"])
        size, mtime_ns, ident = record["size"], record["mtimeNs"], tuple(record.get("identity") or ())
    except (OSError, ValueError, KeyError, TypeError):
        intent.unlink(missing_ok=True)  # our own file, written atomically: only a disk fault spoils it
        return None
    in_folder = staged.startswith(f"{token}/")
    if not (in_folder or staged.startswith(f"{token}~")) or staged.count("/") > int(in_folder):
        intent.unlink(missing_ok=True)
        return None
    folder = root / token if in_folder else None
    path = root / staged
    if not is_real_dir(root) or (folder is not None and not is_real_dir(folder)):
        st = None  # swapped for a link: nothing is taken through it
    else:
        try:
            st = os.lstat(path)
        except OSError:  # crashed before the rename, or after the file moved on: nothing to take
            _drop_intent(intent, folder)
            return None
    if st is None or not is_regular(st) or not (tuple(ident) == (st.st_dev, st.st_ino)
                                                or (size, mtime_ns) == (st.st_size, st.st_mtime_ns)):
        log.warning("not taken: %s in the staging folder is no longer the file ocrpipe staged there (from %s)",
                    staged, relpath)
        intent.unlink(missing_ok=True)
        return None
    return StagedFile(path, relpath, st.st_size, folder, intent)


def unstage(staged: StagedFile) -> None:
    """The file has moved on: its emptied staging folder and ocrpipe's intent go."""
    _drop_intent(staged.intent, staged.staging_dir)
