"""Office documents and e-mail told by their content, never by their name: OOXML and OpenDocument by their
zip members, the old binary formats (and Outlook's .msg) by their OLE streams, RTF by its header, an e-mail
by its header lines. Every read is bounded: the file may be hostile, and admission reads it in the scheduler.
"""

from __future__ import annotations

import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
MAX_ZIP_DIRECTORY = 8 * 2**20  # bytes of a zip's central directory read to find its members
MAX_ZIP_MEMBERS = 20_000
MAX_OLE_DIRECTORY_SECTORS = 4096  # a document's directory holds a few dozen entries: this is plenty
MAX_MANIFEST = 2**20
HEAD_BYTES = 8192

# OpenDocument's mimetype member -> the extension LibreOffice is given (it also reads the content).
_ODF_TYPES = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/vnd.oasis.opendocument.graphics": "odg",
    "application/vnd.oasis.opendocument.text-template": "ott",
    "application/vnd.oasis.opendocument.spreadsheet-template": "ots",
    "application/vnd.oasis.opendocument.presentation-template": "otp",
}
_OOXML_PARTS = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))
# The stream that names each binary Office format inside its OLE file.
_OLE_STREAMS = (("WordDocument", "doc"), ("Workbook", "xls"), ("Book", "xls"), ("PowerPoint Document", "ppt"))
# An e-mail starts with header lines; these make it one (a text file starting "Subject:" alone does not).
_MAIL_HEADERS = frozenset({"from", "to", "cc", "date", "subject", "message-id", "mime-version", "received",
                           "return-path", "reply-to", "sender", "delivered-to", "content-type", "x-mailer"})
_HEADER_LINE = re.compile(rb"([A-Za-z0-9][A-Za-z0-9-]{0,76}):[ \t]?")


@dataclass(frozen=True)
class DocType:
    """What a file is: ``kind`` "office", "email" or "msg"; ``ext`` the extension its converter expects;
    ``encrypted``: it needs a password to open."""

    kind: str
    ext: str
    encrypted: bool = False


def detect(path: Path) -> DocType | None:
    """The Office document or e-mail ``path`` holds, or None (a PDF, an image, an archive, anything else)."""
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
        if head.startswith(ZIP_MAGIC):
            return _zip_type(path)
        if head.startswith(OLE_MAGIC):
            return _ole_type(handle)
    if head.startswith(b"{\\rtf"):
        return DocType("office", "rtf")
    if looks_like_email(head):
        return DocType("email", "eml")
    return None


def looks_like_email(head: bytes) -> bool:
    """Header lines from the first line on, at least three of them known e-mail headers, From or Received
    or Message-ID among them (an mbox's "From " line first is accepted)."""
    lines = head.split(b"\n")
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    known: set[str] = set()
    for line in lines[:200]:
        line = line.rstrip(b"\r")
        if not line:
            break  # the end of the header block
        if line[:1] in (b" ", b"\t"):
            continue  # a folded header's next line
        match = _HEADER_LINE.match(line)
        if match is None:
            return False
        name = match.group(1).decode("ascii").lower()
        if name in _MAIL_HEADERS:
            known.add(name)
    return len(known) >= 3 and bool(known & {"from", "received", "message-id"})


# ----- zip: OOXML and OpenDocument ------------------------------------------------------------------


