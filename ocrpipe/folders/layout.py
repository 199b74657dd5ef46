"""Short names for ocrpipe's own folders, so that its paths fit in Windows' 260 characters.

A job key is 130 characters (two SHA-256 digests); a folder named after it left an 80-character data
folder no room for the tools' temp files (284 characters measured). Job, error and hold folders are
named by a 25-character prefix of the key instead; the full key stays in state.json, error.json,
status.json and the job index. Folders named by the full key (data folders made before, or the
unlikely second key with the same prefix) keep working: lookups try both.
"""

from __future__ import annotations

import ntpath
import os
import re
from pathlib import Path, PurePath
from typing import TypeVar

from ocrpipe.folders.fsutil import read_json
from ocrpipe.folders.nofollow import is_real_dir

# MAX_PATH is 260 with the terminating NUL: a path holds at most 259 characters, and CreateDirectory
# keeps room for an 8.3 file name, so a folder at most 247.
MAX_PATH_CHARS = 259
MAX_FOLDER_CHARS = 247
# The data folder the layout is budgeted for: a OneDrive folder such as
# C:\Users\firstname.lastname\OneDrive - Company\Documents\ocrpipe\data
DATA_FOLDER_BUDGET = 80
FILE_HASH_CHARS, PROFILE_HASH_CHARS = 16, 8
INPUT_STEM = "original"
RAW_PDF = "raw.pdf"  # what PREP assembles in a job folder
FINAL_PDF = "final.pdf"  # what OCR makes of it
TMP_DIR = "tmp"  # a stage's scratch folder inside the job folder
MAX_SUFFIX = " (99)"  # room left for a free-name suffix
IS_WINDOWS = os.name == "nt"
P = TypeVar("P", bound=PurePath)


def short_name(job_key: str) -> str:
    """``<16 hex of the file hash>_<8 hex of the profile hash>``: 2^96 keys apart, 25 characters."""
    file_hash, _, profile_hash = job_key.partition("__")
    return f"{file_hash[:FILE_HASH_CHARS]}_{profile_hash[:PROFILE_HASH_CHARS]}"


_JOB_FOLDER_NAME = re.compile(r"[0-9a-f]{16}_[0-9a-f]{8}|[0-9a-f]{64}__[0-9a-f]{64}")


def is_job_folder_name(name: str) -> bool:
    """Named as ocrpipe names a job's folder: a short name, or a full key (older data folders)."""
    return _JOB_FOLDER_NAME.fullmatch(name) is not None


def _key_in(folder: Path, record_file: str) -> str | None:
    try:
        key = read_json(folder / record_file).get("jobKey")  # never through a link, never waiting on a FIFO
    except (OSError, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def folder_for(parent: Path, job_key: str, record_file: str) -> Path:
    """The folder of ``job_key`` under ``parent``: the short name, unless another key already holds it
    (its ``record_file`` says so) or the key's folder of an older layout exists. A link planted under
    either name is never the key's folder: what it points to is not ocrpipe's to read or write."""
    legacy = parent / job_key
    if is_real_dir(legacy):
        return legacy
    short = parent / short_name(job_key)
    if os.path.lexists(short) and not is_real_dir(short):
        return legacy
    if short.is_dir() and _key_in(short, record_file) not in (None, job_key):
        return legacy
    return short


def find_folder(parent: Path, job_key: str, record_file: str) -> Path | None:
    """The existing folder of ``job_key`` (short or full name), or None."""
    for folder in (parent / short_name(job_key), parent / job_key):
        if is_real_dir(folder) and _key_in(folder, record_file) == job_key:
            return folder
    return None


def input_name(source_name: str) -> str:
    """A job's copy of its original, ``original.<ext>``: the name people gave it can be 200 characters
    long; it stays in state.json and names the output and the archived file."""
    suffix = PurePath(source_name).suffix
    return INPUT_STEM + (suffix if 1 < len(suffix) <= 10 and suffix.isascii() else "")


def fit_name(folder: PurePath, name: str, *, limit: int = MAX_PATH_CHARS) -> str:
    """``name``, its stem cut short so that ``folder/name`` (with room for a free-name suffix) stays
    within ``limit``; for names ocrpipe chooses (held and failed files), whose original is recorded."""
    room = limit - len(str(folder)) - 1 - len(MAX_SUFFIX)
    if len(name) <= room:
        return name
    suffix = PurePath(name).suffix if len(PurePath(name).suffix) <= 10 else ""
    stem = name[: len(name) - len(suffix)]
    keep = max(1, room - len(suffix) - 1)
    return stem[:keep].rstrip(" .") + "~" + suffix


def long_path(path: P, *, windows: bool = IS_WINDOWS, always: bool = False) -> P:
    """``path`` in the form Windows opens beyond MAX_PATH (``\\\\?\\C:\\…``, ``\\\\?\\UNC\\server\\…``), for
    places whose depth is the user's (out/ and archive/ mirror in/'s sub-folders, an archive's own
    folders); unchanged elsewhere, and on Windows while it fits, unless ``always`` (a folder whose
    contents may go deeper than it)."""
    text = str(path)
    if not windows or text.startswith("\\\\?\\") or (len(text) <= MAX_FOLDER_CHARS and not always):
        return path
    text = ntpath.normpath(ntpath.abspath(text)) if ntpath.isabs(text) else text
    if text.startswith("\\\\"):
        return type(path)("\\\\?\\UNC\\" + text[2:])
    return type(path)("\\\\?\\" + text)


def plain_path(path: PurePath) -> str:
    """The path as people read it: without the ``\\\\?\\`` prefix of :func:`long_path`."""
    text = str(path)
    if text.startswith("\\\\?\\UNC\\"):
        return "\\\\" + text[8:]
    return text[4:] if text.startswith("\\\\?\\") else text
