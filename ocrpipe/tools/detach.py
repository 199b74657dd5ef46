"""How a tool process is started apart from ocrpipe's own: its own session, or on Windows its own group."""

from __future__ import annotations

import sys
from typing import TypedDict

# Windows process creation flags (subprocess defines them only on Windows).
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


class DetachFlags(TypedDict, total=False):
    """The keyword arguments of ``subprocess.Popen`` that detach_flags gives."""

    creationflags: int
    start_new_session: bool


def detach_flags(*, windows: bool = sys.platform == "win32") -> DetachFlags:
    """A tool gets its own process group, so a Ctrl+C in the terminal reaches ocrpipe, not the tool:
    ocrpipe then decides whether to let it finish or to kill the tree. On Windows a new process group
    still shares the console, which sends CTRL_BREAK and console close to every process on it; a
    console of its own (no window) keeps the tool out of them, and no window flashes under a task."""
    if windows:
        return {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    return {"start_new_session": True}
