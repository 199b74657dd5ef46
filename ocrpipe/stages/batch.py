"""OCR of several small documents in one ocrmypdf call (its fixed cost, about 1 s of CPU, is paid
once), then split back into one PDF/A per document, each checked like a single run's output."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pikepdf

from ocrpipe.config import Settings
from ocrpipe.errors import RedoAlone, TransientError
from ocrpipe.folders.layout import FINAL_PDF, RAW_PDF
from ocrpipe.folders.outcome import StageOutcome
from ocrpipe.model import Stage, normalise_languages
from ocrpipe.stages.autolang import SIDECAR, member_language
from ocrpipe.stages.common import Member, run_members, tool_env
from ocrpipe.stages.doclevel import DOCUMENT_LEVEL, holds_something
from ocrpipe.stages.docmeta import give_own_metadata
from ocrpipe.stages.fidelity import has_deflatable_jpeg
from ocrpipe.stages.ocr import publish, verify_output
from ocrpipe.stages.ocrtext import sidecar_pages
from ocrpipe.stages.orientation import ocrmypdf_options, orientation_env, orientation_fields, turn_reported_pages
from ocrpipe.stages.pdfa import batch_spoiled, images_changed, optimizer_unused, save_as_pdfa
from ocrpipe.stages.reading import call_readings, reading_env, reading_options, save_readings
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.tools.run import run_tool


def batch_would_drop(raw: Path) -> str | None:
    """What OCR in a batch would lose of this document (its bookmarks, say), or None when nothing.

    Page annotations (links, comments, widgets) count too: a link to another page of the document
    would point nowhere once the pages have been through the batch."""
    with pikepdf.open(raw) as pdf:
        for key, what in DOCUMENT_LEVEL.items():
            if key in pdf.Root and holds_something(key, pdf.Root[key]):
                return what
        if any(len(page.obj.get("/Annots", ())) for page in pdf.pages):
            return "page annotations (links, comments or form widgets)"
    return None


def run_ocr_batch(settings: Settings, batch_dir: Path, members: Sequence[tuple[Path, int, dict[str, int]]], *,
                  jobs: int) -> list[StageOutcome]:
    """Pool entry point: ``members`` are (job folder, pages, attempts); one outcome per member, in order.
    Each document is charged its share of the call, by pages, and published on its own."""
    total = sum(pages for _, pages, _ in members)
    pages_of = [(job_dir, pages) for job_dir, pages, _ in members]

    def batch_failed(fields: dict) -> dict:  # the members fall back to one call each
        fields["reason"] = f"batch of {len(members)} documents failed ({fields['reason']}); retrying each alone"
        return {**fields, "transient": True, "batch_failure": True}

    changed: dict[Path, str] = {}  # members whose images the batch changed: their final.pdf not written
    turned: dict[Path, dict] = {}  # each member's pages checked and turned (ROTATE_PAGES=auto)
    texts: dict[Path, list[str | None]] = {}  # OCR_LANG=auto: each member's pages' text

    def work() -> dict:
        pdfa, spoiled = _ocr_and_split(settings, batch_dir, pages_of, jobs=jobs, turned=turned, texts=texts)
        changed.update(spoiled)
        return {"pdfa": pdfa, "batchSize": len(members), "imagesReencoded": False}

    def finish(job_dir: Path, outcome: StageOutcome) -> dict:
        # One whose images the batch changed is OCRed again alone, at no attempt's cost.
        if job_dir in changed:
            raise RedoAlone(f"its images changed in a batch ({changed[job_dir]}); OCRing it alone")
        # OCR_LANG=auto: one in another language is read again alone, in it, at no attempt's cost.
        found = member_language(settings, job_dir, texts[job_dir]) if job_dir in texts else {}
        return publish(settings, job_dir, replace(outcome, fields={**outcome.fields, **turned.get(job_dir, {}),
                                                                  **found}))

    return run_members(settings, Stage.OCR, [Member(job_dir, attempts, pages / total)
                                             for job_dir, pages, attempts in members],
                       work, finish=finish, scratch=[batch_dir], on_failure=batch_failed, batch=batch_dir.name)


def _ocr_and_split(settings: Settings, batch_dir: Path, members: Sequence[tuple[Path, int]], *,
                   jobs: int, turned: dict[Path, dict],
                   texts: dict[Path, list[str | None]]) -> tuple[str | None, dict[Path, str]]:
    """The batch's PDF/A flavour, and the members whose images changed (their final.pdf not written);
    ``turned`` gets each member's pages checked and turned; ``texts``, under OCR_LANG=auto, their text."""
    batch_dir.mkdir(parents=True, exist_ok=True)
    merged, output = batch_dir / RAW_PDF, batch_dir / "final.partial.pdf"
    total = merge(members, merged)
    auto = settings.ocr_lang == "auto"  # read first in the default language, the text kept
    sidecar = batch_dir / SIDECAR if auto else None
    argv = build_argv(settings.ocrmypdf, merged, output,
                      lang=settings.ocr_lang_default if auto else normalise_languages(settings.ocr_lang), jobs=jobs,
                      extra_args=settings.ocr_args, max_image_mpixels=settings.max_image_mpixels,
                      pdfa=settings.pdfa, orientation=[*ocrmypdf_options(settings), *reading_options(settings)],
                      sidecar=sidecar)
    env = reading_env(orientation_env(tool_env(settings, batch_dir), settings.rotate_pages,
                                      documents=[pages for _, pages in members]))
    result = run_tool(argv, timeout=settings.ocr_timeout_for(total), env=env, log_path=batch_dir / "ocr.log")
    raise_for_exit(result)
    reports, turns = turn_reported_pages(output, env)  # before the split: each part keeps its pages' /Rotate
    readings = call_readings(env, total)
    first = 1
    read = sidecar_pages(sidecar, total) if sidecar is not None else None
    for job_dir, pages in members:
        turned[job_dir] = orientation_fields(reports, turns, first, pages)
        if read is not None:
            texts[job_dir] = read[first - 1:first - 1 + pages]
        save_readings(job_dir, readings[first - 1:first - 1 + pages])
        first += pages
    pdfa = verify_output(output, expected_pages=total)
    # PREP's prediction keeps such documents out of batches; should it miss one, nobody's output
    # may depend on it: every member is OCRed again alone.
    spoiled = batch_spoiled(batch_dir / "ocr.log")
    if spoiled:
        raise TransientError(spoiled)
    if pdfa is None and settings.pdfa == "required":
        raise TransientError("its result is not PDF/A (PDFA=required)")
    return pdfa, split(output, members, pdfa, optimizer_unused=optimizer_unused(batch_dir / "ocr.log"))


