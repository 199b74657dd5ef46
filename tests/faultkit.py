"""Helpers for tests of faults: executors the test drives, and crashes between file moves."""

from __future__ import annotations

import os
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import TEST_PROFILE
from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import Scheduler


class SimulatedCrash(BaseException):
    """ocrpipe killed at this instant: a BaseException, so no handler meant for faults catches it."""


class DrivenExecutor(Executor):
    """Holds submitted calls until the test decides how each one ends."""

    def __init__(self) -> None:
        self.pending: list[tuple[Future, Callable[..., Any], tuple, dict]] = []
        self.broken_submits = 0  # the next submits raise BrokenProcessPool, as a pool broken while idle does

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self.broken_submits:
            self.broken_submits -= 1
            raise BrokenProcessPool("a worker died while idle")
        future: Future = Future()
        self.pending.append((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for future, *_ in self.pending:
                future.cancel()
            self.pending.clear()


class Driven:
    """A scheduler on driven executors, restartable like a killed ocrpipe."""

    def __init__(self, settings: Settings, *, profile: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.settings = settings
        self.profile = profile or TEST_PROFILE
        self.kwargs = kwargs
        self.executors: list[DrivenExecutor] = []
        self.scheduler = self.restart()

    def restart(self) -> Scheduler:
        def factory(workers: int) -> Executor:
            executor = DrivenExecutor()
            self.executors.append(executor)
            return executor

        self.executors = []
        self.scheduler = Scheduler(self.settings, profile=self.profile, executor_factory=factory, **self.kwargs)
        return self.scheduler

    def calls(self) -> list[tuple[Future, Callable[..., Any], tuple, dict]]:
        return [call for ex in self.executors for call in ex.pending]

    def pop(self, index: int = 0) -> tuple[Future, Callable[..., Any], tuple, dict]:
        call = self.calls()[index]
        for ex in self.executors:
            if call in ex.pending:
                ex.pending.remove(call)
        return call

    def run_all(self, now: float, *, rounds: int = 50) -> float:
        """Let every call succeed and tick until nothing is left to do; returns the clock."""
        for _ in range(rounds):
            now += 1.0
            self.scheduler.tick(now)
            while self.calls():
                future, fn, args, kwargs = self.pop()
                future.set_result(fn(*args, **kwargs))
                self.scheduler.tick(now)
            if self.scheduler.idle():
                return now
        raise AssertionError(f"not idle: {[(j.key[:8], j.state.value) for j in self.scheduler.jobs.values()]}")


@contextmanager
def crash_at(monkeypatch: pytest.MonkeyPatch, name: str, when: Callable[..., bool]) -> Iterator[None]:
    """``os.<name>`` raises SimulatedCrash on the first call for which ``when(*args)`` holds."""
    real = getattr(os, name)

    def fake(*args: Any, **kwargs: Any) -> Any:
        if when(*args):
            raise SimulatedCrash(f"killed at os.{name}{args}")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, name, fake)
        yield


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.name.endswith(".json"))


def finished(data_dir: Path) -> list[dict[str, Any]]:
    """The jobs in the index, oldest first."""
    from ocrpipe.index.jobindex import JobIndex

    with JobIndex(data_dir / "index", readonly=True) as index:
        return list(index)
