"""CONVERT stage: an Office document (LibreOffice) or an e-mail (its pages rendered, its attachments after
them) becomes the PDF parts PREP then takes in order, as it takes any PDF, image or archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.errors import Code, PermanentError
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.outcome import StageOutcome, mark_converted
from ocrpipe.folders.store import read_state, update_state
from ocrpipe.model import Stage
from ocrpipe.stages.common import run_stage
from ocrpipe.stages.doctype import detect
from ocrpipe.stages.office import CONVERT_DIR, Deadline, office_pdf


def run_convert(settings: Settings, job_dir: Path, *, attempts: dict[str, int]) -> StageOutcome:
    """Pool entry point: runs in a spawned worker."""

    def finish(outcome: StageOutcome) -> None:
        # Not fsynced: lost in a power cut, CONVERT runs again; nothing has moved yet.
        update_state(job_dir, lambda record: mark_converted(record, outcome), durable=False)

    return run_stage(settings, Stage.CONVERT, job_dir, lambda: _convert(settings, job_dir), attempts=attempts,
                     finish=finish)


def _convert(settings: Settings, job_dir: Path) -> dict[str, Any]:
    record = read_state(job_dir)
    source = job_dir / record["input"]
    shown = record["source"]["name"]
    out = job_dir / CONVERT_DIR
    remove_tree(out)  # a retried attempt starts from a clean folder
    out.mkdir()
    deadline = Deadline(settings.convert_timeout_seconds)
    found = detect(source)
    if found is None or found.kind not in ("office", "email"):
        raise PermanentError(f"{shown} is no longer an Office document or an e-mail", code=Code.UNSUPPORTED_TYPE)
    if found.kind == "office":
        office_pdf(settings, job_dir, source, found, out / "0001.pdf", deadline=deadline, shown=shown)
        return {"parts": [{"path": f"{CONVERT_DIR}/0001.pdf", "name": shown}], "converter": "LibreOffice"}
    from ocrpipe.stages.email import render_message  # WeasyPrint's helpers only where e-mail comes

    parts, skipped = render_message(settings, job_dir, source, out, deadline=deadline, shown=shown,
                                    office=bool(record.get("convertOffice")))
    return {"parts": parts, "skipped": skipped, "converter": "e-mail"}
