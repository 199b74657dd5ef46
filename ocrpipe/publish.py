"""A job's end: the searchable PDF to ``out/`` and the original to ``archive/``, or both to ``error/``."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.fsutil import atomic_write_json, candidate_names, move_file, publish_copy
from ocrpipe.stages.common import FINAL_PDF
from ocrpipe.store import update_state, utc_now

ERROR_FILE = "error.json"


def output_relpath(source_relpath: str) -> PurePosixPath:
    """``scans/May/invoice.tif`` → ``scans/May/invoice.pdf``."""
    rel = PurePosixPath(source_relpath)
    return rel.with_name(rel.stem + ".pdf") if rel.suffix else rel.with_name(rel.name + ".pdf")


def publish_done(settings: Settings, job_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Copy final.pdf to out/ and move the original to archive/, recording each step as it lands."""
    rel = PurePosixPath(record["source"]["relpath"])
    if not record.get("output"):
        out_rel = output_relpath(str(rel))
        output = publish_copy(job_dir / FINAL_PDF, settings.out_dir.joinpath(*out_rel.parent.parts), out_rel.name)
        record = update_state(job_dir, lambda r: r.update(output=str(output)))
    if not record.get("archived"):
        archived = move_file(job_dir / record["input"], settings.archive_dir.joinpath(*rel.parent.parts), rel.name)
        record = update_state(job_dir, lambda r: r.update(archived=str(archived)))
    return record


def _free_folder(parent: Path, name: str) -> Path:
    for candidate in candidate_names(name):
        folder = parent / candidate
        if not folder.exists():
            return folder
    raise AssertionError("unreachable")


def publish_error(settings: Settings, job_dir: Path, record: dict[str, Any]) -> Path:
    """Move the original to ``error/<jobKey>/`` beside an error.json that says what went wrong."""
    folder = _free_folder(settings.error_dir, record["jobKey"])
    folder.mkdir(parents=True)
    error = record.get("lastError") or {}
    source = job_dir / record["input"]
    moved = move_file(source, folder, record["source"]["name"]) if source.exists() else None
    atomic_write_json(folder / ERROR_FILE, {
        "jobKey": record["jobKey"],
        "runId": record["runId"],
        "source": record["source"]["relpath"],
        "file": moved.name if moved else None,
        "stage": error.get("stage"),
        "attempts": record["attempts"],
        "reason": error.get("reason", "unknown failure"),
        "exitCode": error.get("exitCode"),
        "stderrTail": error.get("stderrTail", ""),
        "failedAt": utc_now(),
    })
    return folder
