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
from ocrpipe.ops.netfs import network_kind
from ocrpipe.stages.heic import INSTALL_HINT, heif_version
from ocrpipe.tools.check import (
    INSTALL,
    lang_candidates,
    language_install_hint,
    osd_install_hint,
    probe_tools,
    tesseract_languages,
    windows_tessdata,
)
from ocrpipe.tools.htmlpdf import INSTALL as WEASYPRINT_INSTALL
from ocrpipe.tools.htmlpdf import weasyprint_version, weasyprint_works
from ocrpipe.tools.soffice import INSTALL as SOFFICE_INSTALL
from ocrpipe.tools.soffice import soffice_version
from ocrpipe.tools.tesseract import LANGUAGES


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


def _auto_languages(settings: Settings, installed: set[str] | None, out: TextIO) -> list[str]:
    """OCR_LANG=auto: the first reading's language and the candidates, said where they come from."""
    source = "OCR_LANG_CANDIDATES" if settings.ocr_lang_candidates else "the Tesseract languages installed, less osd"
    candidates = lang_candidates(settings, installed)
    print(f"  first reading in {settings.ocr_lang_default} (OCR_LANG_DEFAULT); candidates from {source}: "
          f"{'+'.join(candidates)}", file=out)
    return candidates


def _identified(lang: str) -> str:
    known = LANGUAGES.get(lang)
    if known is None:
        return "  (not identified from text: py3langid does not know it)"
    return f"  ({known[1]} script)" if known[1] != "Latin" else ""


def index_warning(settings: Settings, out: TextIO) -> bool:
    """A warning, not a failure: the index works on a share until two programs use it at once, then
    SQLite's WAL (which needs memory shared through the local kernel) can corrupt it."""
    kind = network_kind(settings.index_dir)
    if kind is None:
        return False
    print(f"  WARNING  the job index {settings.index_dir} is on a network file system ({kind}): SQLite's "
          "write-ahead log does not work there. Set INDEX_DIR to a folder on a local disk "
          "(see docs/cluster.md, 'The job index on a local disk').", file=out)
    return True


def _conversion(settings: Settings, out: TextIO, problems: list[tuple[str, tuple[str, str]]]) -> None:
    """Office documents (LibreOffice) and e-mail (WeasyPrint): the CONVERT stage's converters."""
    print(f"Office documents and e-mail (OFFICE_INPUT={settings.office_input}):", file=out)
    shown = " ".join(settings.soffice)
    version = soffice_version(settings.soffice, dict(settings.tool_env)) if settings.office_input != "off" else None
    if version:
        print(f"  ok       {'LibreOffice':<12} {version:<10} {shown}", file=out)
    elif settings.office_input == "off":
        print(f"  off      {'LibreOffice':<12} Office documents go to error/ (OFFICE_INPUT=off)", file=out)
    else:
        state = "MISSING " if settings.office_input == "on" else "missing "
        print(f"  {state} {'LibreOffice':<12} {'-':<10} {shown}: Office documents go to error/", file=out)
        if settings.office_input == "on":
            problems.append(("LibreOffice (OFFICE_INPUT=on)", SOFFICE_INSTALL))
        else:
            print(f"           to take them: {SOFFICE_INSTALL[0] if os.name != 'nt' else SOFFICE_INSTALL[1]}",
                  file=out)
    weasy, broken = weasyprint_version(), weasyprint_works()
    if weasy and broken is None:
        print(f"  ok       {'WeasyPrint':<12} {weasy:<10} e-mail (.eml) rendered to PDF", file=out)
    else:
        why = broken if weasy else "not installed"
        print(f"  MISSING  {'WeasyPrint':<12} {'-':<10} e-mail goes to error/: {why}", file=out)
        problems.append(("WeasyPrint (e-mail)", WEASYPRINT_INSTALL))
    print(f"  -        {'Outlook .msg':<12} {'-':<10} no converter: such files go to error/ (save them as .eml)",
          file=out)


def doctor(settings: Settings, out: TextIO | None = None) -> ExitCode:
    out = out or sys.stdout  # looked up at the call: it may have been replaced since the import
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
    listed = normalise_languages(settings.ocr_lang).split("+")
    if settings.ocr_lang == "auto":
        listed = _auto_languages(settings, installed, out)
    for lang in listed:
        if installed is not None and lang in installed:
            print(f"  ok       {lang}{_identified(lang) if settings.ocr_lang == 'auto' else ''}", file=out)
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
    _conversion(settings, out, problems)
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
                          ("archive", settings.archive_dir), ("error", settings.error_dir),
                          ("work", settings.work_dir), ("index", settings.index_dir)):
        if _writable(folder):
            free_mb = shutil.disk_usage(folder).free // 2**20
            print(f"  ok       {label:<8} {folder}  ({free_mb} MB free)", file=out)
        else:
            print(f"  NOT WRITABLE {label:<8} {folder}", file=out)
            problems.append((f"folder {folder}", ("check its permissions", "check its permissions")))
    index_warning(settings, out)
    if not problems:
        print("Everything ocrpipe needs is here.", file=out)
        return ExitCode.OK
    print("\nTo fix:", file=out)
    for what, (debian, windows) in problems:
        print(f"  {what}\n    Debian/Ubuntu: {debian}\n    Windows:       {windows}", file=out)
    print("Then run 'ocrpipe doctor' again; on Windows, '.\\run_tests.ps1 -Integration' (in the repository "
          "folder) runs every test with the real tools.", file=out)
    return ExitCode.MISSING_TOOL
