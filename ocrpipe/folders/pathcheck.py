"""Job keys and names read from files under the data folder, checked before they become paths: anyone who
can drop files can write those files too (status.json, sidecars, decision.json, state.json, heartbeats)."""

from __future__ import annotations

import re
from pathlib import Path

from ocrpipe.folders.names import MAX_NAME_BYTES

_JOB_KEY = re.compile(r"[0-9a-f]{64}__[0-9a-f]{64}")
# Separators of every OS, NUL, and the drive colon ("C:x" joined on Windows leaves the folder; "x:y" is
# an alternate data stream on NTFS).
_NOT_IN_A_NAME = re.compile(r"[/\\:\x00]")


class UnsafePath(ValueError):
    """A key or name read from a file would lead outside its folder, or is not shaped as ocrpipe writes
    it: nothing is done with it. A ValueError, as for a file that cannot be parsed. Pickles (one argument)."""


def is_job_key(value: object) -> bool:
    """``<sha256 of the file>__<sha256 of the profile>``, in lowercase hex, as ocrpipe makes them."""
    return isinstance(value, str) and _JOB_KEY.fullmatch(value) is not None


def check_job_key(value: object, *, what: str = "job key") -> str:
    if not is_job_key(value):
        raise UnsafePath(f"{what} {_shown(value)} is not a job key (<64 hex>__<64 hex>)")
    assert isinstance(value, str)
    return value


def check_name(value: object, *, what: str = "file name") -> str:
    """One name inside a folder: no separator, not ``.``, ``..`` or empty, within the length limit."""
    # Only dots and spaces: Windows trims trailing ones, so "... " may name the folder or its parent.
    if not isinstance(value, str) or not value.strip(". ") or _NOT_IN_A_NAME.search(value):
        raise UnsafePath(f"{what} {_shown(value)} is not a single file name")
    if len(value.encode("utf-8", errors="surrogateescape")) > MAX_NAME_BYTES:
        raise UnsafePath(f"{what} {_shown(value)} is longer than {MAX_NAME_BYTES} bytes")
    return value


def child_path(folder: Path, *names: object, what: str = "file name") -> Path:
    """``folder/name/…``, each name checked by :func:`check_name`: the path stays inside ``folder``."""
    if not names:
        raise UnsafePath(f"{what}: no name given")
    path = folder.joinpath(*(check_name(n, what=what) for n in names))
    if path.parents[len(names) - 1] != folder:  # a last guard: the join did not replace the folder
        raise UnsafePath(f"{what} {_shown('/'.join(map(str, names)))} leads outside {folder}")
    return path


def _shown(value: object) -> str:
    """The value for a message: short (a hostile file may hold megabytes), control characters escaped."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
