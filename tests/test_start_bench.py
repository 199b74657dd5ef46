"""The bench's ``--empty-run`` mode end to end, small (fake tools): a cold and a warm start per round, each with
its figures, the medians, the targets and a verdict; a checkout named twice is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import startbench  # noqa: E402
from sources import BenchError  # noqa: E402


def test_empty_run_reports_each_start_and_a_verdict(tmp_path: Path, fake_env: dict[str, str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startbench, "user_env", lambda port: dict(fake_env))  # fake tools, no HTTP API
    monkeypatch.setattr(startbench, "become_subreaper", lambda: False)  # not for pytest's own process
    report = startbench.empty_runs(1, tmp_path)
    assert [(r["checkout"], r["kind"], r["exitCode"]) for r in report["rounds"]] == [("this", "cold", 0),
                                                                                      ("this", "warm", 0)]
    assert all(r["wallSeconds"] > 0 and r["cpuSeconds"] > 0 for r in report["rounds"])
    assert set(report["medians"]["this"]) == {"cold", "warm"}
    assert report["targets"] == {"wallSeconds": 0.5, "cpuSeconds": 0.5, "of": "warm, median"}
    assert isinstance(report["ok"], bool)
    assert (tmp_path / "round0" / "this" / "data" / "index" / "tool-probes.json").is_file()


def test_a_checkout_named_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="twice"):
        startbench.empty_runs(1, tmp_path, [startbench.REPO])
