"""OCR stage: ocrmypdf on ``raw.pdf``, checked, then renamed to ``final.pdf``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pikepdf

from ocrpipe.config import Settings
from ocrpipe.errors import TransientError
from ocrpipe.model import Stage, normalise_languages
from ocrpipe.stages.common import FINAL_PDF, RAW_PDF, StageOutcome, run_stage, tool_env
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.tools.run import run_tool


def run_ocr(settings: Settings, job_dir: Path, *, pages: int, jobs: int) -> StageOutcome:
    """Pool entry point: runs in a spawned worker."""
    return run_stage(settings, Stage.OCR, job_dir, lambda: _ocr(settings, job_dir, pages=pages, jobs=jobs))


def _ocr(settings: Settings, job_dir: Path, *, pages: int, jobs: int) -> dict[str, Any]:
    partial = job_dir / "final.partial.pdf"  # ocrmypdf does not write its output atomically
    partial.unlink(missing_ok=True)
    argv = build_argv(settings.ocrmypdf, job_dir / RAW_PDF, partial, lang=normalise_languages(settings.ocr_lang),
                      jobs=jobs, extra_args=settings.ocr_args)
    result = run_tool(argv, timeout=settings.ocr_timeout_for(pages), env=tool_env(settings, job_dir),
                      log_path=job_dir / "ocr.log")
    raise_for_exit(result)
    pdfa = verify_output(partial, expected_pages=pages)
    os.replace(partial, job_dir / FINAL_PDF)
    return {"pdfa": pdfa}


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
