"""OCR stage: ocrmypdf on ``raw.pdf``, checked, then renamed to ``final.pdf``."""

from __future__ import annotations

import functools
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pikepdf

from ocrpipe.config import Settings
from ocrpipe.errors import TransientError
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.layout import FINAL_PDF, RAW_PDF
from ocrpipe.folders.outcome import StageOutcome, mark_done
from ocrpipe.folders.publish import publish_done
from ocrpipe.folders.store import LOCK_FILE, STATE_FILE, read_state
from ocrpipe.logs import job_context
from ocrpipe.model import Stage, normalise_languages
from ocrpipe.stages.autolang import read_in_own_language, whole_reader
from ocrpipe.stages.common import run_stage, tool_env
from ocrpipe.stages.orientation import ocrmypdf_options, orientation_env, orientation_fields, turn_reported_pages
from ocrpipe.stages.pagetext import PAGES_FILE, record_page_texts
from ocrpipe.stages.pdfa import run_fields
from ocrpipe.stages.reading import call_readings, reading_env, reading_options, save_readings
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.tools.run import run_tool

log = logging.getLogger("ocrpipe.ocr")


def run_ocr(settings: Settings, job_dir: Path, *, pages: int, jobs: int, attempts: dict[str, int]) -> StageOutcome:
    """Pool entry point: runs in a spawned worker; publishes the result itself."""
    return run_stage(settings, Stage.OCR, job_dir, lambda: ocr_whole(settings, job_dir, pages=pages, jobs=jobs),
                     attempts=attempts, finish=lambda outcome: publish(settings, job_dir, outcome))


def publish(settings: Settings, job_dir: Path, outcome: StageOutcome) -> dict[str, Any]:
    """final.pdf to out/, the original to archive/, DONE recorded: in the worker, beside the scheduler.
    Each page's text is read from final.pdf here too, so the scheduler only stores it: once the output is
    in out/ (its reader need not wait for it), before DONE is recorded (the text is kept by then)."""
    record = publish_done(settings, job_dir, read_state(job_dir), lambda record: mark_done(record, outcome),
                          before_done=lambda: record_page_texts(job_dir, with_text=settings.search_index))
    clean_done_job(job_dir)
    return record


def clean_done_job(job_dir: Path) -> None:
    """Once DONE is recorded, only state.json and the pages' text matter (until the scheduler indexes
    the job and removes the folder): the rest goes now, in the worker, not in the scheduler's loop. The heartbeat
    stays until the scheduler has the outcome: it still names the worker (a batch publishes its
    other members after this one)."""
    for path in job_dir.iterdir():
        if path.name in (STATE_FILE, LOCK_FILE, PAGES_FILE) or path.name.endswith(".heartbeat"):
            continue
        if path.is_dir():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)


def ocr_whole(settings: Settings, job_dir: Path, *, pages: int, jobs: int, lang: str | None = None,
              sidecar: Path | None = None) -> dict[str, Any]:
    """The whole document in one ocrmypdf call (or kept as it is, when signed and SIGNED_PDF=keep).
    ``lang``: the languages of this reading (OCR_LANG=auto chooses them); ``sidecar``: its text's file."""
    if lang is None and settings.ocr_lang == "auto":
        read = whole_reader(settings, job_dir, pages=pages,
                            ocr=functools.partial(ocr_whole, settings, job_dir, pages=pages, jobs=jobs))
        return read_in_own_language(settings, job_dir, pages=pages, jobs=jobs, read=read)
    record = read_state(job_dir)
    # ocrmypdf does not write its output atomically, and the tool of an attempt whose worker died
    # elsewhere may still be running: each attempt writes its own file, so a late tool spoils nothing.
    partial = job_dir / f"final.partial-{record['attempts']['OCR']}.pdf"
    partial.unlink(missing_ok=True)
    signed = bool(record.get("signed"))
    ctx = job_context(record["jobKey"], Stage.OCR.value, record["attempts"]["OCR"])
    if signed and settings.signed_pdf == "keep":
        # A document of record: its signature matters more than a text layer (it usually has text).
        shutil.copyfile(job_dir / record["input"], partial)
        save_readings(job_dir, [None] * pages)  # nothing was read: its own text is what it has
        os.replace(partial, job_dir / FINAL_PDF)
        log.info("signed PDF kept unchanged, without OCR (SIGNED_PDF=keep)", extra=ctx)
        return {"pdfa": None, "signature": "kept"}
    argv = build_argv(settings.ocrmypdf, job_dir / RAW_PDF, partial,
                      lang=lang or normalise_languages(settings.ocr_lang), jobs=jobs, extra_args=settings.ocr_args,
                      max_image_mpixels=settings.max_image_mpixels, invalidate_signatures=signed, pdfa=settings.pdfa,
                      orientation=[*ocrmypdf_options(settings), *reading_options(settings)], sidecar=sidecar)
    env = reading_env(orientation_env(tool_env(settings, job_dir), settings.rotate_pages, documents=[pages]))
    result = run_tool(argv, timeout=settings.ocr_timeout_for(pages), env=env, log_path=job_dir / "ocr.log")
    raise_for_exit(result)
    turned = orientation_fields(*turn_reported_pages(partial, env))
    pdfa = verify_output(partial, expected_pages=pages)
    fields = run_fields(pdfa_setting=settings.pdfa, raw=job_dir / RAW_PDF, output=partial, pdfa=pdfa,
                        tool_log=job_dir / "ocr.log", predicted=record.get("ghostscriptReason"))
    for note in (fields["reencodeReason"], fields["pdfaSkippedReason"]):
        if note:  # said once, where it happens; the index keeps it too
            log.warning("%s: %s", record["source"]["relpath"], note, extra=ctx)
    save_readings(job_dir, call_readings(env, pages))
    os.replace(partial, job_dir / FINAL_PDF)
    if signed:
        log.warning("signed PDF OCRed (SIGNED_PDF=ocr): its digital signature is no longer valid", extra=ctx)
        return {"pdfa": pdfa, "signature": "invalidated", **fields, **turned}
    return {"pdfa": pdfa, **fields, **turned}


def verify_output(path: Path, *, expected_pages: int) -> str | None:
    """A tool can exit 0 and still fail: the output must exist, open and have every page."""
    if not path.is_file() or path.stat().st_size == 0:
        raise TransientError("ocrmypdf reported success but wrote no output")
    try:
        with pikepdf.open(path) as pdf:
            if len(pdf.pages) != expected_pages:
                raise TransientError(f"ocrmypdf's output has {len(pdf.pages)} pages instead of {expected_pages}")
            return pdf.open_metadata().pdfa_status or None
    except pikepdf.PdfError as exc:
        raise TransientError(f"ocrmypdf's output does not open as a PDF ({exc})") from None
