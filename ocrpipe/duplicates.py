"""Hold a file whose job key is already known, untouched, for a person to decide about."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ocrpipe.fsutil import atomic_write_json, candidate_names, move_replacing, read_json
from ocrpipe.layout import fit_name, folder_for
from ocrpipe.store import utc_now

STATUS_FILE = "status.json"


def held_keys(hold_dir: Path) -> set[str]:
    """The job keys held: from each folder's status.json, or the folder's name in an older layout."""
    if not hold_dir.is_dir():
        return set()
    keys = set()
    for folder in hold_dir.iterdir():
        if folder.is_dir():
            try:
                keys.add(read_json(folder / STATUS_FILE)["jobKey"])
            except (OSError, ValueError, KeyError, TypeError):
                if "__" in folder.name:
                    keys.add(folder.name)
    return keys


def hold_duplicate(source: Path, *, relpath: str, job_key: str, hold_dir: Path, reason: str) -> Path:
    """Move the file to ``hold/duplicates/<short job key>/<ts>__<name>`` and describe it in status.json
    (with the full key and the original's path)."""
    folder = folder_for(hold_dir, job_key, STATUS_FILE)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    folder.mkdir(parents=True, exist_ok=True)
    original = PurePosixPath(relpath).name
    name = next(c for c in candidate_names(fit_name(folder, f"{stamp}__{original}")) if not (folder / c).exists())
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
