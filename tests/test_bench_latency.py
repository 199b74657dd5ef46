"""The latency bench reads each step of a job from ocrpipe's own log: the lines it looks for are the ones a
job's run writes (with the fake tools, the stages run in this process, driven with a fake clock)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import make_pdf
from faultkit import Driven

from ocrpipe.config import Settings
from ocrpipe.logs import ContextFilter, JsonFormatter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from latencybench import _job_steps  # noqa: E402


def test_every_step_of_a_job_is_found_in_its_debug_log(make_settings: Callable[..., Settings],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(STABLE_SECONDS="2")
    driven = Driven(settings)
    settings.in_dir.mkdir(parents=True, exist_ok=True)
    (settings.in_dir / "scan.pdf").write_bytes(make_pdf())
    caplog.handler.addFilter(ContextFilter())  # as ocrpipe's handlers do: a stage's lines name its job
    with caplog.at_level(logging.DEBUG):
        driven.scheduler.tick(0.0)
        driven.run_all(2.0)
    driven.scheduler.close()
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    first = min(record.created for record in caplog.records)
    steps = _job_steps(lines, "scan.pdf", first)
    order = ["seen", "taken", "prepStarted", "prepared", "ocrStarted", "ocrmypdfStarted", "ocrmypdfEnded", "done"]
    assert sorted(steps, key=order.index) == order
    assert [steps[name] for name in order] == sorted(steps[name] for name in order)
