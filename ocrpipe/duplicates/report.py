"""What a person reads about a held key: ``status.json`` beside the files and ``reports/duplicates/<jobKey>.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocrpipe.duplicates.hold import ACTIONS, DECISION_FILE, STATUS_FILE, Arrival, arrivals
from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.folders.pathcheck import check_job_key, child_path

__all__ = ["ACTIONS", "describe", "refresh", "report_file", "status_error"]


def describe(arrival: Arrival) -> dict[str, Any]:
    return {"fileName": arrival.file_name, "source": arrival.meta.get("source"), "heldFile": arrival.held_name,
            "path": str(arrival.path), "sizeBytes": arrival.meta.get("sizeBytes"),
            "detectedAt": arrival.meta.get("detectedAt"),
            **({"decided": arrival.intent["action"]} if arrival.intent else {}),
            **({"problem": arrival.problem} if arrival.problem else {})}


def refresh(folder: Path, reports_dir: Path, *, key: str, existing: dict[str, Any] | None, profile: dict[str, Any],
            error: str | None = None, waiting: str | None = None) -> list[Arrival]:
    """Rewrite both files from what is held now; with nothing held, remove them and the empty folder.
    The report keeps its first ``incoming`` and ``detectedAt``: it grows, nothing is overwritten."""
    report_path = report_file(reports_dir, key)
    held = arrivals(folder)
    if not held:
        for leftover in (folder / STATUS_FILE, folder / DECISION_FILE, report_path):
            leftover.unlink(missing_ok=True)
        for empty in (folder, reports_dir):
            try:
                empty.rmdir()
            except OSError:
                pass  # not empty (a person's file) or already gone
        return held
    files = [describe(a) for a in held]
    status: dict[str, Any] = {"state": "DUPLICATE_PENDING", "jobKey": key, "files": files,
                              "existing": existing, "actions": ACTIONS}
    if waiting:
        status["waiting"] = waiting
    if error:
        status["error"] = error
    atomic_write_json(folder / STATUS_FILE, status, pretty=True)
    try:
        previous = read_json(report_path)
    except (OSError, ValueError):
        previous = {}
    names = {f["heldFile"] for f in files}
    kept = previous.get("incoming")
    first = kept if kept and kept.get("heldFile") in names else files[0]
    reports_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report_path, pretty=True, obj={
        "jobKey": key, "detectedAt": previous.get("detectedAt") or first.get("detectedAt"),
        "incoming": first, "arrivals": files, "existing": existing, "profile": profile, "actions": ACTIONS,
    })
    return held


def report_file(reports_dir: Path, key: str) -> Path:
    """``reports/duplicates/<jobKey>.json``, named by the full key as the design asks: 80 + 20 + 130 + 5
    characters, 249 with its atomic-write temp, within MAX_PATH for a data folder of up to 80 characters."""
    return child_path(reports_dir, f"{check_job_key(key)}.json")


def status_error(folder: Path) -> str | None:
    """The error status.json shows now: a malformed decision is logged once, not at every tick."""
    try:
        return read_json(folder / STATUS_FILE).get("error")
    except (OSError, ValueError, AttributeError):
        return None
