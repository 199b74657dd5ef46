"""``ocrpipe worker``: a Dask worker with ocrpipe's set-up (tools checked, one Tesseract thread per
call, its log sent to the scheduler's), refusing to start on a wrong view of the shared data folder."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ocrpipe.cluster.remote import MARKER_FILE, set_local
from ocrpipe.config import Settings, check_cluster, load_settings
from ocrpipe.errors import ClusterError, ConfigError, ExitCode
from ocrpipe.logs import ContextFilter, set_levels, setup_logging

log = logging.getLogger("ocrpipe.worker")
LOG_FIELDS = (str, int, float, bool, type(None))
QUIET_WORKER = {"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "2s"}


def check_data_view(data_dir: Path) -> None:
    """The scheduler writes the marker into DATA_DIR when it starts on a cluster: a worker that does not
    see it looks at another folder (a wrong mount, a typo), and would fail every stage."""
    if not (data_dir / MARKER_FILE).is_file():
        raise ConfigError(f"--data {data_dir} has no {MARKER_FILE}: it is not the data folder of an ocrpipe "
                          "that runs on a cluster (start 'ocrpipe run' with OCR_EXECUTOR=tls://… once, "
                          "then mount its DATA_DIR here)")


def serve(settings: Settings, scheduler: str, *, nthreads: int | None) -> int:
    """Check the tools and the data folder, then run the worker until it is stopped."""
    from ocrpipe.cluster.client import security_for
    from ocrpipe.tools.check import check_tools

    try:
        from distributed import Nanny
    except ImportError:
        raise ClusterError("ocrpipe worker needs Dask: pip install 'ocrpipe[dask]'") from None
    security = security_for(settings)
    setup_logging(settings.log_level, json_lines=settings.log_json, log_file=settings.log_file)
    check_tools(settings)
    check_data_view(settings.data_dir)
    threads = nthreads or settings.ocr_concurrency

    import dask

    # A stage is one subprocess call: Dask's sampling profiler (every 10 ms) and its twice-a-second system
    # monitor only cost CPU that the tools need on a small machine.
    dask.config.set(QUIET_WORKER)

    async def run() -> None:
        # The Nanny restarts a worker process that died; the worker process watches the Nanny (dask_setup).
        env = {"OMP_THREAD_LIMIT": "1", "DATA_DIR": str(settings.data_dir)}
        try:
            nanny = await Nanny(scheduler, nthreads=threads, env=env, preload=["ocrpipe.cluster.worker"],
                                name=None, death_timeout=30, silence_logs=logging.WARNING, security=security)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"the Dask scheduler at {scheduler} does not answer ({exc})") from None
        log.info("ocrpipe worker on %s: %d stage(s) at a time, data folder %s", scheduler, threads,
                 settings.data_dir)
        await nanny.finished()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    return ExitCode.OK


def dask_setup(worker: Any) -> None:
    """Preload hook, in the worker process: its own data folder and tools, logging, a watch on the Nanny."""
    import dask

    from ocrpipe.engine.worker import watch_parent

    settings = load_settings()
    # The Nanny sets MALLOC_TRIM_THRESHOLD_ and the like for Python workers; the tools get the machine's
    # own environment, as with the local pools (a low trim threshold slows Tesseract down).
    spawned = set(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    settings = replace(settings, tool_env=tuple((k, v) for k, v in settings.tool_env if k not in spawned))
    set_local(data_dir=settings.data_dir, settings=settings)
    root = logging.getLogger()
    root.addHandler(SchedulerLogHandler(worker))
    set_levels(settings.log_level)
    watch_parent()  # the Nanny killed (the machine's ocrpipe worker gone): kill the tools, exit


class SchedulerLogHandler(logging.Handler):
    """Sends ocrpipe's log records to the Dask scheduler, where `ocrpipe run` logs them as its own."""

    def __init__(self, worker: Any) -> None:
        super().__init__()
        self.worker = worker
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        from ocrpipe.cluster.client import LOG_TOPIC

        if not record.name.startswith("ocrpipe"):
            return
        try:
            fields = {k: v for k, v in record.__dict__.items() if isinstance(v, LOG_FIELDS)}
            fields.update(msg=record.getMessage(), args=None)
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            self.worker.log_event(LOG_TOPIC, fields)
        except Exception:  # noqa: BLE001 — logging never breaks a stage
            self.handleError(record)


def worker_main(*, scheduler: str, data: Path | None, nthreads: int | None) -> int:
    flags: dict[str, object] = {"DATA_DIR": data} if data is not None else {}
    settings = load_settings(flags=flags)
    check_cluster(settings, ("--scheduler", scheduler))  # before any connection: TLS, or loopback, or allowed
    return serve(settings, scheduler, nthreads=nthreads)
