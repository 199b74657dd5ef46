"""Set-up of a pool worker process: signals, logging to the parent, and a watch on the parent."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import psutil

from ocrpipe.logs import WorkerQueueHandler, set_levels
from ocrpipe.proctree import kill_tree

if TYPE_CHECKING:
    from ocrpipe.config import Settings


def init_worker(log_queue: Any, level: str) -> None:
    """Pool initializer: ignore Ctrl+C (the scheduler decides), send log records to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if log_queue is not None:
        root.addHandler(WorkerQueueHandler(log_queue))
    set_levels(level)
    watch_parent()


def watch_parent(interval: float = 1.0) -> None:
    """If the scheduler dies (even by SIGKILL), kill this worker's tools and exit: no orphans."""
    import multiprocessing  # loaded in a worker anyway; not at the scheduler's import (see pools.spawn_context)

    # The scheduler's pid as multiprocessing knows it: if it died while this worker was still
    # starting, os.getppid() already names the adoptive parent (init).
    known = multiprocessing.parent_process()
    ppid = known.pid if known is not None and known.pid else os.getppid()
    try:
        parent = psutil.Process(ppid)
    except psutil.NoSuchProcess:
        os._exit(1)

    def parent_alive() -> bool:
        # On POSIX an orphan is re-parented at once, even while its dead parent is an unreaped zombie.
        if os.getppid() != ppid:
            return False
        try:
            return parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def loop() -> None:
        while parent_alive():
            time.sleep(interval)
        for child in psutil.Process().children(recursive=False):
            kill_tree(child.pid, grace=1.0)
        os._exit(1)

    threading.Thread(target=loop, name="watch-parent", daemon=True).start()


# What each pool's stages import (engine/entry.py). A worker loads only its own: an OCR worker started beside
# the first PREP is then ready (about 0.06 s sooner) when that PREP ends, so its job needs no second worker.
WARM_MODULES = {
    "CONVERT": ("ocrpipe.stages.convert",),
    "PREP": ("ocrpipe.stages.prep",),
    "OCR": ("ocrpipe.stages.ocr", "ocrpipe.stages.batch", "ocrpipe.stages.split"),
}


def warm_up(stage: str | None = None, settings: Settings | None = None, keep_tools_ready: bool = False) -> None:
    """A task that only loads what the stage's work needs (PREP's and OCR's when None). An OCR worker given
    the settings first starts its ocrmypdf ahead (tools/readytool.py), so both imports run at once, and
    again after each call when ``keep_tools_ready`` (a service; ``run --once`` has no next file to wait for)."""
    import importlib

    if stage == "OCR" and settings is not None:
        from ocrpipe.tools.readytool import READY

        READY.keep_ready = keep_tools_ready
        start_tool_ahead(settings)
    wanted = WARM_MODULES.get(stage) if stage else None
    for module in wanted or (*WARM_MODULES["PREP"], *WARM_MODULES["OCR"]):
        importlib.import_module(module)


def start_tool_ahead(settings: Settings) -> None:
    """This worker's ocrmypdf started now for its next call (it ends when the worker ends)."""
    from ocrpipe.stages.common import tools_base_env
    from ocrpipe.tools.readytool import READY

    READY.start(settings.ocrmypdf, tools_base_env(settings))


def ready_for_next(settings: Settings) -> None:
    """After an OCR stage: another ocrmypdf started ahead, where the worker keeps one ready."""
    from ocrpipe.tools.readytool import READY

    if READY.keep_ready:
        start_tool_ahead(settings)
