"""``ocrpipe run``: check the tools, take the data folder's lock, loop the scheduler, stop cleanly."""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import time
from types import FrameType

import psutil
from filelock import FileLock, Timeout

from ocrpipe.config import Settings
from ocrpipe.errors import AlreadyRunningError, ExitCode, MissingToolError
from ocrpipe.logs import setup_logging
from ocrpipe.pools import process_pool_factory, spawn_context
from ocrpipe.scheduler import Scheduler
from ocrpipe.toolcheck import build_profile, missing_languages, probe_tools
from ocrpipe.tools.run import kill_tree

log = logging.getLogger("ocrpipe")
LOCK_FILE = "ocrpipe.lock"
PID_FILE = "ocrpipe.pid"


def check_tools(settings: Settings) -> dict[str, object]:
    """The job profile, once every tool answers; otherwise a MissingToolError naming what to install."""
    tools = probe_tools(settings)
    missing = [t.name for t in tools if not t.ok]
    if missing:
        raise MissingToolError(f"missing tool(s): {', '.join(missing)}; run 'ocrpipe doctor' for install commands")
    langs = missing_languages(settings)
    if langs:
        raise MissingToolError(f"Tesseract has no data for OCR_LANG language(s) {', '.join(langs)}; "
                               "run 'ocrpipe doctor' for install commands")
    return build_profile(settings, tools)


def take_instance_lock(settings: Settings) -> FileLock:
    """One ocrpipe per data folder: a second one stops at once, naming the first."""
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.index_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = (settings.index_dir / PID_FILE).read_text().strip()
        except OSError:
            holder = "unknown"
        raise AlreadyRunningError(f"another ocrpipe (pid {holder}) is already running on {settings.data_dir}") from None
    (settings.index_dir / PID_FILE).write_text(str(os.getpid()))
    return lock


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def kill_descendants() -> None:
    """Pool workers and the tools they run: nothing outlives ocrpipe."""
    for child in psutil.Process().children(recursive=False):
        kill_tree(child.pid, grace=2.0)


def run(settings: Settings, *, once: bool) -> ExitCode:
    handler = setup_logging(settings.log_level, json_lines=settings.log_json)
    profile = check_tools(settings)
    lock = take_instance_lock(settings)
    queue = spawn_context().Queue()
    listener = logging.handlers.QueueListener(queue, handler, respect_handler_level=True)
    listener.start()
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    scheduler = Scheduler(settings, profile=profile,
                          executor_factory=process_pool_factory(queue, settings.log_level))
    log.info("ocrpipe watching %s (PREP %d, OCR %d)%s", settings.in_dir, settings.prep_concurrency,
             settings.ocr_concurrency, ", until in/ is empty" if once else "")
    interrupted = False
    try:
        while True:
            scheduler.tick(time.monotonic())
            if once and scheduler.idle():
                break
            scheduler.wait(settings.poll_seconds)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: stopping; unfinished jobs resume at the next start")
        kill_descendants()
    finally:
        scheduler.close(wait=not interrupted)
        listener.stop()
        queue.close()
        (settings.index_dir / PID_FILE).unlink(missing_ok=True)
        lock.release()
    if interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.JOBS_FAILED if scheduler.errors_this_run else ExitCode.OK
