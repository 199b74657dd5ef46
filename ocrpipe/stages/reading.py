"""How well each page read: the ocrmypdf plugin's reports of Tesseract's word confidences, per call, mapped
to each document's pages (a batch's members, a split document's ranges) and kept beside its final.pdf."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.stages.orientation import PLUGIN

# The plugin's own constant (it imports nothing of ocrpipe, and importing it would import ocrmypdf).
READING_DIR_ENV = "OCRPIPE_READING_DIR"
REPORTS = "readings"  # inside the call's tmp/ folder, like the orientation reports
READINGS_FILE = "readings.json"  # beside final.pdf: one entry per page of the document
Reading = dict[str, Any]  # {"chars": int, "confidence": float}; None for a page Tesseract did not read


def reading_options(settings: Settings) -> list[str]:
    """The plugin, for the calls that do not load it already (ROTATE_PAGES=auto does): it records each
    page's reading from the hOCR Tesseract writes anyway, and changes nothing in the output."""
    return [] if settings.rotate_pages == "auto" else ["--plugin", str(PLUGIN)]


def reading_env(env: dict[str, str], reports: str = REPORTS) -> dict[str, str]:
    """The tool environment with the (emptied) folder the plugin reports into; one per concurrent call."""
    folder = Path(env["TMPDIR"]) / reports
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    return {**env, READING_DIR_ENV: str(folder)}


def call_readings(env: dict[str, str], pages: int) -> list[Reading | None]:
    """Each page of the call (in its order) as the plugin reported it; None where it did not (a page that
    kept its text under --skip-text, or a renderer that writes no hOCR)."""
    found: list[Reading | None] = [None] * pages
    folder = env.get(READING_DIR_ENV)
    for path in sorted(Path(folder).glob("reading-*.json")) if folder else []:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        checked = checked_reading(report)
        page = report.get("page") if isinstance(report, dict) else None
        if checked is not None and isinstance(page, int) and 1 <= page <= pages:
            found[page - 1] = checked
    return found


def checked_reading(value: object) -> Reading | None:
    """A reading as ocrpipe writes it, or None: what comes from a job folder is checked before use."""
    if not isinstance(value, dict):
        return None
    chars, confidence = value.get("chars"), value.get("confidence")
    if (not isinstance(chars, int) or isinstance(chars, bool) or chars < 0
            or not isinstance(confidence, (int, float)) or isinstance(confidence, bool)
            or not math.isfinite(confidence) or not 0 <= confidence <= 100):
        return None
    return {"chars": chars, "confidence": float(confidence)}


def save_readings(job_dir: Path, readings: Sequence[Reading | None]) -> None:
    """The document's readings beside its final.pdf (not fsynced: lost in a power cut, the OCR runs again)."""
    atomic_write_json(job_dir / READINGS_FILE, {"pages": list(readings)}, durable=False)


def load_readings(job_dir: Path, pages: int) -> list[Reading | None]:
    """What save_readings kept, checked; a page without one (or no file) is None."""
    try:
        saved = read_json(job_dir / READINGS_FILE)
    except (OSError, ValueError):
        return [None] * pages
    listed = saved.get("pages") if isinstance(saved, dict) else None
    listed = listed if isinstance(listed, list) else []
    return [checked_reading(listed[n]) if n < len(listed) else None for n in range(pages)]


def save_range_readings(path: Path, pages: list[int], readings: Sequence[Reading | None]) -> None:
    """A split document's range (the document's page indices ``pages``): its readings, kept beside its
    output, which a later attempt may reuse."""
    atomic_write_json(path, {"pages": pages, "readings": list(readings)}, durable=False)


def merged_range_readings(paths: Sequence[Path], pages: int) -> list[Reading | None]:
    """The ranges' readings, in the whole document's page order."""
    merged: list[Reading | None] = [None] * pages
    for path in paths:
        try:
            saved = read_json(path)
        except (OSError, ValueError):
            continue
        for index, reading in zip(saved.get("pages") or [], saved.get("readings") or [], strict=False):
            if isinstance(index, int) and 0 <= index < pages:
                merged[index] = checked_reading(reading)
    return merged
