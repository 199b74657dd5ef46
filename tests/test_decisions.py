"""Held duplicates end to end through tick(now): the report, status.json, the three decisions, malformed
decisions, arrivals while the first run is in flight, and a crash at every file operation of each action."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import make_pdf
from faultkit import Driven, SimulatedCrash, finished
from ocrpipe.config import Settings
from ocrpipe.duplicates.cli import UsageError, decide
from ocrpipe.duplicates.hold import hold_folder
from ocrpipe.folders.fsutil import sha256_file
from ocrpipe.folders.layout import short_name

REPORT_FIELDS = {"jobKey", "detectedAt", "incoming", "existing", "profile", "actions", "arrivals"}


def held_folder(data: Path) -> Path:
    [folder] = [p for p in (data / "hold" / "duplicates").iterdir() if p.is_dir()]
    return folder


def held_key(data: Path) -> str:
    """The full job key of the one held folder (the folder has the short name)."""
    return str(json.loads((held_folder(data) / "status.json").read_text())["jobKey"])


def held_files(data: Path) -> list[Path]:
    root = data / "hold" / "duplicates"
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json")) if root.is_dir() else []


def first_done_then_held(settings: Settings, *copies: str) -> tuple[Driven, float]:
    """scan.pdf processed, then each of ``copies`` (same bytes) dropped and held."""
    data = settings.data_dir
    (data / "in").mkdir(parents=True, exist_ok=True)
    (data / "in" / "scan.pdf").write_bytes(make_pdf(2))
    driven = Driven(settings)
    now = driven.run_all(0.0)
    for name in copies:
        (data / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (data / "in" / name).write_bytes(make_pdf(2))
    now = driven.run_all(now)
    return driven, now


def write_decision(data: Path, obj: Any) -> None:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    (held_folder(data) / "decision.json").write_text(text, encoding="utf-8")


def metrics(data: Path) -> dict[str, Any]:
    return json.loads((data / "index" / "metrics.json").read_text())


def test_the_second_identical_file_is_held_with_a_report_of_every_field(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, _ = first_done_then_held(settings, "again/copy.pdf")
    folder = held_folder(data)
    [held] = held_files(data)
    assert held.read_bytes() == make_pdf(2) and held.name.endswith("__copy.pdf")
    report = json.loads((data / "reports" / "duplicates" / f"{held_key(data)}.json").read_text())
    assert REPORT_FIELDS <= set(report) and report["jobKey"] == held_key(data)
    assert folder.name == short_name(report["jobKey"])
    assert report["detectedAt"].endswith("+00:00")
    assert report["incoming"]["fileName"] == "copy.pdf" and report["incoming"]["path"] == str(held)
    assert report["incoming"]["sizeBytes"] == len(make_pdf(2))
    [first] = finished(data)
    assert report["existing"] == {"state": "DONE", "runId": first["runId"], "source": "scan.pdf",
                                  "output": first["output"], "finishedAt": first["finishedAt"]}
    assert report["profile"] == driven.scheduler.profile
    assert report["actions"] == ["USE_EXISTING_RESULT", "DISCARD", "FORCE_REPROCESS"]
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "DUPLICATE_PENDING" and [f["heldFile"] for f in status["files"]] == [held.name]
    assert metrics(data)["duplicates_detected"] == 1 and metrics(data)["duplicates_pending"] == 1


def test_several_arrivals_of_one_key_are_all_named_and_the_first_stays_incoming(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "one.pdf")
    (data / "in" / "two.pdf").write_bytes(make_pdf(2))
    driven.run_all(now)
    folder = held_folder(data)
    report = json.loads((data / "reports" / "duplicates" / f"{held_key(data)}.json").read_text())
    assert report["incoming"]["fileName"] == "one.pdf"
    assert [a["fileName"] for a in report["arrivals"]] == ["one.pdf", "two.pdf"]
    status = json.loads((folder / "status.json").read_text())
    assert [f["fileName"] for f in status["files"]] == ["one.pdf", "two.pdf"]


def assert_hold_cleared(data: Path) -> None:
    assert not (data / "hold" / "duplicates").exists() or not list((data / "hold" / "duplicates").iterdir())
    reports = data / "reports" / "duplicates"
    assert not reports.exists() or not list(reports.glob("*.json"))


def test_use_existing_result_copies_the_output_and_archives_the_file(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "again/copy.pdf")
    write_decision(data, {"action": "USE_EXISTING_RESULT", "note": "same scan"})
    driven.run_all(now)
    assert (data / "out" / "again" / "copy.pdf").read_bytes() == (data / "out" / "scan.pdf").read_bytes()
    assert (data / "archive" / "again" / "copy.pdf").read_bytes() == make_pdf(2)
    assert held_files(data) == []
    assert_hold_cleared(data)
    [run] = finished(data)
    [decision] = run["decision"]
    assert decision["action"] == "USE_EXISTING_RESULT" and decision["note"] == "same scan" and decision["decidedAt"]
    assert metrics(data)["duplicates_used_existing"] == 1 and metrics(data)["duplicates_pending"] == 0


def test_use_existing_when_the_output_is_gone_moves_nothing_and_says_why(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "copy.pdf")
    (data / "out" / "scan.pdf").unlink()
    write_decision(data, {"action": "USE_EXISTING_RESULT"})
    driven.run_all(now)
    assert len(held_files(data)) == 1 and not (data / "archive" / "copy.pdf").exists()
    assert "output is gone" in json.loads((held_folder(data) / "status.json").read_text())["error"]


def test_discard_deletes_the_held_file(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "copy.pdf")
    write_decision(data, {"action": "DISCARD"})
    driven.run_all(now)
    assert held_files(data) == [] and not (data / "archive" / "copy.pdf").exists()
    assert_hold_cleared(data)
    assert [d["action"] for d in finished(data)[0]["decision"]] == ["DISCARD"]
    assert metrics(data)["duplicates_discarded"] == 1


def test_force_reprocess_runs_again_with_the_same_job_key_and_a_new_run_id(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "scan.pdf")  # the same name: the output gets a suffix
    key = held_key(data)
    write_decision(data, {"action": "FORCE_REPROCESS", "note": "new OCR wanted"})
    driven.run_all(now)
    first, second = finished(data)
    assert first["jobKey"] == second["jobKey"] == key and first["runId"] != second["runId"]
    assert second["state"] == "DONE" and second["decision"][0]["action"] == "FORCE_REPROCESS"
    assert sorted(p.name for p in (data / "out").iterdir()) == ["scan (2).pdf", "scan.pdf"]
    assert held_files(data) == []
    assert_hold_cleared(data)
    assert metrics(data)["duplicates_reprocessed"] == 1


def test_a_duplicate_arriving_while_the_first_is_in_flight_is_held_and_a_forced_run_waits(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    (data / "in").mkdir(parents=True)
    (data / "in" / "a.pdf").write_bytes(make_pdf(1))
    driven = Driven(settings)
    driven.scheduler.tick(1.0)  # a.pdf admitted, PREP submitted, nothing collected
    (data / "in" / "b.pdf").write_bytes(make_pdf(1))
    driven.scheduler.tick(2.0)
    folder = held_folder(data)
    report = json.loads((data / "reports" / "duplicates" / f"{held_key(data)}.json").read_text())
    assert report["existing"]["inFlight"] is True and report["existing"]["state"] != "DONE"
    write_decision(data, {"action": "FORCE_REPROCESS"})
    driven.scheduler.tick(3.0)
    assert "in flight" in json.loads((folder / "status.json").read_text())["waiting"]
    assert len(driven.scheduler.jobs) == 1
    driven.run_all(3.0)
    runs = finished(data)
    assert len(runs) == 2 and len({r["runId"] for r in runs}) == 2 and {r["state"] for r in runs} == {"DONE"}
    assert sorted(p.name for p in (data / "out").iterdir()) == ["a.pdf", "b.pdf"]


def test_two_held_arrivals_decided_one_by_one_with_file(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "one.pdf", "two.pdf")
    key = held_key(data)
    assert decide(settings, key[:10], "discard", file="two.pdf", note=None) == key
    now = driven.run_all(now)
    assert [p.name.split("__", 1)[1] for p in held_files(data)] == ["one.pdf"]
    status = json.loads((held_folder(data) / "status.json").read_text())
    assert [f["fileName"] for f in status["files"]] == ["one.pdf"]
    decide(settings, held_folder(data).name, "use-existing", file="one.pdf", note="keep")  # the folder's short name
    driven.run_all(now)
    assert held_files(data) == [] and (data / "out" / "one.pdf").is_file() and not (data / "out" / "two.pdf").exists()
    assert [d["action"] for d in finished(data)[0]["decision"]] == ["DISCARD", "USE_EXISTING_RESULT"]


def test_decide_refuses_unknown_and_ambiguous_keys_and_files(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    first_done_then_held(settings, "copy.pdf")
    key = held_key(data)
    (data / "hold" / "duplicates" / (key[:4] + "f" * 60 + "__" + "0" * 64)).mkdir()  # an older layout
    with pytest.raises(UsageError, match="no held duplicate"):
        decide(settings, "zz", "discard", file=None, note=None)
    with pytest.raises(UsageError, match="give more of the key"):
        decide(settings, key[:4], "discard", file=None, note=None)
    with pytest.raises(UsageError, match="is not held"):
        decide(settings, key[:10], "discard", file="nope.pdf", note=None)
    assert not (hold_folder(data / "hold" / "duplicates", key) / "decision.json").exists()


@pytest.mark.parametrize("decision, problem", [
    ("{not json", "not valid JSON"),
    ('["DISCARD"]', "must be an object"),
    ({"action": "BURN"}, "unknown action 'BURN'"),
    ({"action": "DISCARD", "file": "nope.pdf"}, "unknown file 'nope.pdf'"),
])
def test_a_malformed_decision_moves_nothing_and_is_reported_once(
        make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, decision: Any, problem: str) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "copy.pdf")
    before = held_files(data)
    write_decision(data, decision)
    with caplog.at_level(logging.WARNING, logger="ocrpipe.decisions"):
        for n in range(5):
            driven.scheduler.tick(now + n)
    assert held_files(data) == before and (held_folder(data) / "decision.json").exists()
    assert problem in json.loads((held_folder(data) / "status.json").read_text())["error"]
    assert len([r for r in caplog.records if problem in r.getMessage()]) == 1
    driven.restart().tick(now + 10)  # a restart does not report it again either
    assert len([r for r in caplog.records if problem in r.getMessage()]) == 1


# ----- a crash at every file operation of each action ----------------------------------------------------

def crashing_ops(after: int) -> list[Any]:
    """Patches that kill "ocrpipe" at the ``after``-th rename, link or delete."""
    from unittest import mock

    counter = [after]

    def crashing(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counter[0] -= 1
            if counter[0] == -1:
                raise SimulatedCrash(f"killed at {real.__name__}")
            return real(*args, **kwargs)
        return call

    return [mock.patch.object(os, name, crashing(getattr(os, name)))
            for name in ("replace", "rename", "link", "unlink")]


def originals(data: Path) -> list[str]:
    """Where copies of the held bytes are: archive/, hold/, work/ inputs (out/ holds results)."""
    want = sha256_file(data / "archive" / "scan.pdf")
    found = []
    for folder in ("archive", "hold", "work"):
        for p in (data / folder).rglob("*") if (data / folder).exists() else []:
            if p.is_file() and not p.name.endswith(".json") and sha256_file(p) == want:
                found.append(f"{folder}/{p.name}")
    return found


@pytest.mark.parametrize("action", ["USE_EXISTING_RESULT", "DISCARD", "FORCE_REPROCESS"])
def test_a_crash_at_any_step_of_an_action_is_finished_at_the_next_start(
        tmp_path: Path, make_settings: Callable[..., Settings], action: str) -> None:
    template = make_settings(DATA_DIR=str(tmp_path / "template"))
    first_done_then_held(template, "copy.pdf")
    write_decision(template.data_dir, {"action": action})
    crashed = 0
    for after in range(40):
        data = tmp_path / f"crash{after}"
        shutil.copytree(template.data_dir, data)
        settings = make_settings(DATA_DIR=str(data))
        driven = Driven(settings)
        patches = crashing_ops(after)
        for patch in patches:
            patch.start()
        survived = False
        try:
            driven.scheduler.tick(1.0)
            survived = True
        except SimulatedCrash:
            crashed += 1
        finally:
            for patch in patches:
                patch.stop()
        driven = Driven(settings)  # the restart
        driven.run_all(2.0)
        found = originals(data)
        runs = finished(data)
        assert held_files(data) == [] and not list((data / "hold" / "duplicates").glob("*/*.json")), after
        if action == "DISCARD":
            assert found == ["archive/scan.pdf"], after
        else:
            assert sorted(found) == ["archive/copy.pdf", "archive/scan.pdf"], (after, found)
            assert sorted(p.name for p in (data / "out").iterdir()) == ["copy.pdf", "scan.pdf"], after
        assert len(runs) == (2 if action == "FORCE_REPROCESS" else 1), after
        assert [d["action"] for r in runs for d in (r.get("decision") or [])] == [action], after
        if survived:
            break  # no crash any more: every step before the end was covered
    assert crashed >= 3


def test_a_held_file_another_program_keeps_open_is_moved_at_a_later_tick(
        make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: the rename fails while an antivirus holds the file; the decision stays and is retried."""
    import ocrpipe.engine.decisions

    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "copy.pdf")
    write_decision(data, {"action": "FORCE_REPROCESS"})
    real = ocrpipe.engine.decisions.move_replacing
    refusals = [1]

    def held_open(*args: Any) -> Path:
        if refusals[0]:
            refusals[0] -= 1
            raise PermissionError(13, "The process cannot access the file", str(args[0]))
        return real(*args)

    monkeypatch.setattr(ocrpipe.engine.decisions, "move_replacing", held_open)
    driven.scheduler.tick(now + 1)
    assert "could not carry out the decision yet" in json.loads((held_folder(data) / "status.json").read_text())["error"]
    assert len(held_files(data)) == 1
    driven.run_all(now + 2)
    assert held_files(data) == [] and len(finished(data)) == 2


