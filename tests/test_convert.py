"""The CONVERT stage with a stand-in LibreOffice (tests/fakes/fake_tool.py, launched through SOFFICE as the
real one is): Office documents told by content go through it before PREP, each with a profile of its own in
its job folder and the network behind a dead proxy; a hang is killed at the stage's limit and retried, a
crash mid-CONVERT resumes, a password-protected document fails for good with its own code, and several
convert at once. Spawned pools run the real stage code; restarts use executors the test drives."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

import officeinputs as oi
from conftest import TEST_PROFILE, drive, fake_command, finished_jobs, read_calls
from faultkit import Driven, SimulatedCrash, files_under
from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.errors import Code
from ocrpipe.folders.store import read_state
from ocrpipe.index.metrics import load_metrics
from ocrpipe.model import JobState, Stage
from ocrpipe.tools.soffice import DEAD_PROXY

OFFICE_PROFILE = {**TEST_PROFILE, "tool_versions": {"fake": "1", "soffice": "99.2.0.1"}}


@pytest.fixture
def office_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        return make_settings(SOFFICE=fake_command("soffice"), OFFICE_INPUT="on", **overrides)

    return make


def drop_rtf(data_dir: Path, name: str, words: str) -> Path:
    """RTF: plain text inside, so the fake reads its scenario (FAKE-SCENARIO:…) and its words."""
    (data_dir / "in").mkdir(parents=True, exist_ok=True)
    return oi.rtf(data_dir / "in" / name, [words])


def errors(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((data_dir / "error").glob("*/error.json"))]


def office_scheduler(settings: Settings, scheduler_for: Callable[..., Scheduler]) -> Scheduler:
    scheduler = scheduler_for(settings)
    scheduler.profile = OFFICE_PROFILE  # before start: admission reads the converters from it
    return scheduler


def test_three_documents_convert_at_once_each_with_its_own_profile_and_no_network(
        data_dir: Path, office_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler],
        tool_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SOFFICE_BARRIER", "3")  # no conversion ends before all three have started
    for n in range(3):
        drop_rtf(data_dir, f"letter {n}.doc", f"zebra number{n}")  # an RTF named .doc: content decides
    scheduler = office_scheduler(office_settings(CONVERT_CONCURRENCY="3"), scheduler_for)
    drive(scheduler, timeout=90)
    assert files_under(data_dir / "out") == [f"letter {n}.pdf" for n in range(3)]
    assert errors(data_dir) == []
    starts = [c for c in read_calls(tool_log) if c["tool"] == "soffice" and c["event"] == "start"]
    assert len(starts) == 3
    profiles = {c["profile"] for c in starts}
    assert len(profiles) == 3, "one LibreOffice profile per job"
    for call in starts:
        job_dir = Path(call["input"]).parents[3]
        assert call["profile"] == (job_dir / "tmp" / "lo-profile").resolve().as_uri()
        assert (call["http_proxy"], call["no_proxy"]) == (DEAD_PROXY, "")
    jobs = finished_jobs(data_dir)
    assert {j["kind"] for j in jobs} == {"office"} and all(j["attempts"]["CONVERT"] == 1 for j in jobs)
    assert load_metrics(data_dir / "index")["conversions_done"] == 3


def test_a_hanging_conversion_is_killed_at_the_limit_and_retried(
        data_dir: Path, office_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler],
        tool_log: Path) -> None:
    drop_rtf(data_dir, "stuck.rtf", "FAKE-SCENARIO:hang")
    settings = office_settings(CONVERT_TIMEOUT_SECONDS="2", MAX_ATTEMPTS_CONVERT="2")
    scheduler = office_scheduler(settings, scheduler_for)
    drive(scheduler, timeout=60)
    [error] = errors(data_dir)
    assert (error["code"], error["stage"]) == (Code.TOOL_TIMEOUT.value, "CONVERT")
    assert error["attempts"]["CONVERT"] == 2
    starts = [c for c in read_calls(tool_log) if c["tool"] == "soffice" and c["event"] == "start"]
    assert len(starts) == 2, "killed, then retried once"
    children = [c["child_pid"] for c in read_calls(tool_log) if c["tool"] == "child"]
    assert len(children) == 2
    for pid in children:  # the whole tree went, the tool's own child too
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    metrics = load_metrics(data_dir / "index")
    assert (metrics["conversions_failed"], metrics["errors_tool"]) == (1, 1)


def test_a_crash_mid_convert_resumes_without_using_an_attempt(
        data_dir: Path, office_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    drop_rtf(data_dir, "memo.rtf", "walrus memo")
    driven = Driven(office_settings(), profile=OFFICE_PROFILE)
    driven.scheduler.tick(1.0)
    [call] = driven.calls()
    assert call[1].__name__ == "run_convert"
    [job] = driven.scheduler.jobs.values()

    def power_goes_off(*args: Any, **kwargs: Any) -> None:
        raise SimulatedCrash("power cut as LibreOffice starts")

    future, fn, args, kwargs = driven.pop()
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "Popen", power_goes_off)
        with pytest.raises(SimulatedCrash):
            fn(*args, **kwargs)
    assert read_state(job.dir)["state"] == JobState.CONVERT_RUNNING.value
    driven.restart()
    driven.run_all(2.0)
    assert files_under(data_dir / "out") == ["memo.pdf"] and errors(data_dir) == []
    [done] = finished_jobs(data_dir)
    assert done["attempts"]["CONVERT"] == 2 and done["kind"] == "office"


def test_a_password_protected_document_fails_at_once_with_its_own_code(
        data_dir: Path, office_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler],
        tool_log: Path) -> None:
    (data_dir / "in").mkdir(parents=True)
    oi.odt(data_dir / "in" / "secret.odt", ["hidden"], encrypted=True)
    oi.ole(data_dir / "in" / "locked.docx", ["EncryptionInfo", "EncryptedPackage"])
    drive(office_scheduler(office_settings(), scheduler_for), timeout=60)
    found = {e["source"]: e for e in errors(data_dir)}
    assert set(found) == {"secret.odt", "locked.docx"}
    for error in found.values():
        assert (error["code"], error["attempts"]["CONVERT"]) == (Code.OFFICE_PASSWORD.value, 1)
        assert "password-protected" in error["reason"]
    assert not [c for c in read_calls(tool_log) if c["tool"] == "soffice"], "LibreOffice never saw them"
    assert sorted(p.name for p in (data_dir / "error").glob("*/*") if p.suffix != ".json") == ["locked.docx",
                                                                                               "secret.odt"]


def test_a_document_libreoffice_cannot_open_fails_for_good(
        data_dir: Path, office_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler]) -> None:
    drop_rtf(data_dir, "broken.rtf", "FAKE-SCENARIO:unloadable")
    drive(office_scheduler(office_settings(), scheduler_for), timeout=60)
    [error] = errors(data_dir)
    assert (error["code"], error["attempts"]["CONVERT"]) == (Code.OFFICE_DAMAGED.value, 1)


def test_without_office_input_an_office_file_is_refused_saying_why(
        data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler]) -> None:
    """OFFICE_INPUT=off (or no LibreOffice): not converted, and refused as an Office document, not as a
    broken archive (7-Zip used to fail on an .odt three times, TOOL_FAILED)."""
    (data_dir / "in").mkdir(parents=True)
    oi.odt(data_dir / "in" / "notes.odt", ["giraffe"])
    oi.docx(data_dir / "in" / "letter.docx", ["zebra"])
    drive(scheduler_for(make_settings(OFFICE_INPUT="off")), timeout=60)
    found = {e["source"]: e for e in errors(data_dir)}
    assert set(found) == {"notes.odt", "letter.docx"}
    for error in found.values():
        assert (error["code"], error["attempts"]) == (Code.OFFICE_UNAVAILABLE.value, {"PREP": 1, "OCR": 0})
        assert "OFFICE_INPUT" in error["reason"]


def test_scans_beside_office_files_never_touch_the_convert_pool(
        data_dir: Path, office_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler]) -> None:
    from conftest import make_pdf

    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    scheduler = office_scheduler(office_settings(), scheduler_for)
    drive(scheduler, timeout=60)
    [job] = finished_jobs(data_dir)
    assert "CONVERT" not in job["attempts"]
    assert scheduler.pools[Stage.CONVERT]._executor is None  # type: ignore[attr-defined]
