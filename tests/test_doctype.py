"""Office documents and e-mails told by their content, whatever their names: the formats the CONVERT stage
takes, the password-protected ones, and the look-alikes it must leave to PREP (a zip of scans, a text file)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ocrpipe.stages.doctype import DocType, detect, looks_like_email
import officeinputs as oi
from inputs import zip_of


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: oi.odt(p, ["zebra"]), DocType("office", "odt")),
    (lambda p: oi.ods(p, [["zebra"]]), DocType("office", "ods")),
    (lambda p: oi.odp(p, ["zebra"]), DocType("office", "odp")),
    (lambda p: oi.docx(p, ["zebra"]), DocType("office", "docx")),
    (lambda p: oi.xlsx(p, [["zebra"]]), DocType("office", "xlsx")),
    (lambda p: oi.rtf(p, ["zebra"]), DocType("office", "rtf")),
    (lambda p: oi.ole(p, ["WordDocument"]), DocType("office", "doc")),
    (lambda p: oi.ole(p, ["Workbook"], first_sector=struct.pack("<HH", 0x0809, 16) + bytes(16)),
     DocType("office", "xls")),
    (lambda p: oi.ole(p, ["PowerPoint Document", "Current User"]), DocType("office", "ppt")),
    (lambda p: oi.ole(p, ["__substg1.0_0037001F", "__properties_version1.0"]), DocType("msg", "msg")),
    (lambda p: oi.eml(p, subject="Hi", sender=("A", "a@example.com"), to=[("B", "b@example.com")], text="x"),
     DocType("email", "eml")),
])
def test_told_by_content_under_any_name(tmp_path: Path, make, expected: DocType) -> None:
    path = make(tmp_path / "dropped.bin")  # the name says nothing
    assert detect(path) == expected


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: oi.odt(p, ["zebra"], encrypted=True), DocType("office", "odt", encrypted=True)),
    (lambda p: oi.ole(p, ["EncryptionInfo", "EncryptedPackage"]), DocType("office", "docx", encrypted=True)),
    # Word's FIB: the flags word at offset 0x0A carries fEncrypted (0x0100)
    (lambda p: oi.ole(p, ["WordDocument"], first_sector=bytes(10) + struct.pack("<H", 0x0100)),
     DocType("office", "doc", encrypted=True)),
    # Excel: a FILEPASS record (0x002F) right after the workbook's BOF
    (lambda p: oi.ole(p, ["Workbook"], first_sector=struct.pack("<HH", 0x0809, 16) + bytes(16)
                      + struct.pack("<HH", 0x002F, 4)), DocType("office", "xls", encrypted=True)),
    (lambda p: oi.ole(p, ["PowerPoint Document", "EncryptedSummary"]), DocType("office", "ppt", encrypted=True)),
])
def test_password_protected_documents_are_told(tmp_path: Path, make, expected: DocType) -> None:
    assert detect(make(tmp_path / "locked")) == expected


def test_look_alikes_are_left_to_prep(tmp_path: Path) -> None:
    scans = zip_of(tmp_path / "scans.zip", {"page1.pdf": b"%PDF-1.4 x", "content.xml": b"<x/>"})
    notes = tmp_path / "notes.txt"
    notes.write_text("Subject: not a mail\nJust some notes\n")
    broken_ole = tmp_path / "broken.doc"
    broken_ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    for path in (scans, notes, broken_ole):
        assert detect(path) is None, path


def test_an_email_needs_real_header_lines() -> None:
    assert looks_like_email(b"From: a@b\r\nTo: c@d\r\nSubject: x\r\n\r\nbody")
    assert looks_like_email(b"From someone Tue Dec 3\nReceived: x\nMessage-ID: <1@x>\nDate: y\n\nbody")
    assert not looks_like_email(b"To: c@d\nSubject: x\nDate: y\n\nno sender, no trace")  # two more than a note
    assert not looks_like_email(b"%PDF-1.7\nFrom: a\n")
    assert not looks_like_email(b"From: a@b\nTo: c@d\nthis line is no header\nSubject: x\n\n")


def test_a_zip_whose_directory_is_huge_is_not_read(tmp_path: Path) -> None:
    """A hostile zip's end record declaring a giant central directory: not read, not taken as Office."""
    path = oi.docx(tmp_path / "big.docx", ["zebra"])
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, at + 12, 500 * 2**20)
    path.write_bytes(bytes(data))
    assert detect(path) is None
