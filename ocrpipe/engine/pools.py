"""The PREP and OCR executors: spawned processes on every OS, rebuilt when a worker dies."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future
from typing import TYPE_CHECKING, Any, Protocol

from ocrpipe.engine.worker import init_worker, warm_up

if TYPE_CHECKING:
    import logging.handlers

    from ocrpipe.config import Settings

# Recycling workers now and then bounds what a leaking library (Pillow, pikepdf) can hold.
MAX_TASKS_PER_CHILD = 100
# CPython terminates the other workers of a broken pool with SIGTERM (on Windows too, as this exit code).
TERMINATED_BY_POOL = -signal.SIGTERM
RETIRED_KEPT = 4
EXIT_CODE_WAIT_SECONDS = 2.0  # broken executors whose workers' exit codes may still be asked about

ExecutorFactory = Callable[[int], Executor]


class Pool(Protocol):
    """What the dispatcher needs of a stage's executor: StagePool here, DaskStagePool (cluster.py)."""

    name: str
    local: bool  # its workers run on this machine: the scheduler may kill their processes itself

    @property
    def workers(self) -> int: ...
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future: ...
    def died_on_their_own(self) -> set[int] | None: ...
    def warm(self, count: int | None = None, settings: Settings | None = None,
             keep_tools_ready: bool = False) -> None: ...
    def rebuild(self) -> None: ...
    def shutdown(self, *, wait: bool) -> None: ...


def spawn_context() -> Any:
    import multiprocessing  # with the first pool: a run with nothing to do needs none

    return multiprocessing.get_context("spawn")


class LogRelay:
    """Brings the workers' log records to the scheduler's handlers: a queue and a listener thread, made
    with the first pool. A multiprocessing queue starts a process of its own (the resource tracker of its
    semaphores), which a ``run --once`` with nothing to do need not pay."""

    def __init__(self, handlers: Sequence[logging.Handler]) -> None:
        self._handlers = handlers
        self._queue: Any = None
        self._listener: logging.handlers.QueueListener | None = None

    def queue(self) -> Any:
        if self._queue is None:
            import logging.handlers

            self._queue = spawn_context().Queue()
            self._listener = logging.handlers.QueueListener(self._queue, *self._handlers, respect_handler_level=True)
            self._listener.start()
        return self._queue

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        if self._queue is not None:
            self._queue.close()


def process_pool_factory(log_queue: Any, log_level: str) -> ExecutorFactory:
    """Pools with the spawn start method everywhere, so Linux runs what Windows runs. ``log_queue`` is a
    queue, a LogRelay (its queue made with the first pool), or None (the workers' records are dropped)."""

    def make(workers: int) -> Executor:
        from concurrent.futures import ProcessPoolExecutor

        queue = log_queue.queue() if isinstance(log_queue, LogRelay) else log_queue
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=spawn_context(), initializer=init_worker,
            initargs=(queue, log_level), max_tasks_per_child=MAX_TASKS_PER_CHILD,
        )

    return make


class StagePool:
    """One stage's executor behind the plain Executor interface, with a rebuild for broken ones."""

    local = True

    def __init__(self, name: str, workers: int, factory: ExecutorFactory) -> None:
        self.name = name
        self.workers = workers
        self._factory = factory
        self._executor: Executor | None = None
        self._retired: list[dict[int, Any]] = []  # the worker processes of executors dropped lately

    @property
    def started(self) -> bool:
        """Its executor, and so its worker processes, were made (they are at the first submit)."""
        return self._executor is not None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._factory(self.workers)
        return self._executor

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Submit; a pool broken while idle (a worker killed, crashed in its warm-up) is rebuilt once."""
        try:
            return self.executor.submit(fn, *args, **kwargs)
        except (BrokenExecutor, RuntimeError):  # RuntimeError: shut down by a broken pool's manager thread
            self.rebuild()
            return self.executor.submit(fn, *args, **kwargs)

    def died_on_their_own(self) -> set[int] | None:
        """Pids of workers that died by themselves (killed, crashed), not terminated by the pool after
        another one died; None when the executor cannot tell (not a process pool)."""
        broken = self._executor is not None and getattr(self._executor, "_broken", False)
        pools = [*self._retired, *([self._processes()] if broken else [])]
        if not any(procs is not None for procs in pools):
            return None
        processes = [(pid, p) for procs in pools for pid, p in list((procs or {}).items())]
        # A broken pool's workers are all on their way out; a dead one's exit code can lag its
        # sentinel by a moment, so wait (briefly) until every exit code is known.
        deadline = time.monotonic() + EXIT_CODE_WAIT_SECONDS
        while any(p.exitcode is None for _, p in processes) and time.monotonic() < deadline:
            time.sleep(0.01)
        return {pid for pid, p in processes if p.exitcode not in (None, 0, TERMINATED_BY_POOL)}

    def _processes(self) -> dict[int, Any] | None:
        # ProcessPoolExecutor keeps its workers here (not public API): read only, for exit codes.
        return getattr(self._executor, "_processes", None)

    def warm(self, count: int | None = None, settings: Settings | None = None,
             keep_tools_ready: bool = False) -> None:
        """Start ``count`` workers (all by default) now (they import pikepdf and Pillow), so the first
        file does not wait for one; OCR workers given ``settings`` start their ocrmypdf ahead too."""
        for _ in range(min(self.workers, self.workers if count is None else count)):
            self.executor.submit(warm_up, self.name, settings, keep_tools_ready)

    def rebuild(self) -> None:
        """Drop a broken executor; the next submit starts a fresh one."""
        if self._executor is not None:
            procs = self._processes()
            if procs is not None:
                self._retired = [*self._retired, procs][-RETIRED_KEPT:]
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def shutdown(self, *, wait: bool) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
        self._executor = None


def shut_down_together(pools: Iterable[Pool], *, wait: bool) -> None:
    """Every pool told to stop at once, then waited for together: an idle worker's exit (its interpreter's
    teardown, about 0.1 s with pikepdf loaded) runs beside the other pools' instead of after them."""
    pools = list(pools)
    if not wait or len(pools) < 2:
        for pool in pools:
            pool.shutdown(wait=wait)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(pools), thread_name_prefix="stop-pool") as stopper:
        for stopped in [stopper.submit(pool.shutdown, wait=True) for pool in pools]:
            stopped.result()
