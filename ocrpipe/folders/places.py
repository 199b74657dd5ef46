"""Where INDEX_DIR and WORK_DIR are: checked when a command starts to use them, with the setting named."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ocrpipe.config import Settings
from ocrpipe.errors import ConfigError


def writable(folder: Path) -> str | None:
    """None when ``folder`` exists or can be made and a file can be written in it; else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".ocrpipe-probe-{uuid.uuid4().hex[:8]}"
        with open(probe, "x") as handle:
            handle.write("ok")
        os.remove(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_places(settings: Settings) -> None:
    """The index, work and trash folders ocrpipe was told to use, made if missing and written to once:
    a folder on a read-only or missing disk stops the command at start (exit 2), not at the first job."""
    for name, folder in (("INDEX_DIR", settings.index_dir_set), ("WORK_DIR", settings.work_dir_set),
                         ("RETAIN_TRASH_DIR", settings.retain_trash_dir)):
        if folder is None:
            continue
        problem = writable(folder)
        if problem:
            raise ConfigError(f"{name}={str(folder)!r} is not valid: it cannot be made or written to ({problem})")
