"""Names every target file system accepts (Windows' rules are the strictest), whatever the input was called."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import PurePosixPath
from urllib.parse import quote

MAX_NAME_BYTES = 255  # one name, in UTF-8 bytes: ext4's limit; NTFS allows 255 UTF-16 units, which is more
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)),
                       *(f"LPT{n}" for n in range(1, 10)), "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"})
_FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE_BYTE = 0xDC00  # Python reads an undecodable byte b of a name as the lone surrogate U+DC00 + b
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def safe_name(name: str) -> str:
    """``name`` as one name that Windows, macOS and Linux all accept, as close to it as can be: valid
    Unicode (:func:`readable_name`), NFC, forbidden characters as ``_``, no trailing dots or spaces, a
    reserved device name (``CON``, ``NUL.txt``, ``com1.tar.gz``…) prefixed with ``_``, and at most 255 bytes."""
    name = _FORBIDDEN.sub("_", unicodedata.normalize("NFC", readable_name(name))).rstrip(". ")
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



def readable_name(name: str) -> str:
    """``name`` as valid Unicode. A byte that was not UTF-8 (Python keeps it as a lone surrogate) is read
    as Windows-1252, what such names almost always are (an old Samba share, a USB stick written on
    Windows): ``caf\\xe9.pdf`` is ``café.pdf``. A byte Windows-1252 has no character for, and a lone
    surrogate that stands for no byte, become ``_``. A valid name is returned as it is."""
    return _LONE_SURROGATE.sub(_byte_as_cp1252, name)


def _byte_as_cp1252(match: re.Match[str]) -> str:
    code = ord(match.group()) - _ESCAPE_BYTE
    if not 0x80 <= code <= 0xFF:
        return "_"
    try:
        return bytes([code]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D
        return "_"


def name_bytes(relpath: str) -> str | None:
    """The bytes of a name that is not valid UTF-8, as it was on disk, percent-escaped (``caf%E9.pdf``;
    ``urllib.parse.unquote_to_bytes`` gives them back); None for a valid name."""
    if _LONE_SURROGATE.search(relpath) is None:
        return None
    return quote(os.fsencode(relpath), safe=_PRINTABLE_ASCII)
