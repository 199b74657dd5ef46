"""``ocrpipe run``: check the tools, take the data folder's lock, loop the scheduler, stop cleanly."""

from __future__ import annotations

import logging
import os
import signal
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import psutil
from filelock import FileLock, Timeout

from ocrpipe.cluster.client import dask_pools
from ocrpipe.config import Settings
from ocrpipe.engine.pools import LogRelay, process_pool_factory
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.errors import AlreadyRunningError, ExitCode
from ocrpipe.folders.intake import STAGING_DIR, staging_refused
from ocrpipe.folders.names import readable_name
from ocrpipe.folders.places import check_places
from ocrpipe.index.metrics import load_metrics, write_metrics
from ocrpipe.logs import setup_logging
from ocrpipe.proctree import kill_tree
from ocrpipe.tools.check import check_tools, with_candidates
from ocrpipe.tools.probecache import ProbeCache

if TYPE_CHECKING:  # imported where used: a run without hooks or HTTP API loads neither
    from ocrpipe.hooks.courier import Courier
    from ocrpipe.web.server import HttpService

log = logging.getLogger("ocrpipe")
LOCK_FILE = "ocrpipe.lock"
PID_FILE = "ocrpipe.pid"


def take_instance_lock(settings: Settings) -> FileLock:
    """One ocrpipe per data folder: a second one stops at once, naming the first. The lock is the data
    folder's (``state_dir``), wherever INDEX_DIR is: two machines with their own local index on one shared
    data folder still exclude each other, and so do an older ocrpipe and this one (same file)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.state_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = (settings.state_dir / PID_FILE).read_text().strip()
        except OSError:
            holder = "unknown"
        raise AlreadyRunningError(f"another ocrpipe (pid {holder}) is already running on {settings.data_dir}") from None
    (settings.state_dir / PID_FILE).write_text(str(os.getpid()))
    return lock


def stop_signal_names(*, windows: bool) -> tuple[str, ...]:
    """The signals that ask ocrpipe to stop. On Windows, SIGBREAK is what the C runtime raises for
    CTRL_BREAK_EVENT and also for console close, logoff and shutdown (its SetConsoleCtrlHandler); after a
    close Windows ends the process within seconds, like ``taskkill /F``: the next start kills what is left."""
    return ("SIGINT", "SIGBREAK") if windows else ("SIGINT", "SIGTERM")


class StopSignals:
    """First Ctrl+C / SIGTERM / CTRL_BREAK asks for a graceful stop; the second one stops at once."""

    def __init__(self) -> None:
        self.count = 0

    def install(self, *, windows: bool = os.name == "nt") -> None:
        for name in stop_signal_names(windows=windows):
            signal.signal(getattr(signal, name), self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt


def kill_descendants() -> None:
    """Pool workers and the tools they run: nothing outlives ocrpipe. multiprocessing's resource
    tracker is spared: it exits by itself once we do, after cleaning up the queue's semaphores."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    for child in psutil.Process().children(recursive=False):
        if child.pid != tracker:
            kill_tree(child.pid, grace=2.0)


def _loop(scheduler: Scheduler, settings: Settings, signals: StopSignals, *, once: bool) -> bool:
    """Tick until done (``once``) or asked to stop; True when stopped by a signal."""
    grace_ends: float | None = None
    while True:
        now = time.monotonic()
        scheduler.tick(now)
        if signals.count and grace_ends is None:
            scheduler.stop_admitting()
            grace_ends = now + settings.shutdown_grace_seconds
            log.warning("stopping: no new work; waiting up to %gs for %d running stage(s) "
                        "(Ctrl+C again to stop now)", settings.shutdown_grace_seconds, scheduler.running())
        if grace_ends is not None and (scheduler.running() == 0 or now >= grace_ends):
            return True
        if once and scheduler.idle():
            return False
        scheduler.wait(min(settings.poll_seconds, 0.5) if grace_ends else settings.poll_seconds)


def where(executor: str, concurrency: int) -> str:
    return str(concurrency) if executor == "local" else f"on {executor}"


def start_http(settings: Settings, scheduler: Scheduler, profile: dict[str, Any],
               courier: Courier | None = None) -> HttpService | None:
    """The HTTP API over the scheduler's published snapshots, unless ORCHESTRATOR_PORT=0."""
    if settings.orchestrator_port == 0:
        return None
    from ocrpipe.web.api import Api
    from ocrpipe.web.server import start_api

    tools = profile.get("tool_versions")
    api = Api(settings, scheduler.snapshot, tools=tools if isinstance(tools, dict) else {},
              hooks=courier.view if courier is not None else None)
    return start_api(api, settings.orchestrator_host, settings.orchestrator_port)


def start_hooks(settings: Settings, scheduler: Scheduler) -> Courier | None:
    """The delivery loop of the hook events, on a thread of its own, when a hook is set."""
    if not settings.hooks.enabled:
        return None
    from ocrpipe.hooks.courier import Courier

    courier = Courier(settings)
    scheduler.metric_feeds.append(courier.feed_metrics)
    courier.start()
    return courier


