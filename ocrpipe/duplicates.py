"""Hold a file whose job key is already known, untouched, for a person to decide about."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ocrpipe.fsutil import atomic_write_json, candidate_names, move_replacing
from ocrpipe.store import utc_now

STATUS_FILE = "status.json"


def held_keys(hold_dir: Path) -> set[str]:
    if not hold_dir.is_dir():
        return set()
    return {p.name for p in hold_dir.iterdir() if p.is_dir() and "__" in p.name}


def hold_duplicate(source: Path, *, relpath: str, job_key: str, hold_dir: Path, reason: str) -> Path:
    """Move the file to ``hold/duplicates/<jobKey>/<ts>__<name>`` and describe it in status.json."""
    folder = hold_dir / job_key
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    folder.mkdir(parents=True, exist_ok=True)
    original = PurePosixPath(relpath).name
    name = next(c for c in candidate_names(f"{stamp}__{original}") if not (folder / c).exists())
    held = move_replacing(source, folder, name)  # one rename: the file is in staging or here, never between
    atomic_write_json(folder / STATUS_FILE, pretty=True, obj={
        "status": "DUPLICATE_PENDING",
        "jobKey": job_key,
        "heldFile": held.name,
        "source": relpath,
        "reason": reason,
        "heldAt": utc_now(),
    })
    return held
