"""The PREP and OCR executors: spawned processes on every OS, rebuilt when a worker dies."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Callable

from ocrpipe.worker import init_worker, warm_up

# Recycling workers now and then bounds what a leaking library (Pillow, pikepdf) can hold.
MAX_TASKS_PER_CHILD = 100

ExecutorFactory = Callable[[int], Executor]


def spawn_context() -> Any:
    return multiprocessing.get_context("spawn")


def process_pool_factory(log_queue: Any, log_level: str) -> ExecutorFactory:
    """Pools with the spawn start method everywhere, so Linux runs what Windows runs."""

    def make(workers: int) -> Executor:
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=spawn_context(), initializer=init_worker,
            initargs=(log_queue, log_level), max_tasks_per_child=MAX_TASKS_PER_CHILD,
        )

    return make


class StagePool:
    """One stage's executor behind the plain Executor interface, with a rebuild for broken ones."""

    def __init__(self, name: str, workers: int, factory: ExecutorFactory) -> None:
        self.name = name
        self.workers = workers
        self._factory = factory
        self._executor: Executor | None = None

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = self._factory(self.workers)
        return self._executor

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self.executor.submit(fn, *args, **kwargs)

    def warm(self) -> None:
        """Start the workers now (they import pikepdf and Pillow), so the first file does not wait."""
        for _ in range(self.workers):
            self.executor.submit(warm_up)

    def rebuild(self) -> None:
        """Drop a broken executor; the next submit starts a fresh one."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def shutdown(self, *, wait: bool) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
        self._executor = None
