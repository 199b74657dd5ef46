"""Names every target file system accepts (Windows' rules are the strictest), whatever the input was called."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path, PurePosixPath

MAX_NAME_BYTES = 255  # one name, in UTF-8 bytes: ext4's limit; NTFS allows 255 UTF-16 units, which is more
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)),
                       *(f"LPT{n}" for n in range(1, 10)), "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"})
_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')


def safe_name(name: str) -> str:
    """``name`` as one name that Windows, macOS and Linux all accept, as close to it as can be:
    NFC, forbidden characters as ``_``, no trailing dots or spaces, a reserved device name
    (``CON``, ``NUL.txt``, ``com1.tar.gz``…) prefixed with ``_``, and at most 255 bytes."""
    name = _FORBIDDEN.sub("_", unicodedata.normalize("NFC", name)).rstrip(". ")
    if not name:
        return "_"
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        name = "_" + name
    return fit(name)


def fit(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """Shorten the stem (never the extension) until the name fits in ``limit`` bytes."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    if len((dot + suffix).encode("utf-8")) > limit // 2:  # no real extension: a long name with a dot in it
        stem, dot, suffix = name, "", ""
    room = limit - len((dot + suffix).encode("utf-8"))
    stem = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore").rstrip(". ")
    return f"{stem or '_'}{dot}{suffix}"


def safe_relpath(relpath: str) -> PurePosixPath:
    """Every part of a relative path made safe (the sub-folders of in/ are mirrored in out/ and archive/)."""
    return PurePosixPath(*(safe_name(part) for part in PurePosixPath(relpath).parts))

