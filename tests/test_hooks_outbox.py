"""The outbox: one event in hooks/pending/ for each job that ends (done, failed, held, decided), written in
the step that records it, with a stable id; none without a hook or for a type HOOK_EVENTS leaves out; a
crash on either side of the write leaves exactly one event after the restart."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import make_pdf
from faultkit import Driven, SimulatedCrash, crash_at, finished

from ocrpipe.config import Settings
from ocrpipe.folders.outbox import event_id
from ocrpipe.index.jobindex import JobIndex

NOWHERE = "http://127.0.0.1:9/hook"  # nothing delivers in these tests: the events stay in pending/


def pending(data: Path) -> list[dict[str, Any]]:
    folder = data / "hooks" / "pending"
    events = [json.loads(p.read_text()) for p in folder.glob("evt_*.json")] if folder.is_dir() else []
    return sorted(events, key=lambda e: e["seq"])


def drop(data: Path, name: str, content: bytes) -> None:
    (data / "in").mkdir(parents=True, exist_ok=True)
    (data / "in" / name).write_bytes(content)


def test_each_end_of_a_job_writes_one_event_with_a_stable_id(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(WEBHOOK_URL=NOWHERE)
    data = settings.data_dir
    drop(data, "good.pdf", make_pdf(2))
    drop(data, "bad.pdf", make_pdf(1, scenario="exit-8"))
    driven = Driven(settings)
    now = driven.run_all(0.0)
    runs = {r["source"]: r for r in finished(data)}
    events = {e["data"]["source"]: e for e in pending(data)}
    assert set(events) == {"good.pdf", "bad.pdf"}
    done, failed = events["good.pdf"], events["bad.pdf"]
    assert done["type"] == "job.done" and failed["type"] == "job.error"
    for event in (done, failed):
        run = runs[event["data"]["source"]]
        assert event["id"] == event_id(event["type"], run["jobKey"], run["runId"])
        assert event["data"]["jobKey"] == run["jobKey"] and event["data"]["runId"] == run["runId"]
        assert event["data"]["state"] == run["state"]
    assert done["data"]["output"] == runs["good.pdf"]["output"] and Path(done["data"]["output"]).is_file()
    assert done["data"]["archived"] == runs["good.pdf"]["archived"] and done["data"]["pages"] == 2
    assert done["data"]["seconds"] is not None and done["data"]["code"] is None
    assert failed["data"]["code"] == runs["bad.pdf"]["reasonCode"] and failed["data"]["reason"]
    assert Path(failed["data"]["errorDir"]).is_dir() and failed["data"]["output"] is None

    # The same file again: held, then a decision carried out; each an event of its own.
    drop(data, "again.pdf", make_pdf(2))
    now = driven.run_all(now)
    [held] = [e for e in pending(data) if e["type"] == "duplicate.held"]
    assert held["data"]["source"] == "again.pdf" and Path(held["data"]["held"]).is_file()
    assert held["data"]["jobKey"] == done["data"]["jobKey"]
    folder = Path(held["data"]["held"]).parent
    (folder / "decision.json").write_text('{"action": "FORCE_REPROCESS", "note": "new scanner"}')
    driven.run_all(now)
    decided = [e for e in pending(data) if e["type"] == "decision.applied"]
    assert [e["data"]["action"] for e in decided] == ["FORCE_REPROCESS"] and decided[0]["data"]["note"] == "new scanner"
    # The reprocessed run ends with an event too: a new run id, so a new event id.
    redone = [e for e in pending(data) if e["type"] == "job.done" and e["data"]["source"] == "again.pdf"]
    assert len(redone) == 1 and redone[0]["data"]["runId"] == decided[0]["data"]["runId"] != done["data"]["runId"]
    assert redone[0]["data"]["decision"]["action"] == "FORCE_REPROCESS"
    seqs = [e["seq"] for e in pending(data) if e["data"]["jobKey"] == done["data"]["jobKey"]]
    assert seqs == sorted(seqs) and len(seqs) == 4  # done, held, decided, done again: in that order


def test_no_event_without_a_hook_nor_for_a_type_left_out(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    drop(settings.data_dir, "a.pdf", make_pdf(1))
    Driven(settings).run_all(0.0)
    assert not (settings.data_dir / "hooks").exists()

    settings = make_settings(WEBHOOK_URL=NOWHERE, HOOK_EVENTS="job.error", DATA_DIR=str(settings.data_dir / "two"))
    drop(settings.data_dir, "a.pdf", make_pdf(1))
    drop(settings.data_dir, "b.pdf", make_pdf(1, scenario="exit-8"))
    Driven(settings).run_all(0.0)
    assert [e["data"]["source"] for e in pending(settings.data_dir)] == ["b.pdf"]


@pytest.mark.parametrize("where", ["before the event", "after the event"])
def test_a_crash_either_side_of_the_event_leaves_exactly_one(make_settings: Callable[..., Settings],
                                                             monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Killed as the event file is renamed into place, or after it but before the job index has the job:
    the restart finishes the job's end, and there is one event, with the id it would have had."""
    settings = make_settings(WEBHOOK_URL=NOWHERE)
    data = settings.data_dir
    drop(data, "a.pdf", make_pdf(1))
    driven = Driven(settings)

    def into_pending(src: object, dest: object, *rest: object) -> bool:
        return "/hooks/pending/" in str(dest)

    if where == "before the event":
        crash = crash_at(monkeypatch, "replace", into_pending)
    else:
        real = JobIndex.record

        def record_then_crash(self: JobIndex, entry: dict[str, Any], **kwargs: Any) -> None:
            raise SimulatedCrash("killed before the index has the job")

        monkeypatch.setattr(JobIndex, "record", record_then_crash)
        crash = None
    with pytest.raises(SimulatedCrash):
        if crash is not None:
            with crash:
                driven.run_all(0.0)
        else:
            driven.run_all(0.0)
    assert len(pending(data)) == (0 if where == "before the event" else 1)
    if where == "after the event":
        monkeypatch.setattr(JobIndex, "record", real)
    driven.restart()
    driven.run_all(100.0)
    [run] = finished(data)
    [event] = pending(data)
    assert event["id"] == event_id("job.done", run["jobKey"], run["runId"])
    assert not list((data / "hooks" / "pending").glob(".*.tmp"))


