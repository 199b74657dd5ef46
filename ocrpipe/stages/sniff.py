"""Tell a file's type by its first bytes, never by its name."""

from __future__ import annotations

from enum import Enum
from pathlib import Path


class Kind(str, Enum):
    PDF = "pdf"
    IMAGE = "image"
    ARCHIVE = "archive"


_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF87a", b"GIF89a",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xffO\xffQ",
)
# HEIC/HEIF (phones): an ISO box "ftyp" at offset 4, then one of these brands.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")
_ARCHIVE_MAGIC = (
    b"PK\x03\x04", b"PK\x05\x06", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x1f\x8b", b"BZh",
    b"\xfd7zXZ\x00",
)


def sniff_bytes(head: bytes) -> Kind | None:
    # Signatures at offset 0 first: a zip storing a PDF uncompressed has "%PDF-" in its first KiB too.
    if head.startswith(b"%PDF-"):
        return Kind.PDF
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or is_heif(head):
        return Kind.IMAGE
    if head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar":
        return Kind.ARCHIVE
    # Some scanners put junk before the header; PDF readers accept it within the first KiB.
    if b"%PDF-" in head[:1024]:
        return Kind.PDF
    return None


def is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def sniff(path: Path) -> Kind | None:
    with open(path, "rb") as handle:
        return sniff_bytes(handle.read(1024))
