"""The status page's pieces: the pages-per-minute chart and the held duplicates it lists."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ocrpipe.index import history
from ocrpipe.duplicates.hold import hold_duplicate
from ocrpipe.index.history import open_history
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.duplicates.report import refresh
from ocrpipe.web.statuspage import _duplicates_table, pages_chart, pending_duplicates

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


def bar_rates(svg: str) -> list[float]:
    return [float(r) for r in re.findall(r"<title>([\d.]+) pages/min</title>", svg)]


def test_chart_has_one_bar_per_busy_five_minutes_in_pages_per_minute() -> None:
    svg = pages_chart([(ago(1), 10), (ago(2), 5), (ago(61), 20), (ago(200), 99), ("garbage", 7)], NOW)
    assert bar_rates(svg) == [4.0, 3.0]  # 20 pages an hour ago, then 15 in the last 5 minutes; 200 min is too old
    assert '>4<' in svg and "now</text>" in svg and "-3h</text>" in svg  # the scale's top, the time axis


def test_chart_of_a_quiet_day_is_an_empty_axis() -> None:
    svg = pages_chart([], NOW)
    assert bar_rates(svg) == [] and svg.startswith("<svg") and svg.endswith("</svg>")


def test_pending_duplicates_lists_a_few_and_counts_all(tmp_path: Path) -> None:
    hold = tmp_path / "hold" / "duplicates"
    for n in range(3):
        source = tmp_path / f"scan{n}.pdf"
        source.write_bytes(b"%PDF")
        key = f"{str(n) * 64}__{'0' * 64}"
        arrival = hold_duplicate(source, relpath=f"May/scan{n}.pdf", job_key=key, hold_dir=hold)
        refresh(arrival.folder, tmp_path / "reports", key=key, existing=None, profile={})
    total, shown = pending_duplicates(hold, limit=2)
    assert total == 3 and [d["files"][0]["source"] for d in shown] == ["May/scan0.pdf", "May/scan1.pdf"]
    assert {d["state"] for d in shown} == {"DUPLICATE_PENDING"}
    table = _duplicates_table(shown)
    assert "May/scan1.pdf" in table and "DUPLICATE_PENDING" in table
    assert pending_duplicates(tmp_path / "nowhere") == (0, [])


def test_the_chart_reads_back_to_its_first_hour_and_no_further(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "CHART_PAGE", 100)  # several batches, and a stop inside one
    with JobIndex(tmp_path) as index:
        index.record_many({"jobKey": f"{n:064x}__{'0' * 64}", "runId": "r", "state": "DONE", "pages": n % 4,
                           "finishedAt": ago(400 - n)} for n in range(400))
    with open_history(tmp_path) as found:
        finishes = found.finished_since(ago(180))
    assert [when for when, _ in finishes] == [ago(400 - n) for n in range(399, 219, -1)]
    assert sum(pages for _, pages in finishes) == sum(n % 4 for n in range(220, 400))


def test_the_chart_counts_only_the_pages_of_jobs_that_were_done(tmp_path: Path) -> None:
    """A job that failed after PREP counted its pages; the chart is of pages made searchable."""
    with JobIndex(tmp_path) as index:
        index.record_many([  # in the order they finished, as the index keeps them
            {"jobKey": f"{1:064x}__{'0' * 64}", "runId": "r", "state": "DONE", "pages": 2, "finishedAt": ago(4)},
            {"jobKey": f"{2:064x}__{'0' * 64}", "runId": "r", "state": "ERROR", "pages": 40, "finishedAt": ago(2)},
            {"jobKey": f"{3:064x}__{'0' * 64}", "runId": "r", "state": "DONE", "pages": 3, "finishedAt": ago(1)},
        ])
    with open_history(tmp_path) as found:
        finishes = found.finished_since(ago(180))
    assert finishes == [(ago(1), 3), (ago(4), 2)]
    assert bar_rates(pages_chart(finishes, NOW)) == [1.0]