def merge(members: Sequence[tuple[Path, int]], out: Path) -> int:
    """All members' raw.pdf pages, in order, into one file; returns the page count."""
    merged = pikepdf.new()
    sources = []
    try:
        for job_dir, pages in members:
            source = pikepdf.open(job_dir / RAW_PDF)
            sources.append(source)
            if len(source.pages) != pages:
                raise ValueError(f"{job_dir.name}: raw.pdf has {len(source.pages)} pages, expected {pages}")
            merged.pages.extend(source.pages)
        merged.save(out, compress_streams=False)  # a temp file: spend no time compressing it
        return len(merged.pages)
    finally:
        for source in sources:
            source.close()
        merged.close()


def split(batch_output: Path, members: Sequence[tuple[Path, int]], pdfa: str | None, *,
          optimizer_unused: bool = False) -> dict[Path, str]:
    """Cut the batch's output into each member's final.pdf, PDF/A again when the batch was. A part
    whose page images are not its raw.pdf's (codec, size, bits, colour) is left out: returned, by
    job folder, with what changed. So is one with JPEGs that ocrmypdf's optimizer deflates alone,
    when the batch as a whole kept none of the optimizer's work (``optimizer_unused``)."""
    flavour = pdfa.lower() if pdfa and pdfa.lower() in ("1b", "2b", "3b") else None
    changed = {}
    with pikepdf.open(batch_output) as batch:
        first = 0
        for job_dir, pages in members:
            partial = job_dir / "final.partial.pdf"
            _write_part(batch, range(first, first + pages), job_dir / RAW_PDF, partial, flavour)
            verify_output(partial, expected_pages=pages)
            change = images_changed(job_dir / RAW_PDF, partial) or (
                _UNDEFLATED if optimizer_unused and _deflatable(job_dir / RAW_PDF) else None)
            if change is None:
                os.replace(partial, job_dir / FINAL_PDF)
            else:
                partial.unlink()
                changed[job_dir] = change
            first += pages
    return changed


_UNDEFLATED = "ocrmypdf's optimizer left the batch as it was, so its JPEGs were not deflated as they are alone"


def _deflatable(raw: Path) -> bool:
    with pikepdf.open(raw) as pdf:
        return has_deflatable_jpeg(pdf)


def _write_part(batch: pikepdf.Pdf, pages: range, raw: Path, out: Path, flavour: str | None) -> None:
    with pikepdf.new() as part, pikepdf.open(raw) as original:
        part.pages.extend(batch.pages[pages.start:pages.stop])
        give_own_metadata(part, original, batch)
        save_as_pdfa(part, batch, out, flavour)
