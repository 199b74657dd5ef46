"""Heartbeats: a worker thread rewrites ``<stage>.heartbeat`` while a stage runs; the scheduler
reads its age to find lost workers, and the pids it names to kill what they left running. The writer
also obeys cancel requests (cancel.py): it kills its own tools, on the machine that runs them."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import psutil

from ocrpipe.cancel import cancel_reason
from ocrpipe.fsutil import atomic_write_json
from ocrpipe.model import Stage
from ocrpipe.proctree import kill_tree

HEARTBEAT_FILES = {Stage.PREP: "prep.heartbeat", Stage.OCR: "ocr.heartbeat"}
# The stage running in this thread: one per pool worker process, several in a Dask worker's threads.
_active = threading.local()
HOST = socket.gethostname()
CANCEL_CHECK_SECONDS = 1.0
log = logging.getLogger("ocrpipe.worker")


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

    def __enter__(self) -> "HeartbeatWriter":
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
    try:
        return json.loads(hb_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _same_process(identity: dict[str, Any] | None) -> bool:
    """The pid is alive and is the process recorded: pids are reused, create times are not."""
    if not identity:
        return False
    try:
        return abs(psutil.Process(identity["pid"]).create_time() - identity["createTime"]) < 0.01
    except (psutil.NoSuchProcess, KeyError, TypeError):
        return False


def kill_recorded(hb_path: Path, *, include_worker: bool) -> list[int]:
    """Kill the tools (and the worker, if asked) a heartbeat names, when they are still those processes."""
    beat = read_heartbeat(hb_path)
    if beat is None:
        return []
    named = list(beat.get("tools") or [])
    if include_worker:
        named.append(beat.get("worker"))
    killed = []
    for identity in named:
        if _same_process(identity) and identity["pid"] != os.getpid():
            killed += kill_tree(identity["pid"], grace=2.0)
    return killed


def kill_identity(identity: dict[str, Any] | None) -> list[int]:
    """Kill a process (with its children) named by pid and create time, if it is still that process."""
    if _same_process(identity) and identity is not None and identity["pid"] != os.getpid():
        return kill_tree(identity["pid"], grace=2.0)
    return []
