"""Tool versions and Tesseract's languages remembered between starts, keyed by what identifies each binary.

A scheduled ``run --once`` every few minutes would otherwise ask every tool its version each time (LibreOffice
alone costs 0.1–0.2 CPU-s). An answer is reused only while the binary that gave it is the same file: its
resolved path, size, modification time and inode (and the files the command names, such as a script);
Tesseract's languages also while its tessdata folder and TESSDATA_PREFIX are unchanged. An answer older
than MAX_AGE_SECONDS is asked again, so an upgrade that replaces only a shared library is seen within a day.

The file lives in the index folder, which anyone who can write the data folder can write: it is read
without following a link or waiting on a FIFO, and anything in it that is not exactly what this module
writes makes the whole file count as absent (every tool is asked again). A file it cannot write is no
error: the next start asks again. What a forger can still do is claim another version for the very binary
installed; a writer of the data folder can rewrite the job index too, so this adds nothing new.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ocrpipe.folders.fsutil import atomic_write_json
from ocrpipe.folders.nofollow import is_real_dir, open_regular

CACHE_FILE = "tool-probes.json"
FORMAT = 1
MAX_FILE_BYTES = 256 * 1024
MAX_ENTRIES = 32
MAX_AGE_SECONDS = 24 * 3600.0
CLOCK_SLACK_SECONDS = 300.0  # an answer "from the future" within this is a clock step, not a forgery
MAX_TEXT = 4096
MAX_ITEMS = 256
MAX_LISTED = 10_000  # entries of a tessdata folder (a full tessdata_fast checkout has about 130)
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_LANGUAGE = re.compile(r"[A-Za-z_]+")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"version": {"probe", "command", "args", "identity", "probedAt", "result"},
           "languages": {"probe", "command", "args", "identity", "probedAt", "result", "folders"}}
log = logging.getLogger("ocrpipe.tools")

Key = tuple[str, tuple[str, ...], tuple[str, ...]]  # (probe, command, args)


def file_identity(path: str) -> list[Any] | None:
    """[resolved path, size, mtime in ns, inode] of a regular file (links resolved: a tool's own links are
    the system's, not the data folder's); None when there is no such file."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return [real, st.st_size, st.st_mtime_ns, st.st_ino]


def command_identity(command: Sequence[str], env: Mapping[str, str],
                     companions: Iterable[str] = ()) -> list[Any] | None:
    """What identifies the program a command runs: its executable as the tool's PATH resolves it, every
    argument that names a file (a script run by an interpreter), and ``companions`` beside the executable
    that carry the version (LibreOffice's ``versionrc``). None when the executable is not found."""
    if not command:
        return None
    found = shutil.which(command[0], path=env.get("PATH"))
    exe = file_identity(found) if found else None
    if exe is None:
        return None
    parts = [exe, *(file_identity(arg) for arg in command[1:] if os.path.isfile(arg))]
    folder = os.path.dirname(exe[0])
    parts += [file_identity(os.path.join(folder, name)) or [name] for name in companions]
    return parts


def folder_identity(folder: str) -> list[Any] | None:
    """A tessdata folder: its mtime and inode, and the names of the language files in it. A folder of more
    than MAX_LISTED entries is none (the path may come from a forged cache: no start lists a huge tree)."""
    try:
        st = os.stat(folder)
        if not stat.S_ISDIR(st.st_mode):
            return None
        with os.scandir(folder) as entries:
            names = []
            for n, entry in enumerate(entries):
                if n >= MAX_LISTED:
                    return None
                if entry.name.endswith(".traineddata"):
                    names.append(entry.name)
    except (OSError, ValueError):
        return None
    return [folder, st.st_mtime_ns, st.st_ino, sorted(names)]


def language_identity(tool: list[Any], env: Mapping[str, str], folders: list[str]) -> list[Any] | None:
    """Tesseract's binary, TESSDATA_PREFIX, and each tessdata folder it named with its language files."""
    listed = [folder_identity(f) for f in folders]
    if any(f is None for f in listed):
        return None
    return [tool, env.get("TESSDATA_PREFIX", ""), listed]


def listed_languages(folders: list[list[Any]]) -> set[str]:
    """The languages of the folders' ``<lang>.traineddata`` files, as ``--list-langs`` names them."""
    suffix = len(".traineddata")
    return {name[:-suffix] for folder in folders for name in folder[3] if _LANGUAGE.fullmatch(name[:-suffix])}


