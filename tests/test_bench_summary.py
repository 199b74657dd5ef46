"""The benchmark's verdict over rounds: ratios are taken within a round, the median decides."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from reports import round_summary  # noqa: E402


def run(round_no: int, wall: float, vs_best: float | None) -> dict[str, Any]:
    ratios = None if vs_best is None else {"vsBestBaseline": vs_best, "vsPhysicalLimit": vs_best * 1.02}
    return {"round": round_no, "prepConcurrency": 1, "ocrConcurrency": 2, "wallSeconds": wall, "ratios": ratios}


def test_median_of_the_rounds_decides_so_one_noisy_round_does_not() -> None:
    rounds = [{"round": n, "runs": [run(n, wall, ratio)]}
              for n, (wall, ratio) in enumerate([(52.0, 0.70), (51.5, 0.95), (52.4, 0.82)])]
    [row] = round_summary(rounds, files=21)
    assert row["rounds"] == 3 and row["medianWallSeconds"] == 52.0
    assert row["vsBestBaseline"] == {"median": 0.82, "perRound": [0.70, 0.95, 0.82]}
    assert row["target"] == 0.85 and row["targetMet"] is True

    slow = [{"round": n, "runs": [run(n, 60.0, ratio)]} for n, ratio in enumerate([0.85, 0.93, 0.97])]
    assert round_summary(slow, files=21)[0]["targetMet"] is False


def test_small_runs_and_runs_without_baselines_are_not_judged() -> None:
    rounds = [{"round": 0, "runs": [run(0, 5.5, 1.6)]}]
    [row] = round_summary(rounds, files=3)
    assert row["target"] is None and row["targetMet"] is None
    [row] = round_summary([{"round": 0, "runs": [run(0, 15.5, None)]}], files=1000)
    assert row["vsBestBaseline"] is None and row["targetMet"] is None
