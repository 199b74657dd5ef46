"""``ocrpipe doctor``: what is installed, what is missing, and the command that installs it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import uuid
from typing import TextIO

from ocrpipe.config import Settings, fts5_available
from ocrpipe.errors import ExitCode
from ocrpipe.model import normalise_languages
from ocrpipe.stages.heic import INSTALL_HINT, heif_version
from ocrpipe.tools.check import (
    INSTALL,
    language_install_hint,
    osd_install_hint,
    probe_tools,
    tesseract_languages,
    windows_tessdata,
)


def _writable(folder: os.PathLike[str]) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".ocrpipe-doctor-{uuid.uuid4().hex[:8]}")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
        return True
    except OSError:
        return False


def doctor(settings: Settings, out: TextIO = sys.stdout) -> ExitCode:
    problems: list[tuple[str, tuple[str, str]]] = []
    print("Tools:", file=out)
    for tool in probe_tools(settings):
        shown = " ".join(tool.command)
        if tool.ok:
            print(f"  ok       {tool.name:<12} {tool.version:<10} {shown}", file=out)
        else:
            print(f"  MISSING  {tool.name:<12} {'-':<10} {shown}", file=out)
            problems.append((tool.name, INSTALL[tool.name]))
    installed = tesseract_languages(settings)
    tessdata = windows_tessdata(settings.tesseract, dict(settings.tool_env))
    print(f"OCR languages (OCR_LANG={settings.ocr_lang}):", file=out)
    for lang in normalise_languages(settings.ocr_lang).split("+"):
        if installed is not None and lang in installed:
            print(f"  ok       {lang}", file=out)
        else:
            print(f"  MISSING  {lang}", file=out)
            problems.append((f"tesseract language '{lang}'", language_install_hint(lang, tessdata)))
    # Without it no page is turned (auto leaves them as read; ocrmypdf's --rotate-pages fails).
    print(f"Page orientation (ROTATE_PAGES={settings.rotate_pages}):", file=out)
    if installed is not None and "osd" in installed:
        print(f"  ok       {'osd':<12} Tesseract's orientation data", file=out)
    elif settings.rotate_pages == "off":
        print(f"  MISSING  {'osd':<12} not needed while ROTATE_PAGES=off", file=out)
    else:
        print(f"  MISSING  {'osd':<12} Tesseract's orientation data: turned pages are not turned", file=out)
        problems.append(("tesseract orientation data 'osd'", osd_install_hint(tessdata)))
    # Optional: without it HEIC photos go to error/ with this hint, and everything else works.
    print("Optional formats:", file=out)
    version = heif_version()
    if version:
        print(f"  ok       {'HEIC/HEIF':<12} pillow-heif {version}", file=out)
    else:
        print(f"  MISSING  {'HEIC/HEIF':<12} photos from phones go to error/: {INSTALL_HINT}", file=out)
    # Optional: without FTS5 the pages' reading confidence is still kept, their text is not.
    print(f"Full-text search (SEARCH_INDEX={'on' if settings.search_index else 'off'}):", file=out)
    if fts5_available():
        print(f"  ok       {'FTS5':<12} SQLite {sqlite3.sqlite_version}: 'ocrpipe search' finds the pages' text",
              file=out)
    else:
        print(f"  MISSING  {'FTS5':<12} this Python's SQLite {sqlite3.sqlite_version} has none: search is off "
              "(the python.org and Debian builds have it)", file=out)
    print("Folders:", file=out)
    for label, folder in (("data", settings.data_dir), ("in", settings.in_dir), ("out", settings.out_dir),
                          ("archive", settings.archive_dir), ("error", settings.error_dir)):
        if _writable(folder):
            free_mb = shutil.disk_usage(folder).free // 2**20
            print(f"  ok       {label:<8} {folder}  ({free_mb} MB free)", file=out)
        else:
            print(f"  NOT WRITABLE {label:<8} {folder}", file=out)
            problems.append((f"folder {folder}", ("check its permissions", "check its permissions")))
    if not problems:
        print("Everything ocrpipe needs is here.", file=out)
        return ExitCode.OK
    print("\nTo fix:", file=out)
    for what, (debian, windows) in problems:
        print(f"  {what}\n    Debian/Ubuntu: {debian}\n    Windows:       {windows}", file=out)
    print("Then run 'ocrpipe doctor' again; on Windows, '.\\run_tests.ps1 -Integration' (in the repository "
          "folder) runs every test with the real tools.", file=out)
    return ExitCode.MISSING_TOOL
