"""Which processes of this machine ocrpipe may kill: only its own. Heartbeats and state.json name
processes, but whoever can write work/ (on a cluster, every worker machine) can write those files; so a
named process is killed only when the process itself shows it is one of this ocrpipe's workers or
tools: still the process recorded (pid and create time), running as ocrpipe's user, and carrying in its
environment the mark ocrpipe gives the workers and tools it starts for this data folder."""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import psutil

OWNER_VARIABLE = "OCRPIPE_OWNER"
CREATE_TIME_TOLERANCE = 0.01  # pids are reused, create times are not
log = logging.getLogger("ocrpipe.ownprocs")


def owner_mark(work_dir: Path) -> str:
    """This data folder's mark: its work folder's absolute path, so an ocrpipe of another data folder
    on the same machine has another mark and its processes are not this one's to kill."""
    return os.path.normcase(os.path.abspath(work_dir))


def mark_env(env: MutableMapping[str, str], work_dir: Path) -> MutableMapping[str, str]:
    """Mark a tool's environment as this ocrpipe's (its children inherit it)."""
    env[OWNER_VARIABLE] = owner_mark(work_dir)
    return env


def mark_own_workers(work_dir: Path) -> None:
    """Pool workers start (spawn) with this process's environment: marked from now on. A worker left
    running by a killed run is recognised by the mark at the next start, when it is no one's child."""
    mark_env(os.environ, work_dir)


def _own_user() -> str | None:
    try:
        return psutil.Process().username()
    except (psutil.Error, OSError):
        return None


def is_own(identity: dict[str, Any], work_dir: Path) -> bool:
    """The process named (a checked ``{"pid", "createTime"}``) is still that process and one of this
    ocrpipe's: its user and its mark are read from the process itself, never from a file."""
    if identity["pid"] == os.getpid():
        return False
    try:
        proc = psutil.Process(identity["pid"])
        if abs(proc.create_time() - identity["createTime"]) >= CREATE_TIME_TOLERANCE:
            return False
        user = _own_user()
        own = (user is not None and proc.username() == user
               and proc.environ().get(OWNER_VARIABLE) == owner_mark(work_dir))
    except (psutil.NoSuchProcess, psutil.ZombieProcess):  # gone: nothing to kill
        return False
    except (psutil.Error, OSError):  # not ours to read: another user's, a protected process
        own = False
    if not own:
        log.warning("process %d is named in %s but is not one of this ocrpipe's; left running",
                    identity["pid"], work_dir)
    return own
