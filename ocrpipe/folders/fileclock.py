"""The file server's clock: heartbeat mtimes on a shared volume are stamped by the server, so their
age is judged against a probe file the scheduler touches in the same folder, not against its own clock."""

from __future__ import annotations

import os
import time
from pathlib import Path

PROBE_FILE = ".clock-probe"


class FileClock:
    """``now()``: the time the volume holding ``folder`` stamps a file written now."""

    def __init__(self, folder: Path) -> None:
        self.probe = folder / PROBE_FILE
        try:
            self.probe.unlink(missing_ok=True)  # left by a crash between its write and its removal
        except OSError:
            pass

    def now(self) -> float:
        """Touch the probe and read its mtime back; the local clock when the volume cannot be written
        (then a full disk, not a skew, is the problem, and the local clock is the best guess)."""
        try:
            self.stamp()
            stamped = self.probe.stat().st_mtime
            self.probe.unlink()  # work/ holds job folders only
            return stamped
        except OSError:
            return time.time()

    def stamp(self) -> None:
        # Writing (not utime with an explicit time) lets the server set the mtime: NFS and SMB alike.
        fd = os.open(self.probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
