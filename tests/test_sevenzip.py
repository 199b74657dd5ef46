"""7-Zip listing parser and the archive safety checks."""

from __future__ import annotations

import pytest

from ocrpipe.errors import PermanentError
from ocrpipe.tools.sevenzip import ArchiveEntry, ArchiveLimits, check_entries, parse_listing, unsafe_member

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
    with pytest.raises(PermanentError, match="4 files, more than the limit of 3"):
        check_entries([entry(f"{n}.pdf") for n in range(4)], LIMITS)
    with pytest.raises(PermanentError, match="archive refused: it unpacks to"):
        check_entries([entry("bomb.tif", size=10_000)], LIMITS)
