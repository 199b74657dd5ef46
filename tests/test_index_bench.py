"""The bench's ``--index-history`` mode end to end, small: it builds the history it claims and reports each figure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import indexbench  # noqa: E402
from ocrpipe.index.jobindex import JobIndex  # noqa: E402


def test_index_history_imports_n_jobs_and_reports_every_figure(tmp_path: Path, fake_env: dict[str, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexbench, "PAIRS", 1)
    report = indexbench.index_history(120, tmp_path, fake_env)
    with JobIndex(tmp_path / "index-full" / "data" / "index", readonly=True) as index:
        assert index.counts() == {"DONE": 118, "ERROR": 2}  # every 50th job failed
        assert index.get(indexbench.history_entry(7)["jobKey"])[0]["batchSize"] == 3
    assert "imported 120 finished jobs from jobs.jsonl" in report["importLog"]
    assert len(report["runOnce"]["ratios"]) == 1 and report["runOnce"]["fullIndex"]["peakRssMb"] > 0
    assert report["duplicateLookup"]["probes"] == 1000 and report["dbBytesPerJob"] > 0
    assert set(report["targets"]) == {"ratio", "peakRssMb", "statusSeconds", "lookupMs"}
