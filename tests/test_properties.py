"""Property test of the whole scheduler: files dropped, duplicated, tools that succeed, fail, hang or
die, and ocrpipe crashing and restarting between any two steps. Invariants: every dropped file is
in exactly one place, nothing is published twice, every state change is legal.

The pools are replaced by an executor the test drives (the scheduler only knows the Executor
interface); the stage functions themselves run for real, with the fake tools.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from collections import Counter
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import TEST_PROFILE, fake_command, make_pdf
from ocrpipe.config import Settings, load_settings
from ocrpipe.model import JobState, is_legal_transition
from ocrpipe.scheduler import Scheduler
from ocrpipe.store import read_state


class DrivenExecutor(Executor):
    """Holds submitted calls until the test decides how each one ends."""

    def __init__(self) -> None:
        self.pending: list[tuple[Future, Callable[..., Any], tuple, dict]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        self.pending.append((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for future, *_ in self.pending:
                future.cancel()
            self.pending.clear()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PipelineMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ocrpipe-prop-"))
        self.data = self.root / "data"
        (self.data / "in").mkdir(parents=True)
        self.settings = load_settings({
            "PATH": "/usr/bin:/bin", "DATA_DIR": str(self.data), "SEVEN_ZIP": fake_command("7z"),
            "OCRMYPDF": fake_command("ocrmypdf"), "STABLE_SECONDS": "0", "POLL_SECONDS": "1",
            "RETRY_BACKOFF_SECONDS": "0", "OCR_CONCURRENCY": "2", "PREP_CONCURRENCY": "2",
            "OCR_TIMEOUT_SECONDS": "1", "OCR_TIMEOUT_PER_PAGE_SECONDS": "0", "MIN_FREE_MB": "0",
            "OCR_BATCH_MAX_PAGES": "4",
        })
        self.drops: Counter[str] = Counter()  # bytes digest -> times dropped
        self.dropped: list[bytes] = []
        self.now = 0.0
        self.executors: list[DrivenExecutor] = []
        self.restart()

    def restart(self) -> None:
        def factory(workers: int) -> Executor:
            executor = DrivenExecutor()
            self.executors.append(executor)
            return executor

        self.executors = []
        self.scheduler = Scheduler(self.settings, profile=TEST_PROFILE, executor_factory=factory)
        self.scheduler.start()

    def teardown(self) -> None:
        try:
            if hasattr(self, "scheduler"):
                self.finish_everything()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def finish_everything(self) -> None:
        """Let every tool succeed from now on: each file ends in out/+archive/, error/ or hold/."""
        for _ in range(200):
            self.now += 100.0
            self.scheduler.tick(self.now)
            while self.calls():
                future, fn, args, kwargs = self.executors_pop_first()
                future.set_result(fn(*args, **kwargs))
                self.scheduler.tick(self.now)
            if self.scheduler.idle():
                break
        assert self.scheduler.idle(), [(j.key[:8], j.state) for j in self.scheduler.jobs.values()]
        assert not [p for p in (self.data / "in").rglob("*") if p.is_file()]
        assert not list((self.data / "work").iterdir())
        self.every_dropped_file_is_in_exactly_one_place()
        self.nothing_is_published_twice()
        event(f"done {len(list((self.data / 'out').iterdir()))}, "
              f"errors {len(list((self.data / 'error').iterdir()))}")

    def executors_pop_first(self) -> tuple[Future, Callable[..., Any], tuple, dict]:
        executor = next(ex for ex in self.executors if ex.pending)
        return executor.pending.pop(0)

    # ----- what the world does ---------------------------------------------------------------

    def drop(self, content: bytes, name: str) -> None:
        (self.data / "in" / name).write_bytes(content)
        self.drops[hashlib.sha256(content).hexdigest()] += 1
        self.dropped.append(content)

    @rule(pages=st.integers(1, 3))
    def drop_file(self, pages: int) -> None:
        n = len(self.dropped)
        self.drop(make_pdf(pages, scenario=f"u{n}"), f"file{n}.pdf")

    @precondition(lambda self: self.dropped)
    @rule(data=st.data())
    def drop_duplicate(self, data: st.DataObject) -> None:
        content = data.draw(st.sampled_from(self.dropped))
        self.drop(content, f"again{len(self.dropped)}.pdf")

    @rule()
    def tick(self) -> None:
        self.now += 1.0
        self.scheduler.tick(self.now)

    def calls(self) -> list[tuple[DrivenExecutor, int]]:
        return [(ex, i) for ex in self.executors for i in range(len(ex.pending))]

    def take(self, data: st.DataObject) -> tuple[Future, Callable[..., Any], tuple, dict]:
        executor, index = data.draw(st.sampled_from(self.calls()))
        return executor.pending.pop(index)

    @precondition(lambda self: self.calls())
    @rule(data=st.data())
    def tool_succeeds(self, data: st.DataObject) -> None:
        future, fn, args, kwargs = self.take(data)
        future.set_result(fn(*args, **kwargs))

    @precondition(lambda self: self.calls())
    @rule(data=st.data(), scenario=st.sampled_from(["exit-7", "exit-8", "hang"]))
    def tool_fails_or_hangs(self, data: st.DataObject, scenario: str) -> None:
        future, fn, args, kwargs = self.take(data)
        forced: Settings = dataclasses.replace(
            args[0], tool_env=args[0].tool_env + (("FAKE_FORCE_SCENARIO", scenario),))
        future.set_result(fn(forced, *args[1:], **kwargs))  # PREP of a PDF runs no tool: it succeeds

    @precondition(lambda self: self.calls())
    @rule(data=st.data())
    def worker_dies(self, data: st.DataObject) -> None:
        future, *_ = self.take(data)
        future.set_exception(BrokenProcessPool("a worker died"))

    @rule()
    def crash_and_restart(self) -> None:
        """ocrpipe is killed: calls not collected are lost, whatever they had done on disk."""
        self.restart()

    # ----- invariants ------------------------------------------------------------------------

    def places(self) -> Counter[str]:
        """Where every copy of every dropped file is now (out/ holds results, not originals)."""
        found: Counter[str] = Counter()
        for folder, pattern in ((self.data / "in", "**/*"), (self.data / "work", "*/input/*"),
                                (self.data / "archive", "**/*"), (self.data / "error", "*/*"),
                                (self.data / "hold" / "duplicates", "*/*")):
            for path in folder.glob(pattern):
                if path.is_file() and not path.name.endswith(".json"):
                    found[digest(path)] += 1
        return found

    @invariant()
    def every_dropped_file_is_in_exactly_one_place(self) -> None:
        if hasattr(self, "drops"):
            assert self.places() == self.drops

    @invariant()
    def nothing_is_published_twice(self) -> None:
        if not hasattr(self, "data"):
            return
        outputs = [p.name for p in (self.data / "out").glob("*") if p.is_file()]
        assert len(outputs) == len(set(outputs)) and not [n for n in outputs if " (" in n or n.startswith(".")]
        archived = [p.name for p in (self.data / "archive").glob("*") if p.is_file() and not p.name.startswith(".")]
        assert sorted(n.rsplit(".", 1)[0] for n in archived) == sorted(n.rsplit(".", 1)[0] for n in outputs)

    @invariant()
    def every_recorded_transition_is_legal(self) -> None:
        if not hasattr(self, "data"):
            return
        for job_dir in (self.data / "work").glob("*__*"):
            history = [JobState(h["state"]) for h in read_state(job_dir)["history"]]
            assert history[0] is JobState.DISCOVERED
            assert all(is_legal_transition(a, b) for a, b in zip(history, history[1:])), history


PipelineMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
TestPipelineProperties = PipelineMachine.TestCase
