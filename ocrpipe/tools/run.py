"""The one way ocrpipe starts a tool: argument list, no stdin, time limit, whole-tree kill."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ocrpipe.errors import ToolTimeout, TransientError
from ocrpipe.folders.heartbeat import cancelled, tool_running
from ocrpipe.proctree import kill_tree
from ocrpipe.tools.detach import detach_flags
from ocrpipe.tools.readytool import READY

STDERR_TAIL_CHARS = 2000
log = logging.getLogger("ocrpipe.tools")


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr_tail: str
    seconds: float


def tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    watch: Callable[[], None] | None = None,
    watch_every: float = 0.1,
) -> ToolResult:
    """Run ``argv`` to its end or its time limit; stderr goes to ``log_path`` (the tool log).
    ``watch`` is called every ``watch_every`` seconds while the tool runs: what it raises stops the
    tool's whole tree and is raised here (7-Zip's output is watched this way)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, _stderr_file(log_path) as err:
        # An ocrmypdf started ahead (tools/readytool.py) writes into the log itself: no stdout to read.
        proc = READY.take(argv, env, cwd, log_path)
        try:
            proc = proc or subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=dict(env) if env is not None else None, cwd=cwd, **detach_flags(),
            )
        except OSError as exc:
            raise TransientError(f"could not start {argv[0]}: {exc.strerror or exc}") from None
        try:
            with tool_running(proc.pid):
                returncode = _wait(proc, timeout, watch, watch_every)
            if cancelled():  # killed on the scheduler's request: its exit code says nothing (it may read 0)
                raise TransientError(f"{Path(argv[0]).name} was stopped: cancelled by the scheduler ({cancelled()})",
                                     stderr_tail=_read_tail(err))
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
            raise ToolTimeout(
                f"{Path(argv[0]).name} ran longer than {timeout:g}s and was stopped",
                stderr_tail=_read_tail(err),
            ) from None
        except BaseException:
            kill_tree(proc.pid)
            proc.wait()
            raise
        out.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        seconds = time.monotonic() - started
        tool = Path(argv[0]).name
        log.debug("%s exited with %d after %.2fs", tool, returncode, seconds,
                  extra={"tool": tool, "exitCode": returncode, "seconds": round(seconds, 3)})
        return ToolResult(returncode, stdout, _read_tail(err), seconds)


def _wait(proc: subprocess.Popen[bytes], timeout: float, watch: Callable[[], None] | None, every: float) -> int:
    if watch is None:
        return proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return proc.wait(timeout=max(0.0, min(every, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
            watch()


def _stderr_file(log_path: Path | None) -> IO[bytes]:
    if log_path is None:
        return tempfile.TemporaryFile()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return open(log_path, "w+b")


def _read_tail(handle: IO[bytes]) -> str:
    handle.flush()
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - 4 * STDERR_TAIL_CHARS))
    return tail(handle.read().decode("utf-8", errors="replace"))


_DISK_FULL = re.compile(r"No space left on device|There is not enough space on the disk|ENOSPC", re.IGNORECASE)


def disk_full(result: ToolResult) -> bool:
    """Did the tool fail for want of disk space? (Its exit code alone does not say.)"""
    return result.returncode != 0 and bool(_DISK_FULL.search(result.stderr_tail + result.stdout[-2000:]))


_VERSION = re.compile(r"(\d+(?:\.\d+)+)")


def probe_version(command: Sequence[str], args: Sequence[str] = ("--version",), *,
                  env: Mapping[str, str] | None = None) -> str | None:
    """The tool's version number, or None when it does not run."""
    try:
        result = run_tool([*command, *args], timeout=30, env=env)
    except TransientError:
        return None
    text = result.stdout + "\n" + result.stderr_tail
    for line in text.splitlines():
        match = _VERSION.search(line)
        if match:
            return match.group(1)
    return None
