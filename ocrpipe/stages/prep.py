"""PREP stage: sniff the input, unpack archives with 7-Zip, assemble the pages into ``raw.pdf``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pikepdf

from ocrpipe.config import Settings
from ocrpipe.errors import Code, PermanentError
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.layout import RAW_PDF, long_path, plain_path
from ocrpipe.folders.outcome import StageOutcome, mark_prepared
from ocrpipe.folders.pathcheck import UnsafePath, check_name
from ocrpipe.folders.store import read_state, update_state
from ocrpipe.model import Stage
from ocrpipe.stages.assemble import assemble, natural_key
from ocrpipe.stages.batch import batch_would_drop
from ocrpipe.stages.common import run_stage, tool_env
from ocrpipe.stages.doctype import detect
from ocrpipe.stages.fidelity import batch_group, ghostscript_reason
from ocrpipe.stages.office import CONVERT_DIR
from ocrpipe.stages.pdftraits import largest_image, read_traits
from ocrpipe.stages.rangeplan import work_summary
from ocrpipe.stages.sniff import Kind, sniff
from ocrpipe.tools.sevenzip import ArchiveLimits, check_entries, extract_archive, list_archive, office_document

PAGE_KINDS = (Kind.PDF, Kind.IMAGE)
MAX_NESTING = 3  # levels of archives unpacked: a .tar.gz is two; a zip of those, three


def run_prep(settings: Settings, job_dir: Path, *, attempts: dict[str, int]) -> StageOutcome:
    """Pool entry point: runs in a spawned worker."""

    def finish(outcome: StageOutcome) -> None:
        # Not fsynced: lost in a power cut, PREP runs again; nothing has moved yet.
        update_state(job_dir, lambda record: mark_prepared(record, outcome), durable=False)

    return run_stage(settings, Stage.PREP, job_dir, lambda: _prepare(settings, job_dir), attempts=attempts,
                     finish=finish)


def _prepare(settings: Settings, job_dir: Path) -> dict[str, Any]:
    record = read_state(job_dir)
    if record.get("convertedParts") is not None:
        return _prepare_converted(settings, job_dir, record)
    source = job_dir / record["input"]
    shown = record["source"]["name"]  # the job's copy is input/original.<ext>: a refusal names the user's file
    if source.stat().st_size == 0:
        raise PermanentError("the file is empty", code=Code.EMPTY_FILE)
    kind = sniff(source)
    if kind is None or kind is Kind.ARCHIVE:
        not_converted(source)  # an Office document or an e-mail that CONVERT was not asked to take
    if kind is None:
        raise PermanentError("unsupported file type: not a PDF, an image (TIFF, JPEG, PNG, HEIC…) or an archive",
                             code=Code.UNSUPPORTED_TYPE)
    parts = [source] if kind in PAGE_KINDS else _unpack(settings, job_dir, source)
    pages = assemble(parts, job_dir / RAW_PDF, default_dpi=settings.image_dpi,
                     max_image_mpixels=settings.max_image_mpixels, names={source: shown})
    raw = job_dir / RAW_PDF
    _check_images(settings, raw)
    fields: dict[str, Any] = {"kind": kind.value, "pages": pages, "soloReason": batch_would_drop(raw),
                              "ghostscriptReason": ghostscript_reason(raw), "batchGroup": batch_group(raw),
                              "pageWork": work_summary(raw)}
    if kind is Kind.PDF and _signed(settings, source):
        # OCR alone: whether kept or OCRed anyway, a batch would lose what makes it a signed document.
        fields.update(signed=True, soloReason="digital signature")
    return fields


def _prepare_converted(settings: Settings, job_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """CONVERT's parts in its order: PDFs and images as they are, archives (an e-mail's) unpacked."""
    parts: list[Path] = []
    names: dict[Path, str] = {}
    for n, part in enumerate(converted_parts(record)):
        path = job_dir / part["path"]
        kind = sniff(path)
        if kind in PAGE_KINDS:
            found = [path]
        elif kind is Kind.ARCHIVE:
            found = _unpack(settings, job_dir, path, folder=f"prep/{n:04d}")
        else:
            continue  # CONVERT keeps only what PREP takes; a part changed since is left out
        parts += found
        names.update({p: part["name"] for p in found})
    raw = job_dir / RAW_PDF
    pages = assemble(parts, raw, default_dpi=settings.image_dpi, max_image_mpixels=settings.max_image_mpixels,
                     names=names)
    _check_images(settings, raw)
    return {"kind": record.get("convert") or "converted", "pages": pages, "soloReason": batch_would_drop(raw),
            "ghostscriptReason": ghostscript_reason(raw), "batchGroup": batch_group(raw),
            "pageWork": work_summary(raw)}


def converted_parts(record: dict[str, Any]) -> list[dict[str, str]]:
    """``convertedParts`` checked: each ``convert/<one name>`` (anyone who can write work/ can write state.json)."""
    parts = record.get("convertedParts")
    if not isinstance(parts, list):
        raise UnsafePath("state.json: convertedParts is not a list")
    checked: list[dict[str, str]] = []
    for part in parts:
        value = part.get("path") if isinstance(part, dict) else None
        folder, slash, name = value.partition("/") if isinstance(value, str) else ("", "", "")
        if folder != CONVERT_DIR or not slash:
            raise UnsafePath(f"state.json: a converted part {value!r:.80} is not {CONVERT_DIR}/<file name>")
        check_name(name, what="state.json: a converted part")
        shown = part.get("name")
        checked.append({"path": f"{CONVERT_DIR}/{name}", "name": shown if isinstance(shown, str) else name})
    return checked


def not_converted(source: Path) -> None:
    """An Office document or an e-mail here was not converted (OFFICE_INPUT=off, no LibreOffice or no
    e-mail renderer when it came): refused with what would take it, not as a broken archive."""
    found = detect(source)
    if found is None:
        return
    if found.kind == "office":
        raise PermanentError(f"an Office document (.{found.ext}), and Office input is off here (OFFICE_INPUT=off, "
                             "or LibreOffice was not found when it came); install LibreOffice (see 'ocrpipe "
                             "doctor') and drop it again, or export it to PDF and drop the PDF",
                             code=Code.OFFICE_UNAVAILABLE)
    if found.kind == "msg":
        raise PermanentError("an Outlook message (.msg): ocrpipe has no converter for it; save the message as "
                             ".eml (drag it out of Outlook, or File > Save As) and drop that",
                             code=Code.EMAIL_UNAVAILABLE)
    raise PermanentError("an e-mail, and this machine cannot render e-mail (WeasyPrint does not run: see "
                         "'ocrpipe doctor'); drop it again once it does", code=Code.EMAIL_UNAVAILABLE)


def _check_images(settings: Settings, raw: Path) -> None:
    """An image inside a PDF that declares more than MAX_IMAGE_MPIXELS is refused now, not after an OCR
    attempt (ocrmypdf would refuse it too, with --max-image-mpixels)."""
    with pikepdf.open(raw) as pdf:
        width, height = largest_image(pdf)
    if width * height > settings.max_image_mpixels * 1e6:
        raise PermanentError(f"image too large ({width} × {height}, {width * height / 1e6:,.0f} megapixels, in the "
                             f"PDF; the limit is MAX_IMAGE_MPIXELS={settings.max_image_mpixels:g})",
                             code=Code.IMAGE_TOO_LARGE)


def _signed(settings: Settings, source: Path) -> bool:
    """Is the PDF signed? One that cannot be OCRed at all (a dynamic XFA form), or a signed one the
    settings refuse, is refused here, before any OCR."""
    traits = read_traits(source)
    if traits.dynamic_xfa:
        raise PermanentError("the PDF is a dynamic XFA form (Adobe LiveCycle) that only Adobe Reader can show; "
                             "print it to PDF from there and drop that", code=Code.PDF_XFA)
    if traits.signed and settings.signed_pdf == "error":
        raise PermanentError("the PDF is digitally signed, and SIGNED_PDF=error refuses signed PDFs",
                             code=Code.PDF_SIGNED)
    return traits.signed


def _unpack(settings: Settings, job_dir: Path, archive: Path, *, folder: str = "prep") -> list[Path]:
    """Unpack the archive, and archives inside it (a .tar inside a .gz) down to MAX_NESTING levels."""
    env = tool_env(settings, job_dir)
    dest = long_path(job_dir / folder, always=True)  # an archive's own folders may go deeper than MAX_PATH
    remove_tree(dest)  # a retried attempt starts from a clean folder
    try:
        return _unpack_levels(settings, job_dir, archive, dest, env)
    except PermanentError:
        remove_tree(dest)  # what a refused archive wrote goes at once, not when the job ends
        raise


def _unpack_levels(settings: Settings, job_dir: Path, archive: Path, dest: Path, env: dict[str, str]) -> list[Path]:
    budget = [settings.max_archive_members, settings.max_archive_mb * 2**20]  # shared by all levels
    pending = [(archive, dest, 0)]
    while pending:
        source, folder, depth = pending.pop(0)
        _unpack_one(settings, source, folder, env, log=job_dir / "prep.log", budget=budget, inner=depth > 0)
        if source != archive:
            source.unlink()  # its pages now stand in its place (an office file inside is skipped)
        inner = [path for path in _files_in(folder) if sniff(path) is Kind.ARCHIVE]
        if inner and depth + 1 >= MAX_NESTING:
            shown = inner[0].relative_to(dest).as_posix()
            raise PermanentError(f"archive refused: {shown!r} is an archive nested more than {MAX_NESTING} levels "
                                 "deep; unpack it and drop the files instead", code=Code.ARCHIVE_NESTED)
        pending += [(path, path.with_name(path.name + ".unpacked"), depth + 1) for path in inner]
    parts = _pages_in(dest)
    if not parts:
        raise PermanentError("the archive holds no PDF or image", code=Code.ARCHIVE_EMPTY)
    return parts


def _unpack_one(settings: Settings, archive: Path, dest: Path, env: dict[str, str], *, log: Path,
                budget: list[int], inner: bool) -> None:
    timeout = settings.prep_timeout_seconds
    entries = list_archive(settings.seven_zip, archive, timeout=timeout, env=env, log_path=log)
    office = office_document(entries)
    if office and inner:
        return  # like any other file that is not a page: skipped
    if office:
        raise PermanentError(f"unsupported file type: {office}; print or export it to PDF and drop the PDF",
                             code=Code.UNSUPPORTED_TYPE)
    limits = ArchiveLimits(budget[0], budget[1], settings.max_archive_ratio)
    check_entries(entries, limits, packed=archive.stat().st_size)
    # What 7-Zip really wrote is spent, not what the listing declared.
    files, written = extract_archive(settings.seven_zip, archive, dest, timeout=timeout, env=env, log_path=log,
                                     limits=limits)
    budget[0] -= files
    budget[1] -= written


def _files_in(folder: Path) -> list[Path]:
    """Regular files under ``folder``: links, hidden files and macOS litter left out."""
    root = Path(plain_path(folder.resolve()))  # compared without the long-path prefix, which resolve may drop
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__MACOSX"))]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or name.startswith("."):
                continue
            if root not in Path(plain_path(path.resolve())).parents:  # defence in depth against zip-slip
                continue
            found.append(path)
    return found


def _pages_in(folder: Path) -> list[Path]:
    """PDFs and images under ``folder`` in natural order; other files are left out."""
    found = [path for path in _files_in(folder) if sniff(path) in PAGE_KINDS]
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))
