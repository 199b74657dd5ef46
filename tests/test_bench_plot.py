"""bench/plot.py: the report drawn as SVG — wall time per round for ocrpipe and each baseline, ratios with
their targets, the concurrency sweep."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from plot import main, render  # noqa: E402
from reports import round_summary  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_single_document_rounds_and_ratios_are_drawn_with_the_target(tmp_path: Path) -> None:
    rounds = [{"ocrpipeWallSeconds": w, "baselineWallSeconds": b, "ratio": round(w / b, 3), "cpuRatio": 1.05}
              for w, b in ((30.0, 31.0), (28.0, 30.5), (33.0, 32.0))]
    report = {"singleDocument": {"pages": 18, "baseline": "ocrmypdf --jobs 2", "rounds": rounds,
                                 "medianRatio": 0.968, "medianCpuRatio": 1.05, "target": 0.95}}
    svg = render(report)
    root = ET.fromstring(svg)
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 4  # ocrpipe and the baseline per round; wall and CPU ratios
    assert len(list(root.iter(f"{SVG}circle"))) == 12
    assert "target 0.95" in texts(svg) and "● ocrmypdf --jobs 2" in texts(svg)
    (tmp_path / "r.json").write_text(__import__("json").dumps(report))
    assert main([str(tmp_path / "r.json"), str(tmp_path / "r.svg")]) == 0
    assert (tmp_path / "r.svg").read_text() == svg


def test_mixed_workload_draws_each_baseline_the_ratios_and_the_sweep() -> None:
    def run(n: int, ocr: int, wall: float) -> dict[str, Any]:
        return {"round": n, "prepConcurrency": 1, "ocrConcurrency": ocr, "wallSeconds": wall,
                "ratios": {"vsBestBaseline": wall / 50, "vsPhysicalLimit": wall / 45}}

    rounds = [{"round": n, "runs": [run(n, 1, 44.0 + n), run(n, 2, 40.0 + n)],
               "baselines": {"sequential": {"wallSeconds": 60.0}, "fileParallel": {"wallSeconds": 50.0}}}
              for n in range(2)]
    svg = render({"rounds": rounds, "summary": round_summary(rounds, 21)})
    labels = texts(svg)
    for name in ("● ocrpipe P1/O1", "● ocrpipe P1/O2", "● ocrmypdf sequential", "● ocrmypdf file-parallel",
                 "Concurrency sweep: median wall time", "target 0.85"):
        assert name in labels, name


def test_a_report_without_rounds_says_so() -> None:
    assert "nothing to draw" in render({"benchmark": "ocrpipe targets"})
