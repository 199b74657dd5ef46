"""Killing a process with everything it started, children first."""

from __future__ import annotations

import psutil

KILL_GRACE_SECONDS = 3.0


def kill_tree(pid: int, *, grace: float = KILL_GRACE_SECONDS) -> list[int]:
    """Terminate a process and all its descendants, then kill what is left; returns the pids."""
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []
    # Children first, so a parent cannot start new ones while we work through the list.
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace)
    return [p.pid for p in procs]
