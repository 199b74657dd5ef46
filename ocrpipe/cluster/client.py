"""The stages on a Dask cluster: connect at start (a clear error, never a hang), and a stage pool over
``Client.get_executor()`` whose size is the cluster's, bounded by the configured concurrency."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ocrpipe.cluster.remote import make_call, marker_token, run_remote
from ocrpipe.config import Settings
from ocrpipe.errors import ClusterError
from ocrpipe.model import Stage

log = logging.getLogger("ocrpipe.cluster")

CONNECT_TIMEOUT_SECONDS = 10.0
SIZE_REFRESH_SECONDS = 2.0  # how often the cluster's thread count is asked for (a round trip)
LOG_TOPIC = "ocrpipe-log"  # worker log records, forwarded to the scheduler's log (daskworker.py)
NO_WORKER_WARNING_EVERY = 60.0


def connect(address: str, *, timeout: float = CONNECT_TIMEOUT_SECONDS, security: Any = None) -> Any:
    """A Client on ``address``; ClusterError (exit 3) naming it when Dask is missing or it does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(f"OCR_EXECUTOR / PREP_EXECUTOR = {address} needs Dask: "
                           "pip install 'ocrpipe[dask]'") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False, security=security)
    except (OSError, TimeoutError) as exc:
        # A TLS handshake refused on either side looks like silence from here: say where else to look.
        hint = " (or refuses our certificate: is it from the CA of DASK_TLS_CA_FILE?)" if security else ""
        raise ClusterError(f"the Dask scheduler at {address} does not answer{hint} ({type(exc).__name__}: {exc}); "
                           "start it with 'dask scheduler', or set OCR_EXECUTOR=local") from None
    client.subscribe_topic(LOG_TOPIC, _forward_log)
    return client


def security_for(settings: Settings) -> Any:
    """Dask's Security from the TLS settings: this machine's certificate for every role it plays (client of
    the scheduler for `ocrpipe run`; worker and nanny, which also listen, for `ocrpipe worker`); None without."""
    if settings.dask_tls_ca_file is None:
        return None
    from distributed.security import Security

    cert, key = str(settings.dask_tls_cert), str(settings.dask_tls_key)
    return Security(require_encryption=True, tls_ca_file=str(settings.dask_tls_ca_file),
                    tls_client_cert=cert, tls_client_key=key, tls_worker_cert=cert, tls_worker_key=key)


def _forward_log(event: tuple[float, dict[str, Any]]) -> None:
    """A worker's log record, logged here as if it were ours (its job fields included)."""
    _, fields = event
    record = logging.makeLogRecord(fields)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


class Cluster:
    """One client per scheduler address, shared by the stages that use it; counts the tasks in flight
    across them, since PREP and OCR share the workers' threads."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.executor = client.get_executor(pure=False)
        self.token = marker_token(settings.data_dir)
        self.in_flight: set[Future] = set()
        self._threads = 0
        self._asked = float("-inf")
        self._next_warning = 0.0

    def threads(self) -> int:
        now = time.monotonic()
        if now - self._asked >= SIZE_REFRESH_SECONDS:
            self._asked = now
            try:
                self._threads = sum(self.client.nthreads().values())
            except (OSError, TimeoutError) as exc:
                log.warning("the Dask scheduler does not answer (%s); no new stage starts", exc)
                self._threads = 0
            if not self._threads and now >= self._next_warning:
                self._next_warning = now + NO_WORKER_WARNING_EVERY
                log.warning("no Dask worker is connected to %s: start 'ocrpipe worker' on a machine",
                            self.client.scheduler.address)
        return self._threads

    def submit(self, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Future:
        future = self.executor.submit(run_remote, make_call(fn, args, kwargs, settings=self.settings,
                                                            token=self.token))
        self.in_flight.add(future)
        future.add_done_callback(self.in_flight.discard)
        return future

    def close(self) -> None:
        self.client.close()


class DaskStagePool:
    """A stage's work on the cluster; the Pool interface of pools.StagePool."""

    local = False  # its workers are other machines' processes: cancelled through the job folder

    def __init__(self, name: str, cluster: Cluster, limit: int | None) -> None:
        self.name = name
        self.cluster = cluster
        self.limit = limit
        self.mine: set[Future] = set()

    @property
    def workers(self) -> int:
        """The cluster's threads not busy with the other stage, bounded by the configured concurrency."""
        others = len(self.cluster.in_flight - self.mine)
        free = max(0, self.cluster.threads() - others)
        return free if self.limit is None else min(self.limit, free)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future = self.cluster.submit(fn, args, kwargs)
        self.mine.add(future)
        future.add_done_callback(self.mine.discard)
        return future

    def died_on_their_own(self) -> set[int] | None:
        return None  # a lost worker's stage is settled by its record (common.check_start), not by pids

    def warm(self, count: int | None = None, settings: Settings | None = None,
             keep_tools_ready: bool = False) -> None:
        pass  # each `ocrpipe worker` loads what the stages need at its start

    def rebuild(self) -> None:
        pass  # Dask replaces lost workers itself; the client stays

    def shutdown(self, *, wait: bool) -> None:
        for future in list(self.mine):
            future.cancel()


def dask_pools(settings: Settings) -> tuple[dict[Stage, DaskStagePool], list[Cluster]]:
    """The stages configured for a Dask scheduler, connected now; local ones are not listed."""
    wanted = {Stage.PREP: (settings.prep_executor, settings.prep_concurrency_set),
              Stage.OCR: (settings.ocr_executor, settings.ocr_concurrency_set)}
    clusters: dict[str, Cluster] = {}
    pools: dict[Stage, DaskStagePool] = {}
    try:
        for stage, (address, limit) in wanted.items():
            if address == "local":
                continue
            if address not in clusters:
                clusters[address] = Cluster(connect(address, timeout=settings.executor_connect_seconds,
                                                     security=security_for(settings)), settings)
                log.info("%s stages run on the Dask cluster at %s", stage.value, address)
            pools[stage] = DaskStagePool(stage.value, clusters[address], limit)
    except BaseException:
        for cluster in clusters.values():
            cluster.close()
        raise
    return pools, list(clusters.values())
