"""metrics.json: counters, unknown events, atomic rewrite."""

from __future__ import annotations

import json
from pathlib import Path

from ocrpipe.index.metrics import COUNTERS, load_metrics, make_empty_metrics, set_gauge, update_metrics, write_metrics


def test_empty_metrics_has_every_counter_at_zero() -> None:
    metrics = make_empty_metrics()
    assert {k: v for k, v in metrics.items() if k != "updatedAt"} == {name: 0 for name in COUNTERS}
    assert {"jobs_done", "jobs_error", "jobs_running", "jobs_queued", "pages_done"} <= set(metrics)


def test_update_increments_the_right_key_only() -> None:
    metrics = update_metrics(make_empty_metrics(), "jobs_done")
    update_metrics(metrics, "pages_done", 7)
    assert metrics["jobs_done"] == 1 and metrics["pages_done"] == 7
    assert all(metrics[k] == 0 for k in COUNTERS if k not in ("jobs_done", "pages_done"))


def test_unknown_events_are_ignored() -> None:
    metrics = make_empty_metrics()
    update_metrics(metrics, "no_such_event")
    update_metrics(metrics, "updatedAt")
    assert metrics == make_empty_metrics()


def test_write_creates_folder_and_stamps_updated_at(tmp_path: Path) -> None:
    metrics = update_metrics(make_empty_metrics(), "jobs_error")
    path = write_metrics(metrics, tmp_path / "index")
    saved = json.loads(path.read_text())
    assert path == tmp_path / "index" / "metrics.json"
    assert saved["jobs_error"] == 1 and saved["updatedAt"]
    assert all(isinstance(saved[k], int) for k in COUNTERS)
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left


def test_counters_survive_a_restart_but_gauges_do_not(tmp_path: Path) -> None:
    metrics = update_metrics(make_empty_metrics(), "jobs_done", 3)
    set_gauge(metrics, "jobs_running", 2)
    write_metrics(metrics, tmp_path)
    loaded = load_metrics(tmp_path)
    assert loaded["jobs_done"] == 3 and loaded["jobs_running"] == 0
    (tmp_path / "metrics.json").write_text("{broken")
    assert load_metrics(tmp_path) == make_empty_metrics()


def test_an_older_duplicates_held_counter_carries_on_as_duplicates_detected(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps({"duplicates_held": 4, "jobs_done": 9}))
    metrics = load_metrics(tmp_path)
    assert metrics["duplicates_detected"] == 4 and metrics["jobs_done"] == 9 and "duplicates_held" not in metrics
    assert metrics["duplicates_pending"] == 0  # a gauge: set at every tick, never carried over