def test_temp_files_a_kill_left_in_hold_are_removed_at_start_but_not_a_persons(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    first_done_then_held(settings, "copy.pdf")
    folder = held_folder(data)
    [held] = held_files(data)
    ours = [folder / f".{held.name}.arrival.json.0a1b2c3d.tmp", folder / ".status.json.deadbeef.tmp",
            folder / f".{held.name}.partial", data / "reports" / "duplicates" / f".{folder.name}.json.12345678.tmp"]
    persons = folder / ".decision.json.87654321.tmp"
    for path in [*ours, persons]:
        path.write_bytes(b"half")
    Driven(settings).scheduler.tick(100.0)
    assert [p for p in ours if p.exists()] == [] and persons.exists()
    assert held.is_file() and persons.read_bytes() == b"half"


def test_use_existing_places_under_names_every_os_accepts(make_settings: Callable[..., Settings]) -> None:
    """A held CON.pdf (a device name on Windows) with a very long sibling name: placed as publish would."""
    settings = make_settings()
    data = settings.data_dir
    long_name = "x" * 250 + ".pdf"
    driven, now = first_done_then_held(settings, "CON.pdf", long_name)
    assert all(len(p.name.encode()) <= 255 - len(".arrival.json") for p in held_files(data))
    write_decision(data, {"action": "USE_EXISTING_RESULT"})
    driven.run_all(now)
    assert (data / "out" / "_CON.pdf").is_file() and (data / "archive" / "_CON.pdf").is_file()
    assert len([p for p in (data / "archive").iterdir() if p.name.startswith("xxx")]) == 1
    assert held_files(data) == []


def test_a_hold_of_an_older_version_is_described_at_start_and_can_be_decided(
        make_settings: Callable[..., Settings]) -> None:
    """Held before this version: no sidecar, status.json with "status". A start writes today's files."""
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "copy.pdf")
    folder = held_folder(data)
    key = held_key(data)
    [held] = held_files(data)
    for leftover in [*folder.glob("*.arrival.json"), *(data / "reports" / "duplicates").glob("*.json")]:
        leftover.unlink()
    # As hold_duplicate wrote it once short folder names came in (the key inside: the folder has the short name).
    (folder / "status.json").write_text(json.dumps({"status": "DUPLICATE_PENDING", "jobKey": key,
                                                    "heldFile": held.name}))
    driven = Driven(settings)
    driven.scheduler.tick(now + 1)
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "DUPLICATE_PENDING" and status["files"][0]["fileName"] == "copy.pdf"
    report = json.loads((data / "reports" / "duplicates" / f"{held_key(data)}.json").read_text())
    assert report["incoming"]["detectedAt"] and report["existing"]["state"] == "DONE"
    write_decision(data, {"action": "DISCARD"})
    driven.run_all(now + 2)
    assert held_files(data) == []


