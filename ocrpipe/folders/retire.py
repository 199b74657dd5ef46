"""Retention on disk: the files of an old archived original or error/ folder, checked, then deleted or
moved to the trash folder. Only files ocrpipe put there are touched: the archived original the index
names, and in an error/ folder its error.json and the original it names; never a link, never anything
outside archive/ and error/."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import drop_temp, place_file
from ocrpipe.folders.nofollow import is_real_dir, is_regular, link_on_the_way, open_regular
from ocrpipe.folders.pathcheck import UnsafePath, check_name
from ocrpipe.folders.publish import ERROR_FILE, INTAKE_STAGE

log = logging.getLogger("ocrpipe.retention")
INTAKE_FOLDER = re.compile(r"intake-[0-9a-f]{16}")  # as engine/refusal.py names a refused file's folder
TRASH_ARCHIVE, TRASH_ERROR = "archive", "error"


def _inside(root: Path, path: Path) -> bool:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    return bool(rel.parts) and ".." not in rel.parts


def _regular_size(root: Path, path: Path) -> int | None:
    """The size of ``path`` when it is a regular file inside ``root`` with no link on the way; else None."""
    if not _inside(root, path) or link_on_the_way(root, path):
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if is_regular(st) else None


def archive_item(settings: Settings, run: dict[str, Any]) -> dict[str, Any] | None:
    """The archived original of an old run as an item to remove; None when it is gone already."""
    path = Path(run["path"])
    size = _regular_size(settings.archive_dir, path)
    if size is None:
        if os.path.lexists(path) and not _inside(settings.archive_dir, path):
            log.warning("retention: %s is not inside ARCHIVE_DIR (%s); left alone", path, settings.archive_dir)
        return None
    return {"kind": "archive", **run, "files": [str(path)], "bytes": size}


def _error_record(folder: Path) -> dict[str, Any] | None:
    try:
        with open_regular(folder / ERROR_FILE) as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _error_files(folder: Path, record: dict[str, Any]) -> list[Path]:
    """The original ocrpipe put beside error.json (when it is still there), then error.json: removed last, so
    an interrupted removal still finds what to finish."""
    files = []
    try:
        name = check_name(record.get("file"), what="the original named in error.json")
        if name.casefold() != ERROR_FILE and _regular_size(folder, folder / name) is not None:
            files.append(folder / name)
    except UnsafePath:
        pass  # no original named (it was missing when the job failed): only error.json goes
    return [*files, folder / ERROR_FILE]


def error_item(settings: Settings, run: dict[str, Any]) -> dict[str, Any] | None:
    """The error/ folder of an old failed run: its error.json must name the run's key; None when gone."""
    folder = Path(run["path"])
    if folder.parent != settings.error_dir or not is_real_dir(folder):
        return None
    record = _error_record(folder)
    if record is None or record.get("jobKey") != run["jobKey"]:
        if record is not None:
            log.warning("retention: %s/%s names another job; left alone", folder, ERROR_FILE)
        return None
    return _folder_item(folder, record, run)


def _folder_item(folder: Path, record: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    files = _error_files(folder, record)
    size = sum(_regular_size(folder, f) or 0 for f in files)
    return {"kind": "error", **run, "files": [str(f) for f in files], "bytes": size}


def intake_error_items(settings: Settings, before: str) -> Iterator[dict[str, Any]]:
    """Folders of files refused at intake (no job, so no index row): aged by their error.json's failedAt."""
    root = settings.error_dir
    try:
        entries = sorted(e.name for e in os.scandir(root) if INTAKE_FOLDER.fullmatch(e.name))
    except OSError:
        return
    for name in entries:
        folder = root / name
        if not is_real_dir(folder):
            continue
        record = _error_record(folder)
        failed = record.get("failedAt") if record else None
        if record is None or record.get("stage") != INTAKE_STAGE or not isinstance(failed, str) or failed >= before:
            continue
        yield _folder_item(folder, record, {"jobKey": None, "runId": None, "state": "ERROR", "path": str(folder),
                                            "finishedAt": failed})


def _trash_place(settings: Settings, item: dict[str, Any], path: Path) -> tuple[Path, str]:
    """Where a file goes in the trash folder: archive/<its path under archive/>, error/<folder>/<name>."""
    trash = settings.retain_trash_dir
    assert trash is not None
    if item["kind"] == "archive":
        rel = path.relative_to(settings.archive_dir)
        folder = trash / TRASH_ARCHIVE / rel.parent
    else:
        folder = trash / TRASH_ERROR / path.parent.name
    # From the file's path: a restart after a crash finds the same temp file and finishes that move.
    tmp = f".{hashlib.sha256(str(path).encode('utf-8', 'surrogateescape')).hexdigest()[:16]}.trash.ocrpipe-tmp"
    return folder, tmp


def remove_item(settings: Settings, item: dict[str, Any]) -> tuple[int, int, str | None]:
    """Delete (or move to RETAIN_TRASH_DIR) the item's files; (files, bytes, trash folder) of what went now.
    Safe to repeat: a file already gone counts as done; a file that became a link or left its folder is
    not touched. OSError when a file cannot be removed (it stays listed for the next run)."""
    root = settings.archive_dir if item["kind"] == "archive" else settings.error_dir
    if item["kind"] == "error" and Path(item["path"]).parent != root:
        return 0, 0, None  # the plan names a folder that is not one of error/: nothing of it is touched
    removed = size = 0
    trashed: str | None = None
    for name in item["files"]:
        path = Path(name)
        bytes_or_none = _regular_size(root, path)
        if settings.retain_trash_dir is not None:
            folder, tmp = _trash_place(settings, item, path)
            trashed = str(folder)
            if bytes_or_none is not None or (folder / tmp).exists():  # to move, or a move a crash cut short
                place_file(path, folder, path.name, tmp_name=tmp, keep_source=False)
                drop_temp(folder, tmp)
                removed, size = removed + 1, size + (bytes_or_none or 0)
            continue
        if bytes_or_none is None:
            continue  # gone already, or no longer a plain file of ours
        os.unlink(path)
        removed, size = removed + 1, size + bytes_or_none
    if item["kind"] == "error":
        try:
            os.rmdir(item["path"])  # only when empty: anything else someone put there stays
        except OSError:
            pass
    return removed, size, trashed

