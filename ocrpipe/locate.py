"""Find a tool on PATH or, on Windows, in the folder its installer uses."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

# Where the usual Windows installers put each tool; globs, since versions are in the folder names.
_WINDOWS_GLOBS: dict[str, tuple[str, ...]] = {
    "7z": ("7-Zip/7z.exe",),
    "tesseract": ("Tesseract-OCR/tesseract.exe",),
    "gs": ("gs/gs*/bin/gswin64c.exe", "gs/gs*/bin/gswin32c.exe"),
    "soffice": ("LibreOffice/program/soffice.exe", "LibreOffice*/program/soffice.exe"),
}
_PATH_NAMES: dict[str, tuple[str, ...]] = {
    "7z": ("7z", "7za", "7zz"),
    "gs": ("gs", "gswin64c", "gswin32c"),
    "soffice": ("soffice", "libreoffice"),
}


def _version_key(path: Path) -> tuple[int, ...]:
    """``gs10.02.1`` after ``gs9.56.1``: compare the numbers in the path, not the text."""
    return tuple(int(n) for n in re.findall(r"\d+", str(path)))


def _program_files(environ: Mapping[str, str]) -> list[Path]:
    names = ("ProgramFiles", "ProgramW6432", "ProgramFiles(x86)")
    roots = [Path(environ[n]) for n in names if environ.get(n)]
    return roots or [Path(r"C:\Program Files"), Path(r"C:\Program Files (x86)")]


def find_tool(name: str, *, environ: Mapping[str, str], windows: bool | None = None) -> str | None:
    """Absolute path of the tool, or None when it is nowhere we know to look."""
    windows = sys.platform == "win32" if windows is None else windows
    for candidate in _PATH_NAMES.get(name, (name,)):
        found = shutil.which(candidate, path=environ.get("PATH"))
        if found:
            return found
    if windows:
        for root in _program_files(environ):
            for pattern in _WINDOWS_GLOBS.get(name, ()):
                hits = sorted(root.glob(pattern), key=_version_key, reverse=True)  # newest version first
                if hits:
                    return str(hits[0])
    return None


def default_command(name: str, *, environ: Mapping[str, str]) -> list[str]:
    """The tool command to use when none is configured: the found path, or the bare name."""
    found = find_tool(name, environ=environ)
    return [found] if found else [_PATH_NAMES.get(name, (name,))[0]]
