"""Heartbeats: a worker thread rewrites ``<stage>.heartbeat`` while a stage runs; the scheduler
reads its age to find lost workers, and the pids it names to kill what they left running. Anyone who
can write work/ can write a heartbeat: every field is checked before use, and what it names is killed
only on this machine and only if it is ocrpipe's own (ownprocs.py). The writer also obeys cancel
requests (cancel.py): it kills its own tools, on the machine that runs them."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from ocrpipe.folders.cancel import cancel_reason
from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.model import Stage
from ocrpipe.ownprocs import is_own
from ocrpipe.proctree import kill_tree

HEARTBEAT_FILES = {Stage.CONVERT: "convert.heartbeat", Stage.PREP: "prep.heartbeat", Stage.OCR: "ocr.heartbeat"}
# The stage running in this thread: one per pool worker process, several in a Dask worker's threads.
_active = threading.local()
HOST = socket.gethostname()
CANCEL_CHECK_SECONDS = 1.0
# What a heartbeat's fields may hold: Windows pids are 32-bit numbers (Linux's are smaller); no stage
# has anywhere near a million attempts or a worker a hundred tools at once; host names are short.
MAX_PID = 2**32 - 1
MAX_ATTEMPT = 1_000_000
MAX_TOOLS = 100
MAX_HOST_CHARS = 255
REPORTED_KEPT = 1000
log = logging.getLogger("ocrpipe.worker")
_reported: set[Path] = set()  # heartbeats already logged as malformed: each is said once


def heartbeat_path(job_dir: Path, stage: Stage) -> Path:
    return job_dir / HEARTBEAT_FILES[stage]


def _identity(pid: int) -> dict[str, Any] | None:
    try:
        return {"pid": pid, "createTime": psutil.Process(pid).create_time()}
    except psutil.NoSuchProcess:
        return None


class HeartbeatWriter:
    """Rewrites the heartbeat every ``interval`` seconds, naming the worker and its tools."""

    def __init__(self, targets: Sequence[tuple[Path, int]], *, stage: Stage, interval: float) -> None:
        self.targets = list(targets)  # (heartbeat file, attempt): one per job, several for a batch
        self.stage = stage
        self.interval = interval
        self.worker = _identity(os.getpid())
        self.tools: list[dict[str, Any]] = []
        self.cancelled: str | None = None  # the scheduler's reason, once a cancel request was obeyed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{stage.value}", daemon=True)

    def beat(self) -> None:
        for path, attempt in self.targets:
            # No fsync: a heartbeat only matters while this machine is up.
            atomic_write_json(path, {"stage": self.stage.value, "attempt": attempt, "worker": self.worker,
                                     "host": HOST, "tools": list(self.tools), "at": time.time()}, durable=False)

    def obey_cancel(self) -> None:
        """A cancel request for this attempt: kill the tools here, where they run. The stage then fails
        as a killed tool does; its record has moved on, so that end is dropped (common.py)."""
        for path, attempt in self.targets:
            reason = cancel_reason(path.parent, self.stage, attempt)
            if reason is None:
                continue
            if self.cancelled is None:
                log.warning("%s attempt %d cancelled by the scheduler (%s); stopping its tools",
                            self.stage.value, attempt, reason)
            self.cancelled = reason
            for tool in list(self.tools):
                if _same_process(tool):
                    kill_tree(tool["pid"], grace=2.0)
            return

    def _loop(self) -> None:
        next_beat = time.monotonic() + self.interval
        # A cancel request is looked for at least every second, whatever the heartbeat interval.
        while not self._stop.wait(min(self.interval, CANCEL_CHECK_SECONDS)):
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.interval
                try:
                    self.beat()
                except OSError:
                    pass  # a full disk must not kill the stage; the scheduler sees the heartbeat age
            self.obey_cancel()

    def __enter__(self) -> HeartbeatWriter:
        self.beat()
        self._thread.start()
        _active.writer = self
        return self

    def __exit__(self, *exc: object) -> None:
        _active.writer = None
        self._stop.set()
        self._thread.join()


@contextmanager
def tool_running(pid: int) -> Iterator[None]:
    """Name a tool's process in the active heartbeat while it runs (no-op outside a stage)."""
    writer: HeartbeatWriter | None = getattr(_active, "writer", None)
    identity = _identity(pid) if writer is not None else None
    if writer is None or identity is None:
        yield
        return
    writer.tools.append(identity)
    try:
        writer.beat()
    except OSError:
        pass
    try:
        yield
    finally:
        writer.tools.remove(identity)


