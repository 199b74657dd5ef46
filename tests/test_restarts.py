"""Stages cut short by a restart of ocrpipe (a power cut, a reboot, taskkill /F): no attempt is used,
so no innocent document ends in error/; only a document that keeps being cut short while it runs
alone (it may be what crashes the machine) ends there, with its own code. The pools are executors
the test drives; the stage functions run for real, with the fake tools, and are killed inside their
tool call."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import make_pdf
from faultkit import Driven, SimulatedCrash, files_under
from ocrpipe.config import Settings
from ocrpipe.errors import Code
from ocrpipe.model import JobState
from ocrpipe.engine.restarts import RESTARTS_LIMIT
from ocrpipe.folders.store import read_state


def drop(data_dir: Path, name: str, content: bytes) -> None:
    (data_dir / "in").mkdir(parents=True, exist_ok=True)
    (data_dir / "in" / name).write_bytes(content)


def errors(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((data_dir / "error").glob("*/error.json"))]


def prepared(driven: Driven, now: float) -> float:
    """Tick, running every PREP for real, until every job waits for OCR or runs it."""
    for _ in range(20):
        now += 1.0
        driven.scheduler.tick(now)
        for call in [c for c in driven.calls() if c[1].__name__ == "run_prep"]:  # OCR is left pending
            driven.pop(driven.calls().index(call))
            future, fn, args, kwargs = call
            future.set_result(fn(*args, **kwargs))
        if all(job.state in (JobState.PREP_DONE, JobState.OCR_SUBMITTED) for job in driven.scheduler.jobs.values()):
            return now
    raise AssertionError("PREP did not end")


def power_cut(driven: Driven, monkeypatch: pytest.MonkeyPatch, now: float) -> tuple[float, list[int]]:
    """Every pending OCR starts for real (state.json records it running) and ocrpipe dies inside its tool
    call; then ocrpipe starts again and takes a step. Returns the clock and the sizes of the cut units."""
    def power_goes_off(*args: Any, **kwargs: Any) -> None:
        raise SimulatedCrash("power cut as the tool starts")

    cut = []
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen", power_goes_off)
        for future, fn, args, kwargs in [driven.pop() for _ in list(driven.calls())]:
            cut.append(len(args[2]) if fn.__name__ == "run_ocr_batch" else 1)
            with pytest.raises(SimulatedCrash):
                fn(*args, **kwargs)
    driven.restart()
    for _ in range(3):  # the restart, then the retry's submission
        now += 1.0
        driven.scheduler.tick(now)
    return now, cut


def test_twelve_restarts_with_a_batch_in_flight_send_nothing_to_error(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        drop(data_dir, f"doc{n}.pdf", make_pdf(1, scenario=f"doc-{n}"))
    driven = Driven(make_settings(OCR_CONCURRENCY="1", PREP_CONCURRENCY="5", MAX_JOBS_IN_FLIGHT="5"))
    now = prepared(driven, 0.0)
    sizes = []
    for _ in range(12):
        now, cut = power_cut(driven, monkeypatch, now)
        sizes += cut
    assert sizes[0] == 5, "the first cut hit a batch of every document"
    driven.run_all(now)
    assert errors(data_dir) == []
    assert files_under(data_dir / "out") == [f"doc{n}.pdf" for n in range(5)]


def test_a_document_cut_short_alone_past_the_limit_ends_in_error_with_its_own_code(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    drop(data_dir, "crasher.pdf", make_pdf(1))
    driven = Driven(make_settings(MAX_ATTEMPTS_OCR="3"))
    now = prepared(driven, 0.0)
    for _ in range(RESTARTS_LIMIT):
        now, cut = power_cut(driven, monkeypatch, now)
        assert cut == [1]
    assert errors(data_dir) == [], f"{RESTARTS_LIMIT} restarts in a row cost no attempt"
    [job] = driven.scheduler.jobs.values()
    assert read_state(job.dir)["attempts"]["OCR"] == RESTARTS_LIMIT
    power_cut(driven, monkeypatch, now)
    [error] = errors(data_dir)
    assert error["code"] == Code.TOOL_CRASH_LOOP.value
    assert f"{RESTARTS_LIMIT + 1} times in a row" in error["reason"]
    assert "may be what crashes" in error["reason"]
    assert [p.name for p in (data_dir / "error").glob("*/*.pdf")] == ["crasher.pdf"]


def test_a_stage_that_ends_on_its_own_between_restarts_starts_the_count_again(
        data_dir: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut short, then a failure of its own (a retry), then cut short again: not in a row."""
    drop(data_dir, "a.pdf", make_pdf(1, scenario="transient-1"))
    driven = Driven(make_settings(MAX_ATTEMPTS_OCR="3"))
    now = prepared(driven, 0.0)
    for _ in range(RESTARTS_LIMIT):
        now, _ = power_cut(driven, monkeypatch, now)
    future, fn, args, kwargs = driven.pop()
    future.set_result(fn(*args, **kwargs))  # the fake's own transient failure
    now += 1.0
    driven.scheduler.tick(now)
    assert errors(data_dir) == []
    now, _ = power_cut(driven, monkeypatch, now)
    assert errors(data_dir) == []
    driven.run_all(now)
    assert files_under(data_dir / "out") == ["a.pdf"] and errors(data_dir) == []
