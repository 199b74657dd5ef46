"""Property test of the whole scheduler: files dropped, duplicated, tools that succeed, fail, hang or
die, workers that die after doing their work, pools that break while idle, people deciding about held
duplicates (well or badly), and ocrpipe crashing between any two file moves (in the scheduler, in a
worker, in its own restart, in carrying out a decision) and restarting, once or twice in a row.
Invariants: every dropped file is in exactly one place or deleted by a DISCARD, nothing is published
twice, every state change is legal, every run the job index records has its hook event in the outbox and
every such event is of a run that ended.

The pools are replaced by an executor the test drives (the scheduler only knows the Executor
interface); the stage functions themselves run for real, with the fake tools.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections import Counter
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

from conftest import TEST_PROFILE, fake_command, make_pdf
from faultkit import DrivenExecutor, SimulatedCrash
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ocrpipe.config import Settings, load_settings
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.folders.store import read_state
from ocrpipe.model import JobState, is_legal_transition


def digest(path: Path | str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def regular_files(folder: Path | str) -> Iterator[str]:
    """The regular files under ``folder``; links are never followed nor counted, FIFOs not counted."""
    for dirpath, _, names in os.walk(folder):  # os.walk does not enter links to folders
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    yield path
            except FileNotFoundError:
                continue


def write_decision(folder: Path, text: str) -> None:
    """A person's decision.json, in place of what is there: a link or FIFO someone else put there goes."""
    path = folder / "decision.json"
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        path.unlink()
    path.write_text(text, encoding="utf-8")


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
            "OCR_BATCH_MAX_PAGES": "4", "WEBHOOK_URL": "http://127.0.0.1:9/",  # events written, none delivered
        })
        self.drops: Counter[str] = Counter()  # bytes digest -> times dropped
        self.dropped: list[bytes] = []
        self.now = 0.0
        self.executors: list[DrivenExecutor] = []
        self.foreign: set[Path] = set()  # put in work/ by someone else: ocrpipe leaves it there
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
        assert not list(regular_files(self.data / "in"))  # links and FIFOs someone put there stay
        assert not [p for p in (self.data / "work").iterdir() if p not in self.foreign]
        self.every_dropped_file_is_in_exactly_one_place()
        self.nothing_is_published_twice()
        event(f"decided {sum(self.discarded().values())} discard(s), out {len(list((self.data / 'out').iterdir()))}")
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

    @precondition(lambda self: self.calls())
    @rule(data=st.data())
    def worker_dies_after_doing_its_work(self, data: st.DataObject) -> None:
        """The stage ran and recorded its end; the worker died before its result came back."""
        future, fn, args, kwargs = self.take(data)
        fn(*args, **kwargs)
        future.set_exception(BrokenProcessPool("the worker died after its work"))

    @precondition(lambda self: self.executors)
    @rule(data=st.data())
    def pool_breaks_while_idle(self, data: st.DataObject) -> None:
        """A worker dies with no task: the next submit to that pool raises BrokenProcessPool."""
        data.draw(st.sampled_from(self.executors)).broken_submits = 1

    def held_keys(self) -> list[str]:
        root = self.data / "hold" / "duplicates"
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    @precondition(lambda self: self.held_keys())
    @rule(data=st.data(), action=st.sampled_from(["USE_EXISTING_RESULT", "DISCARD", "FORCE_REPROCESS"]),
          one_file=st.booleans())
    def decide(self, data: st.DataObject, action: str, one_file: bool) -> None:
        """A person answers for a held key, for all its files or one of them."""
        folder = self.data / "hold" / "duplicates" / data.draw(st.sampled_from(self.held_keys()))
        decision: dict[str, str] = {"action": action}
        files = sorted(p.name for p in folder.iterdir() if "__" in p.name and not p.name.endswith(".json"))
        if one_file and files:
            decision["file"] = data.draw(st.sampled_from(files))
        write_decision(folder, json.dumps(decision))

    @precondition(lambda self: self.held_keys())
    @rule(data=st.data(), text=st.sampled_from(["{", '{"action": "BURN"}', '{"action": "DISCARD", "file": "x"}']))
    def decide_badly(self, data: st.DataObject, text: str) -> None:
        """A malformed decision: it moves nothing (until a good one replaces it)."""
        folder = self.data / "hold" / "duplicates" / data.draw(st.sampled_from(self.held_keys()))
        write_decision(folder, text)

    @rule()
    def crash_and_restart(self) -> None:
        """ocrpipe is killed: calls not collected are lost, whatever they had done on disk."""
        self.restart()

    @rule()
    def restart_twice(self) -> None:
        """Recovery is idempotent: a second start right after the first changes nothing."""
        self.restart()
        self.restart()

    @rule(data=st.data(), moves=st.integers(0, 12), action=st.sampled_from(["tick", "call", "restart"]))
    def crash_between_file_moves(self, data: st.DataObject, moves: int, action: str) -> None:
        """ocrpipe is killed after ``moves`` renames, links or deletes, in a step of the scheduler, in
        a stage (the workers die with it) or in its own restart; then it starts again."""
        counter = [moves]

        def crashing(real: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                counter[0] -= 1
                if counter[0] == -1:
                    raise SimulatedCrash(f"killed at {real.__name__}{args}")
                return real(*args, **kwargs)
            return call

        patches = [mock.patch.object(os, name, crashing(getattr(os, name)))
                   for name in ("replace", "rename", "link", "unlink")]
        call = self.take(data) if action == "call" and self.calls() else None
        for patch in patches:
            patch.start()
        try:
            if call is not None:
                future, fn, args, kwargs = call
                future.set_result(fn(*args, **kwargs))
            elif action == "restart":
                self.restart()
            else:
                self.tick()
        except SimulatedCrash:
            event(f"crashed in a {action}")
        finally:
            for patch in patches:
                patch.stop()
        self.restart()

    # ----- invariants ------------------------------------------------------------------------

    def places(self) -> Counter[str]:
        """Where every copy of every dropped file is now (out/ holds results, not originals): regular
        files with a dropped file's bytes, whatever their names (a dropped file may be named error.json)."""
        folders = [self.data / "in", self.data / "archive", self.data / "error", self.data / "hold" / "duplicates"]
        work = self.data / "work"
        folders += [job / "input" for job in (work.iterdir() if work.is_dir() else [])
                    if job.is_dir() and not job.is_symlink()]
        found: Counter[str] = Counter()
        for folder in folders:
            for path in regular_files(folder):
                sha = digest(path)
                if sha in self.drops:
                    found[sha] += 1
        return found

    def discarded(self) -> Counter[str]:
        """Files a DISCARD deleted, by digest: the job index names each decision with its key (whose
        first half is the file's sha256)."""
        from ocrpipe.index.jobindex import JobIndex

        gone: Counter[str] = Counter()
        with JobIndex(self.data / "index", readonly=True) as index:
            for run in index:
                for decision in run.get("decision") or []:
                    if decision["action"] == "DISCARD":
                        gone[run["jobKey"].split("__")[0]] += 1
        return gone

    @invariant()
    def every_dropped_file_is_in_exactly_one_place(self) -> None:
        """In out/+archive/, error/, hold/ (or on its way: in/, work/), or deleted by a DISCARD."""
        if hasattr(self, "drops"):
            assert self.places() + self.discarded() == self.drops

    @invariant()
    def nothing_is_published_twice(self) -> None:
        if not hasattr(self, "data"):
            return
        outputs = [p.name for p in (self.data / "out").glob("*") if p.is_file()]
        assert len(outputs) == len(set(outputs)) and not [n for n in outputs if " (" in n or n.startswith(".")]
        archived = [p.name for p in (self.data / "archive").glob("*") if p.is_file() and not p.name.startswith(".")]
        assert sorted(n.rsplit(".", 1)[0] for n in archived) == sorted(n.rsplit(".", 1)[0] for n in outputs)

    @invariant()
    def every_ended_run_has_one_event_and_every_event_a_run_that_ended(self) -> None:
        """The outbox (nothing delivers here, so every event stays in hooks/pending/): a run in the job index
        has its event; an event's run is in the index, or ended in work/ with its recording cut short."""
        if not hasattr(self, "data"):
            return
        from ocrpipe.index.jobindex import JobIndex

        folder = self.data / "hooks" / "pending"
        events = [json.loads(p.read_text()) for p in folder.glob("evt_*.json")] if folder.is_dir() else []
        announced = {(e["data"]["jobKey"], e["data"]["runId"]) for e in events if e["type"].startswith("job.")}
        with JobIndex(self.data / "index", readonly=True) as index:
            recorded = {(run["jobKey"], run["runId"]) for run in index}
        ended = set()
        for state_file in (self.data / "work").glob("*/state.json"):
            record = read_state(state_file.parent)
            if record["state"] in ("DONE", "ERROR"):
                ended.add((record["jobKey"], record["runId"]))
        assert recorded <= announced <= recorded | ended, (recorded, announced, ended)

    @invariant()
    def every_recorded_transition_is_legal(self) -> None:
        if not hasattr(self, "data"):
            return
        for state_file in (self.data / "work").glob("*/state.json"):
            history = [JobState(h["state"]) for h in read_state(state_file.parent)["history"]]
            assert history[0] is JobState.DISCOVERED
            assert all(is_legal_transition(a, b) for a, b in zip(history, history[1:])), history


PipelineMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None,
                                             suppress_health_check=[HealthCheck.too_slow])
TestPipelineProperties = PipelineMachine.TestCase
