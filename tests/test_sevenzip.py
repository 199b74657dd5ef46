"""7-Zip listing parser and the archive safety checks."""

from __future__ import annotations

import pytest

from ocrpipe.errors import Code, PermanentError
from ocrpipe.tools.run import ToolResult
from ocrpipe.tools.sevenzip import (
    ArchiveEntry, ArchiveLimits, check_entries, extract_error, parse_listing, unsafe_member,
)

LISTING = """
7-Zip [64] 16.02 : Copyright (c) 1999-2016 Igor Pavlov : 2016-05-21

Listing archive: scans.zip

--
Path = scans.zip
Type = zip
Physical Size = 545

----------
Path = Scans 2024
Folder = +
Size = 0
Attributes = D drwxr-xr-x
Encrypted = -

Path = Scans 2024/page10.tif
Folder = -
Size = 1200
Attributes =  -rw-r--r--
Encrypted = -

Path = link
Folder = -
Size = 0
Attributes =  lrwxrwxrwx
Encrypted = -
"""


def entry(path: str, size: int = 10, *, encrypted: bool = False, link: str = "") -> ArchiveEntry:
    return ArchiveEntry(path, size, False, encrypted, bool(link), link)


def test_parse_listing() -> None:
    entries = parse_listing(LISTING)
    assert [(e.path, e.size, e.is_dir, e.is_link) for e in entries] == [
        ("Scans 2024", 0, True, False), ("Scans 2024/page10.tif", 1200, False, False), ("link", 0, False, True)]


@pytest.mark.parametrize("path", ["../evil.txt", "a/../../evil", "/etc/passwd", "..\\..\\Temp\\evil.txt",
                                  "C:\\Windows\\evil.dll", "c:/x"])
def test_unsafe_members(path: str) -> None:
    assert unsafe_member(path)


@pytest.mark.parametrize("path", ["scan.pdf", "a/b/c.tif", "..hidden..name.pdf", "Scans 2024/ü.png"])
def test_safe_members(path: str) -> None:
    assert not unsafe_member(path)


LIMITS = ArchiveLimits(max_members=3, max_bytes=1000)


def test_check_entries_refuses_hostile_and_oversized_archives() -> None:
    check_entries([entry("a.pdf"), entry("b.pdf")], LIMITS)
    with pytest.raises(PermanentError, match="archive refused: member '../x' points outside"):
        check_entries([entry("a.pdf"), entry("../x")], LIMITS)
    with pytest.raises(PermanentError, match="points outside"):
        check_entries([entry("l", link="/etc/passwd")], LIMITS)
    with pytest.raises(PermanentError, match="password-protected"):
        check_entries([entry("a.pdf", encrypted=True)], LIMITS)
    with pytest.raises(PermanentError, match="4 files, more than the limit of 3") as refused:
        check_entries([entry(f"{n}.pdf") for n in range(4)], LIMITS)
    assert refused.value.code is Code.ARCHIVE_BOMB
    with pytest.raises(PermanentError, match="archive bomb refused: it unpacks to .*MAX_ARCHIVE_MB"):
        check_entries([entry("bomb.tif", size=10_000)], LIMITS)


@pytest.mark.parametrize(("entries", "code"), [
    ([entry("../x")], Code.ARCHIVE_UNSAFE_PATH), ([entry("a", encrypted=True)], Code.ARCHIVE_PASSWORD),
    ([entry(f"{n}") for n in range(4)], Code.ARCHIVE_BOMB),
])
def test_each_refusal_has_its_code(entries: list[ArchiveEntry], code: Code) -> None:
    with pytest.raises(PermanentError) as refused:
        check_entries(entries, LIMITS)
    assert refused.value.code is code and not refused.value.transient


def test_ratio_is_checked_from_the_listing_above_a_floor() -> None:
    limits = ArchiveLimits(max_members=10, max_bytes=2**40, max_ratio=200)
    check_entries([entry("blank.pdf", size=10 * 2**20)], limits, packed=1000)  # under the floor: harmless
    check_entries([entry("scan.tif", size=200 * 2**20)], limits, packed=2**20)  # exactly 200:1
    with pytest.raises(PermanentError, match=r"more than 200 times its size \(MAX_ARCHIVE_RATIO\)") as refused:
        check_entries([entry("zeros.tif", size=201 * 2**20)], limits, packed=2**20)
    assert refused.value.code is Code.ARCHIVE_BOMB


@pytest.mark.parametrize(("stderr", "code", "transient"), [
    ("ERROR: x.odt : Can not open the file as archive", Code.ARCHIVE_DAMAGED, False),
    ("ERROR: x.zip\nx.zip\nOpen ERROR: Can not open the file as [zip] archive\nIs not archive", Code.ARCHIVE_DAMAGED,
     False),
    ("ERROR: Unsupported Method : page.tif", Code.ARCHIVE_DAMAGED, False),
    ("ERROR: Wrong password : page.tif", Code.ARCHIVE_PASSWORD, False),
    ("ERROR: something nobody has seen", Code.TOOL_FAILED, True),
])
def test_seven_zip_diagnosis_decides_the_class(stderr: str, code: Code, transient: bool) -> None:
    error = extract_error(ToolResult(2, "", stderr, 0.1), "read")
    assert error is not None and error.code is code and error.transient is transient