def _zip_directory_bounded(path: Path) -> bool:
    """The zip's central directory is small enough to read (its end record says so): a hostile zip
    must not make the scheduler read gigabytes to learn it is no Office document."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 65_557))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return False
    _, _, _, members, directory_size, _ = struct.unpack("<HHHHII", tail[at + 4:at + 20])
    if members == 0xFFFF or directory_size == 0xFFFFFFFF:
        return False  # ZIP64: far larger than any Office document we convert
    return members <= MAX_ZIP_MEMBERS and directory_size <= MAX_ZIP_DIRECTORY


def _zip_type(path: Path) -> DocType | None:
    if not _zip_directory_bounded(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and "META-INF/manifest.xml" in names:
                mimetype = _read_member(archive, "mimetype", 200).decode("ascii", "replace").strip()
                ext = _ODF_TYPES.get(mimetype)
                if ext is None:
                    return None
                manifest = _read_member(archive, "META-INF/manifest.xml", MAX_MANIFEST)
                return DocType("office", ext, encrypted=b"encryption-data" in manifest)
            if "[Content_Types].xml" in names:
                for prefix, ext in _OOXML_PARTS:
                    if any(name.startswith(prefix) for name in names):
                        return DocType("office", ext)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None
    return None


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    with archive.open(name) as member:
        return member.read(limit)


# ----- OLE: .doc, .xls, .ppt, encrypted OOXML, Outlook .msg ---------------------------------------


def _ole_type(handle: BinaryIO) -> DocType | None:
    try:
        entries = ole_entries(handle)
    except (OSError, ValueError, struct.error):
        return None
    names = {name for name, _ in entries}
    if "EncryptedPackage" in names:  # an OOXML file saved with a password to open: wrapped in OLE
        return DocType("office", "docx", encrypted=True)
    if any(name.startswith("__substg1.0_") for name in names):
        return DocType("msg", "msg")
    for stream, ext in _OLE_STREAMS:
        if stream in names:
            first = dict(entries)[stream]
            return DocType("office", ext, encrypted=_binary_encrypted(handle, ext, first, names))
    return None


class _Ole:
    """Just enough of the Compound File format (MS-CFB) to list the directory and read a first sector."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        handle.seek(0)
        header = handle.read(512)
        if len(header) < 512 or not header.startswith(OLE_MAGIC):
            raise ValueError("not an OLE file")
        self.sector = 1 << struct.unpack_from("<H", header, 0x1E)[0]
        if self.sector not in (512, 4096):
            raise ValueError("odd sector size")
        fat_sectors = struct.unpack_from("<I", header, 0x2C)[0]
        self.first_dir = struct.unpack_from("<I", header, 0x30)[0]
        difat = list(struct.unpack_from("<109I", header, 0x4C))
        next_difat, difat_count = struct.unpack_from("<II", header, 0x44)
        per_sector = self.sector // 4
        for _ in range(min(difat_count, 1024)):
            if next_difat >= 0xFFFFFFFA:
                break
            block = struct.unpack(f"<{per_sector}I", self.read_sector(next_difat))
            difat += block[:-1]
            next_difat = block[-1]
        self.fat: list[int] = []
        for sector in difat[:min(fat_sectors, 8192)]:
            if sector >= 0xFFFFFFFA:
                break
            self.fat += struct.unpack(f"<{per_sector}I", self.read_sector(sector))

    def read_sector(self, number: int) -> bytes:
        self.handle.seek((number + 1) * self.sector)
        data = self.handle.read(self.sector)
        if len(data) < self.sector:
            raise ValueError("truncated OLE file")
        return data

    def directory(self) -> list[tuple[str, int]]:
        """(name, first sector) of every stream and storage."""
        found, sector, seen = [], self.first_dir, 0
        while sector < 0xFFFFFFFA and seen < MAX_OLE_DIRECTORY_SECTORS:
            data = self.read_sector(sector)
            for at in range(0, self.sector, 128):
                length = struct.unpack_from("<H", data, at + 0x40)[0]
                if 2 <= length <= 64 and data[at + 0x42] in (1, 2):  # a storage or a stream
                    name = data[at:at + length - 2].decode("utf-16-le", "replace")
                    found.append((name, struct.unpack_from("<I", data, at + 0x74)[0]))
            seen += 1
            sector = self.fat[sector] if sector < len(self.fat) else 0xFFFFFFFE
        return found


def ole_entries(handle: BinaryIO) -> list[tuple[str, int]]:
    return _Ole(handle).directory()


def _binary_encrypted(handle: BinaryIO, ext: str, first: int, names: set[str]) -> bool:
    """A password to open, as each binary format records it: Word's FIB flag fEncrypted, Excel's
    FILEPASS record right after the workbook's BOF, PowerPoint's EncryptedSummary stream."""
    if ext == "ppt":
        return "EncryptedSummary" in names
    try:
        data = _Ole(handle).read_sector(first)
    except (OSError, ValueError, struct.error):
        return False
    if ext == "doc":
        return bool(struct.unpack_from("<H", data, 0x0A)[0] & 0x0100)
    # xls: BOF (0x0809) first; a FILEPASS (0x002F) record follows it when the workbook is encrypted.
    kind, length = struct.unpack_from("<HH", data, 0)
    if kind != 0x0809 or 4 + length + 4 > len(data):
        return False
    return struct.unpack_from("<H", data, 4 + length)[0] == 0x002F