def deliver_before_exit(courier: Courier, settings: Settings) -> None:
    """``run --once``: what is pending is delivered before the exit, so a scheduled task notifies too."""
    courier.stop()
    left = courier.drain(settings.hooks.once_timeout_seconds)
    if left:
        log.warning("%d hook event(s) not delivered within HOOK_ONCE_TIMEOUT_SECONDS=%g; the next run tries again",
                    left, settings.hooks.once_timeout_seconds)


def stop_hooks(courier: Courier | None, scheduler: Scheduler, settings: Settings) -> None:
    if courier is None:
        return
    courier.stop()
    metrics = getattr(scheduler, "metrics", None)
    if metrics is not None:  # the last deliveries' counts, written now: no tick comes after
        courier.feed_metrics(metrics)
        write_metrics(metrics, settings.index_dir)


def log_summary(before: dict[str, Any], after: dict[str, Any], seconds: float, ticks: int = 0) -> None:
    """One line for the whole run: what a scheduled task's log is read for."""
    def delta(name: str) -> int:
        return int(after.get(name) or 0) - int(before.get(name) or 0)

    done, failed = delta("jobs_done"), delta("jobs_error")
    held, pages = delta("duplicates_detected"), delta("pages_done")
    rate = pages / seconds * 60 if seconds > 0 else 0.0
    log.info("run finished: %d file(s) done, %d failed, %d held as duplicates; %d page(s) in %.1fs (%.1f pages/min)",
             done, failed, held, pages, seconds, rate,
             extra={"event": "run_summary", "filesDone": done, "filesFailed": failed, "filesHeld": held,
                    "pages": pages, "seconds": round(seconds, 3), "pagesPerMinute": round(rate, 2), "ticks": ticks})


def run(settings: Settings, *, once: bool) -> ExitCode:
    started = time.monotonic()
    handlers = setup_logging(settings.log_level, json_lines=settings.log_json, log_file=settings.log_file)
    try:
        return _run(settings, once=once, handlers=handlers, started=started)
    finally:
        for handler in handlers:
            if isinstance(handler, logging.FileHandler):
                logging.getLogger().removeHandler(handler)
                handler.close()


def _run(settings: Settings, *, once: bool, handlers: list[logging.Handler], started: float) -> ExitCode:
    check_places(settings)  # INDEX_DIR, WORK_DIR, RETAIN_TRASH_DIR: a clear stop now, not at the first job
    # The tools' versions as the last start found them, while their binaries are the same files.
    probes = ProbeCache.for_index(settings.index_dir, trusted=settings.index_dir_set is not None)
    profile = check_tools(settings, probes)
    settings = with_candidates(settings, probes)  # OCR_LANG=auto: the workers use the candidates the job key names
    probes.save()
    stage_pools, clusters = dask_pools(settings)  # connected now, or a clear error (exit 3)
    try:
        lock = take_instance_lock(settings)
    except BaseException:
        for cluster in clusters:
            cluster.close()
        raise
    before = load_metrics(settings.index_dir)
    relay = LogRelay(handlers)  # the workers' log lines; its queue and thread come with the first pool
    signals = StopSignals()
    signals.install()
    scheduler = Scheduler(settings, profile=profile,
                          executor_factory=process_pool_factory(relay, settings.log_level), stage_pools=stage_pools)
    courier = start_hooks(settings, scheduler)
    http = start_http(settings, scheduler, profile, courier)
    if once:  # a scheduled run with nothing to do starts no worker; one with work warms them at its first job
        scheduler.warm_at_first_job = True
    else:  # a service keeps its workers ready for the first file
        scheduler.warm_pools(keep_tools_ready=True)
    log.info("ocrpipe watching %s (PREP %s, OCR %s)%s", settings.in_dir, where(settings.prep_executor,
             settings.prep_concurrency), where(settings.ocr_executor, settings.ocr_concurrency),
             ", until in/ is empty" if once else "")
    stopped = True
    try:
        stopped = _loop(scheduler, settings, signals, once=once)
        if once and not stopped and courier is not None:
            deliver_before_exit(courier, settings)
    except KeyboardInterrupt:
        pass
    finally:
        if stopped:
            log.warning("stopped; unfinished jobs resume at the next start")
            kill_descendants()  # what is still running after the grace period (a hook command too)
        stop_hooks(courier, scheduler, settings)
        scheduler.close(wait=not stopped)
        for cluster in clusters:
            cluster.close()
        if http is not None:
            http.close()
        log_summary(before, getattr(scheduler, "metrics", before), time.monotonic() - started, scheduler.ticks)
        relay.stop()
        (settings.state_dir / PID_FILE).unlink(missing_ok=True)
        lock.release()
    if stopped:
        return ExitCode.INTERRUPTED
    if scheduler.intake.blocked and staging_refused(settings.in_dir):
        # Not a lock that lets go by itself: a person must act, so a scheduled run does not report success.
        log.error("left in in/: %d file(s), none taken while %s is a link or a file; remove it and they are "
                  "taken at the next run", len(scheduler.intake.blocked), settings.in_dir / STAGING_DIR)
        return ExitCode.JOBS_FAILED
    for path in sorted(scheduler.intake.blocked):
        log.warning("left in in/: %s is held open by another program; it is taken at a later run",
                    readable_name(str(path)))
    return ExitCode.JOBS_FAILED if scheduler.errors_this_run else ExitCode.OK