def digest(identity: Any) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ProbeCache:
    """The answers known so far: loaded from ``path`` (None: this run's memory only, as ``doctor`` wants
    none), added to by each probe, written back by ``save`` when something changed."""

    def __init__(self, path: Path | None = None, *, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self._now = now
        self._lock = threading.Lock()  # the version probes run in threads
        self._entries: dict[Key, dict[str, Any]] = load_entries(path, now()) if path is not None else {}
        self._changed = False
        self._this_run: dict[Key, Any] = {}  # asked in this run: not asked again, even when not kept
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_index(cls, index_dir: Path, *, trusted: bool) -> ProbeCache:
        """The cache in ``index_dir``; memory only when that folder, inside the data folder (``trusted``
        False), is a link: whatever it points to is not ocrpipe's to read or write."""
        if not trusted and os.path.lexists(index_dir) and not is_real_dir(index_dir):
            log.warning("%s is a link: tool versions are asked at every start", index_dir)
            return cls(None)
        return cls(index_dir / CACHE_FILE)

    def version(self, command: Sequence[str], args: Sequence[str], env: Mapping[str, str],
                probe: Callable[[], str | None], *, companions: Iterable[str] = ()) -> str | None:
        """The tool's version: remembered while its binary is the same, else ``probe()``d (and remembered
        when it answered)."""
        key: Key = ("version", tuple(command), tuple(args))
        if key in self._this_run:
            return self._this_run[key]
        identity = command_identity(command, env, companions)
        known = self._known(key, identity)
        version: str | None
        if known is not None:
            version = self._this_run[key] = str(known["result"])
            return version
        version = self._this_run[key] = probe()
        if identity is not None and version is not None:
            self._remember(key, identity, version)
        return version

    def languages(self, command: Sequence[str], env: Mapping[str, str],
                  probe: Callable[[], tuple[set[str] | None, list[str]]]) -> set[str] | None:
        """Tesseract's installed languages; ``probe`` returns them with the tessdata folder(s) it named.
        Remembered only when it named its folders: without them a new language could not be noticed."""
        key: Key = ("languages", tuple(command), ())
        if key in self._this_run:
            return None if self._this_run[key] is None else set(self._this_run[key])
        tool = command_identity(command, env)
        entry = self._entries.get(key)
        identity = None if tool is None or entry is None else language_identity(tool, env, entry["folders"])
        known = self._known(key, identity)
        if known is not None:
            self._this_run[key] = set(known["result"])
            return set(known["result"])
        installed, folders = probe()
        self._this_run[key] = installed
        identity = None if tool is None or not folders else language_identity(tool, env, folders)
        # Kept only when the folders hold just what Tesseract named: a language added while it was asked
        # would otherwise be missing from the answer for good.
        if identity is not None and installed and installed == listed_languages(identity[2]):
            self._remember(key, identity, sorted(installed), folders=folders)
        return installed

    def _known(self, key: Key, identity: list[Any] | None) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        hit = identity is not None and entry is not None and entry["identity"] == digest(identity)
        with self._lock:
            self.hits += hit
            self.misses += not hit
        return entry if hit else None

    def _remember(self, key: Key, identity: list[Any], result: Any, **extra: Any) -> None:
        """Kept only when the entry is one the next start accepts: else that start would drop them all."""
        now = self._now()
        entry = {"probe": key[0], "command": list(key[1]), "args": list(key[2]), "identity": digest(identity),
                 "probedAt": now, "result": result, **extra}
        try:
            _valid_entry(entry, now)
        except ValueError:
            return
        with self._lock:
            self._entries[key] = entry
            self._changed = True

    def save(self) -> None:
        """Write the answers back when a probe added one; a failure only costs the next start its probes."""
        if self.path is None or not self._changed:
            return
        newest = sorted(self._entries.values(), key=lambda e: e["probedAt"], reverse=True)[:MAX_ENTRIES]
        document = {"format": FORMAT, "machine": socket.gethostname(), "entries": newest}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, document, durable=False, pretty=True)  # lost: asked again, no harm
        except OSError as exc:
            log.debug("tool versions not remembered in %s: %s", self.path, exc)
            return
        self._changed = False


def load_entries(path: Path, now: float) -> dict[Key, dict[str, Any]]:
    """The valid entries of the cache file; none at all when anything in it is odd."""
    try:
        with open_regular(path) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ValueError("too big")
        document = json.loads(data.decode("utf-8"))
        return _valid_document(document, now)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nesting too deep for json
        log.info("tool versions are asked again: %s cannot be used (%s)", path, exc)
        return {}


def _valid_document(document: Any, now: float) -> dict[Key, dict[str, Any]]:
    if not isinstance(document, dict) or set(document) != {"format", "machine", "entries"}:
        raise ValueError("not a tool cache")
    if document["format"] != FORMAT or type(document["format"]) is not int:
        raise ValueError("another format")
    if document["machine"] != socket.gethostname():
        raise ValueError("written on another machine")
    entries = document["entries"]
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise ValueError("bad entries")
    found: dict[Key, dict[str, Any]] = {}
    for entry in entries:
        key = _valid_entry(entry, now)
        if key in found:
            raise ValueError("an entry twice")
        found[key] = entry
    # An old answer is no oddity: that one alone is asked again (and one not asked for a day, dropped).
    return {key: entry for key, entry in found.items() if entry["probedAt"] >= now - MAX_AGE_SECONDS}


def _valid_entry(entry: Any, now: float) -> Key:
    if not isinstance(entry, dict) or entry.get("probe") not in _FIELDS or set(entry) != _FIELDS[entry["probe"]]:
        raise ValueError("bad entry")
    command, args = _texts(entry["command"]), _texts(entry["args"])
    if not command or not isinstance(entry["identity"], str) or not _DIGEST.fullmatch(entry["identity"]):
        raise ValueError("bad entry")
    probed = entry["probedAt"]
    if type(probed) not in (int, float) or not 0 < probed <= now + CLOCK_SLACK_SECONDS:
        raise ValueError("an entry from the future")
    result = entry["result"]
    if entry["probe"] == "version":
        if not isinstance(result, str) or len(result) > 64 or not _VERSION.fullmatch(result):
            raise ValueError("bad version")
    else:
        languages = _texts(result)
        if not languages or not all(_LANGUAGE.fullmatch(lang) for lang in languages):
            raise ValueError("bad languages")
        folders = _texts(entry["folders"])
        if not folders or not all(os.path.isabs(f) for f in folders):
            raise ValueError("bad tessdata folders")
    return entry["probe"], tuple(command), tuple(args)


def _texts(value: Any) -> list[str]:
    """A list of short strings without NUL, else ValueError."""
    if (not isinstance(value, list) or len(value) > MAX_ITEMS
            or not all(isinstance(v, str) and len(v) <= MAX_TEXT and "\0" not in v for v in value)):
        raise ValueError("bad list of strings")
    return value