def test_a_hold_folder_named_by_the_full_key_still_works(make_settings: Callable[..., Settings]) -> None:
    """Held before folders got short names: the folder is named by the full key, status.json has no key inside. A start
    describes it, decide finds it by a start of the key, a new arrival of the key joins it."""
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "copy.pdf")
    key = held_key(data)
    folder = held_folder(data).rename(data / "hold" / "duplicates" / key)
    [held] = held_files(data)
    for leftover in [*folder.glob("*.arrival.json"), *(data / "reports" / "duplicates").glob("*.json")]:
        leftover.unlink()
    (folder / "status.json").write_text(json.dumps({"status": "DUPLICATE_PENDING", "heldFile": held.name}))
    driven = Driven(settings)
    driven.scheduler.tick(now + 1)
    assert held_folder(data) == folder and held_key(data) == key
    (data / "in" / "again.pdf").write_bytes(make_pdf(2))
    now = driven.run_all(now + 2)
    assert held_folder(data) == folder and len(held_files(data)) == 2
    assert decide(settings, key[:10], "discard", file=None, note=None) == key
    driven.run_all(now + 1)
    assert held_files(data) == [] and not folder.exists()


def test_a_start_rewrites_nothing_that_is_up_to_date(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    _, now = first_done_then_held(settings, "copy.pdf")
    status = held_folder(data) / "status.json"
    written = status.stat().st_mtime_ns, status.stat().st_ino
    driven = Driven(settings)
    driven.scheduler.tick(now + 1)
    assert (status.stat().st_mtime_ns, status.stat().st_ino) == written
    assert metrics(data)["duplicates_pending"] == 1


def test_a_malformed_decision_is_not_reported_again_when_more_files_arrive(
        make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "one.pdf")
    write_decision(data, {"action": "DISCARD", "file": "nope.pdf"})
    with caplog.at_level(logging.WARNING, logger="ocrpipe.decisions"):
        driven.scheduler.tick(now + 1)
        (data / "in" / "two.pdf").write_bytes(make_pdf(2))
        driven.run_all(now + 2)
    assert len(held_files(data)) == 2
    assert len([r for r in caplog.records if "nope.pdf" in r.getMessage()]) == 1


# ----- one decision never replaces another -------------------------------------------------------------

def test_a_decision_written_while_the_run_reads_one_is_carried_out_too(
        make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    import ocrpipe.engine.decisions

    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "one.pdf", "two.pdf")
    write_decision(data, {"action": "USE_EXISTING_RESULT", "file": "one.pdf"})
    real = ocrpipe.engine.decisions.read_json
    written = []

    def read_then_a_person_writes(path: Path) -> Any:
        value = real(path)
        if "decision" in path.name and not written:  # between the run's read and its removal of the file
            written.append(path)
            write_decision(data, {"action": "DISCARD", "file": "two.pdf"})
        return value

    monkeypatch.setattr(ocrpipe.engine.decisions, "read_json", read_then_a_person_writes)
    now = driven.run_all(now)
    driven.run_all(now)  # the one written meanwhile is new: carried out at a next tick
    assert written and held_files(data) == [] and (data / "out" / "one.pdf").is_file()
    assert [d["action"] for d in finished(data)[0]["decision"]] == ["USE_EXISTING_RESULT", "DISCARD"]


@pytest.mark.parametrize("point", ["after the claim", "before the claimed file is removed"])
def test_a_crash_after_a_decision_was_claimed_is_finished_at_the_next_start(
        make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    settings = make_settings()
    data = settings.data_dir
    driven, now = first_done_then_held(settings, "one.pdf", "two.pdf")
    write_decision(data, {"action": "USE_EXISTING_RESULT", "file": "one.pdf"})
    real_rename, real_unlink = os.rename, Path.unlink
    crashed = []

    def rename_then_crash(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        real_rename(src, dst, *args, **kwargs)
        if "claimed" in str(dst) and not crashed:
            crashed.append(dst)
            raise SimulatedCrash("killed right after the claim")

    def crash_at_unlink(path: Path, *args: Any, **kwargs: Any) -> None:
        if "decision" in path.name and not crashed:
            crashed.append(path)
            raise SimulatedCrash("killed before the decision's file was removed")
        real_unlink(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        if point == "after the claim":
            patch.setattr(os, "rename", rename_then_crash)
        else:
            patch.setattr(Path, "unlink", crash_at_unlink)
        with pytest.raises(SimulatedCrash):
            driven.scheduler.tick(now + 1)
    assert crashed
    driven.restart()
    now = driven.run_all(now + 2)
    folder = held_folder(data)
    assert [p.name.split("__", 1)[1] for p in held_files(data)] == ["two.pdf"] and (data / "out" / "one.pdf").is_file()
    # Left: the held file, its hidden sidecar and status.json; no decision.json nor claimed decision.
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(("2", ".2"))) == ["status.json"]
    assert "error" not in json.loads((folder / "status.json").read_text())
    assert [d["action"] for d in finished(data)[0]["decision"]] == ["USE_EXISTING_RESULT"]