def test_a_crash_between_holding_and_its_event_writes_the_event_at_the_restart(
        make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(WEBHOOK_URL=NOWHERE)
    data = settings.data_dir
    drop(data, "a.pdf", make_pdf(1))
    driven = Driven(settings)
    now = driven.run_all(0.0)
    drop(data, "copy.pdf", make_pdf(1))
    with crash_at(monkeypatch, "replace", lambda src, dest, *r: "/hooks/pending/" in str(dest)), \
            pytest.raises(SimulatedCrash):
        driven.run_all(now)
    assert [e["type"] for e in pending(data)] == ["job.done"]  # held, its event not written
    driven.restart()
    driven.run_all(now + 100)
    held = [e for e in pending(data) if e["type"] == "duplicate.held"]
    assert len(held) == 1 and held[0]["data"]["source"] == "copy.pdf"
    sidecars = [json.loads(p.read_text()) for p in (data / "hold").rglob(".*.arrival.json")]
    assert sidecars and not any("announce" in s for s in sidecars)  # the mark is gone once written
    driven.restart()  # and a later start writes it no more
    driven.run_all(now + 200)
    assert len([e for e in pending(data) if e["type"] == "duplicate.held"]) == 1


def test_a_link_in_place_of_hooks_is_not_written_through(make_settings: Callable[..., Settings],
                                                          tmp_path: Path) -> None:
    """hooks/ replaced by a link: the job still ends (a hook never stops the pipeline); nothing is written
    where the link points."""
    settings = make_settings(WEBHOOK_URL=NOWHERE)
    data = settings.data_dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data.mkdir(parents=True)
    os.symlink(elsewhere, data / "hooks")
    drop(data, "a.pdf", make_pdf(1))
    Driven(settings).run_all(0.0)
    assert [r["state"] for r in finished(data)] == ["DONE"]
    assert not list(elsewhere.rglob("*"))
