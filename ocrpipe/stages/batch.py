"""OCR of several small documents in one ocrmypdf call (its fixed cost, about 1 s of CPU, is paid
once), then split back into one PDF/A per document, each checked like a single run's output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pikepdf
from pikepdf.pdfa import PdfaError, prepare, resolve_save_kwargs
from pikepdf.pdfa import save as save_pdfa

from ocrpipe.config import Settings
from ocrpipe.model import Stage, normalise_languages
from ocrpipe.outcome import StageOutcome
from ocrpipe.stages.common import FINAL_PDF, RAW_PDF, Member, run_members, tool_env
from ocrpipe.stages.ocr import publish, verify_output
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.tools.run import run_tool

# Document information a split part takes from its own raw.pdf, not from the batch.
_DOCINFO_KEYS = ("/Title", "/Author", "/Subject", "/Keywords", "/Creator", "/CreationDate")
# What a document keeps outside its pages, which a merge page by page and the split after it would drop:
# bookmarks, form fields, page labels, named destinations and attachments, tags, layers, articles,
# signature permissions, a portfolio. ocrmypdf alone keeps them. (An open action is a viewer's hint, not
# content: it does not keep a document out of a batch.)
_DOCUMENT_LEVEL = {"/Outlines": "bookmarks", "/AcroForm": "form fields", "/PageLabels": "page labels",
                   "/Names": "named destinations or attachments", "/Dests": "named destinations",
                   "/StructTreeRoot": "tags (structure tree)", "/OCProperties": "layers", "/Threads": "articles",
                   "/Perms": "signature permissions", "/Collection": "portfolio"}


def batch_would_drop(raw: Path) -> str | None:
    """What OCR in a batch would lose of this document (its bookmarks, say), or None when nothing.

    Page annotations (links, comments, widgets) count too: a link to another page of the document
    would point nowhere once the pages have been through the batch."""
    with pikepdf.open(raw) as pdf:
        for key, what in _DOCUMENT_LEVEL.items():
            if key in pdf.Root and _holds_something(key, pdf.Root[key]):
                return what
        if any(len(page.obj.get("/Annots", ())) for page in pdf.pages):
            return "page annotations (links, comments or form widgets)"
    return None


def _holds_something(key: str, value: pikepdf.Object) -> bool:
    """Scanners and converters often write empty ones: an outline without items, a form without fields."""
    if key == "/Outlines":
        return isinstance(value, pikepdf.Dictionary) and "/First" in value
    if key == "/AcroForm":
        return isinstance(value, pikepdf.Dictionary) and len(value.get("/Fields", ())) > 0
    if isinstance(value, pikepdf.Dictionary):
        return any(name != "/Type" for name in value.keys())
    if isinstance(value, pikepdf.Array):
        return len(value) > 0
    return True


def run_ocr_batch(settings: Settings, batch_dir: Path, members: Sequence[tuple[Path, int, dict[str, int]]], *,
                  jobs: int) -> list[StageOutcome]:
    """Pool entry point: ``members`` are (job folder, pages, attempts); one outcome per member, in order.
    Each document is charged its share of the call, by pages, and published on its own."""
    total = sum(pages for _, pages, _ in members)
    pages_of = [(job_dir, pages) for job_dir, pages, _ in members]

    def batch_failed(fields: dict) -> dict:  # the members fall back to one call each
        fields["reason"] = f"batch of {len(members)} documents failed ({fields['reason']}); retrying each alone"
        return {**fields, "transient": True, "batch_failure": True}

    def work() -> dict:
        return {"pdfa": _ocr_and_split(settings, batch_dir, pages_of, jobs=jobs), "batchSize": len(members)}

    return run_members(settings, Stage.OCR, [Member(job_dir, attempts, pages / total)
                                             for job_dir, pages, attempts in members],
                       work, finish=lambda job_dir, outcome: publish(settings, job_dir, outcome),
                       scratch=[batch_dir], on_failure=batch_failed, batch=batch_dir.name)


def _ocr_and_split(settings: Settings, batch_dir: Path, members: Sequence[tuple[Path, int]], *,
                   jobs: int) -> str | None:
    batch_dir.mkdir(parents=True, exist_ok=True)
    merged, output = batch_dir / RAW_PDF, batch_dir / "final.partial.pdf"
    total = merge(members, merged)
    argv = build_argv(settings.ocrmypdf, merged, output, lang=normalise_languages(settings.ocr_lang), jobs=jobs,
                      extra_args=settings.ocr_args, max_image_mpixels=settings.max_image_mpixels)
    result = run_tool(argv, timeout=settings.ocr_timeout_for(total), env=tool_env(settings, batch_dir),
                      log_path=batch_dir / "ocr.log")
    raise_for_exit(result)
    pdfa = verify_output(output, expected_pages=total)
    split(output, members, pdfa)
    return pdfa


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


def split(batch_output: Path, members: Sequence[tuple[Path, int]], pdfa: str | None) -> None:
    """Cut the batch's output into each member's final.pdf, PDF/A again when the batch was."""
    flavour = pdfa.lower() if pdfa and pdfa.lower() in ("1b", "2b", "3b") else None
    with pikepdf.open(batch_output) as batch:
        first = 0
        for job_dir, pages in members:
            partial = job_dir / "final.partial.pdf"
            _write_part(batch, range(first, first + pages), job_dir / RAW_PDF, partial, flavour)
            verify_output(partial, expected_pages=pages)
            os.replace(partial, job_dir / FINAL_PDF)
            first += pages


def _write_part(batch: pikepdf.Pdf, pages: range, raw: Path, out: Path, flavour: str | None) -> None:
    with pikepdf.new() as part, pikepdf.open(raw) as original:
        part.pages.extend(batch.pages[pages.start:pages.stop])
        for key in _DOCINFO_KEYS:
            if key in original.docinfo:
                value = original.docinfo[key]  # often an indirect object of the original's
                part.docinfo[key] = part.copy_foreign(value) if value.is_indirect else value
        if flavour is None:
            part.save(out)
            return
        if "/OutputIntents" in batch.Root:  # keep the batch's ICC profile (Ghostscript's or ocrmypdf's)
            part.Root.OutputIntents = pikepdf.Array(
                part.copy_foreign(intent) if intent.is_indirect else intent for intent in batch.Root.OutputIntents)
        try:
            save_pdfa(part, out, flavour, output_intent=None)
        except PdfaError:
            # pikepdf's validator cannot check some content (JPEG 2000): declare PDF/A as ocrmypdf's
            # Ghostscript route did for the batch, without the validator's approval.
            prepare(part, flavour, output_intent=None)
            part.save(out, **resolve_save_kwargs(flavour))