def cancelled() -> str | None:
    """Why the scheduler cancelled the stage running in this thread, if it did (its tools were killed)."""
    writer: HeartbeatWriter | None = getattr(_active, "writer", None)
    return writer.cancelled if writer is not None else None


def is_heartbeat_stale(hb_path: Path, timeout_s: float, absent_timeout_s: float | None = None, *,
                       now: float | None = None) -> bool:
    """Present: stale once older than ``timeout_s``. Absent: stale only if ``absent_timeout_s == 0``
    (the caller counts that time down from the stage's submission); it defaults to ``2 * timeout_s``."""
    if absent_timeout_s is None:
        absent_timeout_s = 2 * timeout_s
    try:
        mtime = hb_path.stat().st_mtime
    except FileNotFoundError:
        return absent_timeout_s == 0
    return (time.time() if now is None else now) - mtime > timeout_s


def read_heartbeat(hb_path: Path) -> dict[str, Any] | None:
    """The heartbeat, its fields checked; None when absent, unreadable or not of the shape ocrpipe
    writes (then nothing it names is cancelled or killed, and the log says so once)."""
    try:
        raw = read_json(hb_path)  # never through a link, never waiting on a FIFO
    except (OSError, ValueError):
        return None
    beat = checked_heartbeat(raw)
    if beat is None and hb_path not in _reported:
        if len(_reported) >= REPORTED_KEPT:
            _reported.clear()
        _reported.add(hb_path)
        log.warning("%s is not a heartbeat ocrpipe writes (a field of the wrong type or range); "
                    "nothing it names is cancelled or killed", hb_path)
    return beat


def checked_identity(value: Any) -> dict[str, Any] | None:
    """``{"pid": int, "createTime": float}`` with both in range, else None."""
    if not isinstance(value, dict):
        return None
    pid, created = value.get("pid"), value.get("createTime")
    if type(pid) is not int or not 0 < pid <= MAX_PID:  # type(): True is an int to isinstance
        return None
    if not (type(created) is int or type(created) is float) or not math.isfinite(created) or created < 0:
        return None
    return {"pid": pid, "createTime": float(created)}


def checked_heartbeat(raw: Any) -> dict[str, Any] | None:
    """A heartbeat as HeartbeatWriter.beat writes it, every field checked, or None."""
    if not isinstance(raw, dict):
        return None
    stage, attempt, host, tools = raw.get("stage"), raw.get("attempt"), raw.get("host"), raw.get("tools")
    if stage not in {s.value for s in Stage} or type(attempt) is not int or not 0 < attempt <= MAX_ATTEMPT:
        return None
    if not isinstance(host, str) or not 0 < len(host) <= MAX_HOST_CHARS:
        return None
    worker = checked_identity(raw.get("worker"))
    if raw.get("worker") is not None and worker is None:
        return None
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        return None
    checked = [checked_identity(tool) for tool in tools]
    if None in checked:
        return None
    at = raw.get("at", 0.0)
    if type(at) not in (int, float) or not math.isfinite(at):
        return None
    return {"stage": stage, "attempt": attempt, "host": host, "worker": worker, "tools": checked, "at": float(at)}


def _same_process(identity: dict[str, Any] | None) -> bool:
    """The pid is alive and is the process recorded: pids are reused, create times are not. Only for
    identities this process made itself (its own tools)."""
    if not identity:
        return False
    try:
        return abs(psutil.Process(identity["pid"]).create_time() - identity["createTime"]) < 0.01
    except (psutil.NoSuchProcess, KeyError, TypeError):
        return False


def kill_recorded(hb_path: Path, *, include_worker: bool, work_dir: Path) -> list[int]:
    """Kill the tools (and the worker, if asked) a heartbeat names, when it was written on this machine
    and they are still those processes and this ocrpipe's own (``work_dir``'s)."""
    beat = read_heartbeat(hb_path)
    if beat is None or beat["host"] != HOST:  # another machine's: asked to stop through a cancel request
        return []
    named = [*beat["tools"], *([beat["worker"]] if include_worker and beat["worker"] else [])]
    killed = []
    for identity in named:
        if is_own(identity, work_dir):
            killed += kill_tree(identity["pid"], grace=2.0)
    return killed


def kill_identity(identity: dict[str, Any] | None, *, host: str | None, work_dir: Path) -> list[int]:
    """Kill a process (with its children) named by pid and create time on ``host``, if that is this
    machine and the process is still that one and this ocrpipe's own."""
    checked = checked_identity(identity)
    if checked is None or host != HOST or not is_own(checked, work_dir):
        return []
    return kill_tree(checked["pid"], grace=2.0)
