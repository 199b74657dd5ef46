"""PREP stage: sniff the input, unpack archives with 7-Zip, assemble the pages into ``raw.pdf``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.errors import PermanentError
from ocrpipe.fsutil import remove_tree
from ocrpipe.model import Stage
from ocrpipe.stages.assemble import assemble, natural_key
from ocrpipe.stages.common import RAW_PDF, StageOutcome, run_stage, tool_env
from ocrpipe.stages.sniff import Kind, sniff
from ocrpipe.store import read_state
from ocrpipe.tools.sevenzip import ArchiveLimits, check_entries, extract_archive, list_archive

PAGE_KINDS = (Kind.PDF, Kind.IMAGE)


def run_prep(settings: Settings, job_dir: Path) -> StageOutcome:
    """Pool entry point: runs in a spawned worker."""
    return run_stage(settings, Stage.PREP, job_dir, lambda: _prepare(settings, job_dir))


def _prepare(settings: Settings, job_dir: Path) -> dict[str, Any]:
    source = job_dir / read_state(job_dir)["input"]
    if source.stat().st_size == 0:
        raise PermanentError("the file is empty")
    kind = sniff(source)
    if kind is None:
        raise PermanentError("unsupported file type: not a PDF, an image (TIFF, JPEG, PNG, BMP) or an archive")
    parts = [source] if kind in PAGE_KINDS else _unpack(settings, job_dir, source)
    pages = assemble(parts, job_dir / RAW_PDF, default_dpi=settings.image_dpi)
    return {"kind": kind.value, "pages": pages}


def _unpack(settings: Settings, job_dir: Path, archive: Path) -> list[Path]:
    env = tool_env(settings, job_dir)
    log = job_dir / "prep.log"
    deadline = settings.prep_timeout_seconds
    entries = list_archive(settings.seven_zip, archive, timeout=deadline, env=env, log_path=log)
    check_entries(entries, ArchiveLimits(settings.max_archive_members, settings.max_archive_mb * 2**20))
    dest = job_dir / "prep"
    remove_tree(dest)  # a retried attempt starts from a clean folder
    extract_archive(settings.seven_zip, archive, dest, timeout=deadline, env=env, log_path=log)
    parts = _pages_in(dest)
    if not parts:
        raise PermanentError("the archive holds no PDF or image")
    return parts


def _pages_in(folder: Path) -> list[Path]:
    """PDFs and images under ``folder`` in natural order; links and other files are left out."""
    root = folder.resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__MACOSX"))]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or name.startswith("."):
                continue
            if root not in path.resolve().parents:  # defence in depth against zip-slip
                continue
            if sniff(path) in PAGE_KINDS:
                found.append(path)
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))
