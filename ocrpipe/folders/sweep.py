"""Sub-folders of in/ that ocrpipe emptied (a scanner makes one a day) are removed once they stayed empty a while."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ocrpipe.folders.names import readable_name

log = logging.getLogger("ocrpipe.sweep")

MIN_AGE_SECONDS = 60.0  # a folder changed (or made) within the last minute is never removed


class EmptyFolderSweeper:
    """Remembers the folders ocrpipe took files from, and removes those that have been empty for
    ``empty_for`` seconds; never in/ itself, never a folder a person made and ocrpipe never emptied.
    Kept in memory only: after a restart, folders emptied before it are left as they are."""

    def __init__(self, in_dir: Path, *, empty_for: float) -> None:
        self.in_dir = in_dir
        self.empty_for = max(empty_for, MIN_AGE_SECONDS)
        self.noted: set[Path] = set()

    def note(self, folder: Path) -> None:
        if self.in_dir in folder.parents:
            self.noted.add(folder)

    def sweep(self, wall_now: float | None = None) -> list[Path]:
        """Remove the noted folders that are empty and unchanged for long enough; deepest first."""
        wall_now = time.time() if wall_now is None else wall_now
        removed = []
        for folder in sorted(self.noted, key=lambda p: len(p.parts), reverse=True):
            try:
                with os.scandir(folder) as entries:
                    if next(entries, None) is not None:
                        self.noted.discard(folder)  # in use again; noted anew when ocrpipe empties it
                        continue
                # The folder's mtime moves whenever an entry comes or goes, and is set when it is made.
                if wall_now - folder.stat().st_mtime < self.empty_for:
                    continue
                folder.rmdir()  # refused if a file arrived since the look above: then it stays
            except OSError:
                self.noted.discard(folder)  # gone already, or not ours to remove
                continue
            self.noted.discard(folder)
            removed.append(folder)
            log.info("removed the empty folder %s", readable_name(folder.relative_to(self.in_dir).as_posix()))
            self.note(folder.parent)  # it may be empty now: its own wait starts
        return removed
