"""Windows-specific choices, each branch selected explicitly: stop signals, tool process flags, doctor's advice."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from pathlib import Path, PureWindowsPath
from typing import Callable
from unittest import mock

import psutil
import pytest

from conftest import job_ready_for_ocr, make_pdf
from ocrpipe.config import Settings
from ocrpipe.ops.doctor import doctor
from ocrpipe.errors import ExitCode
from ocrpipe.folders.heartbeat import HOST
from ocrpipe.model import JobState
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.stages.common import tool_env
from ocrpipe.folders.store import read_state, transition
from ocrpipe.runner import StopSignals, stop_signal_names
from ocrpipe.tools.check import language_install_hint, windows_tessdata
from ocrpipe.tools.detach import CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW, detach_flags


def installed_signals(*, windows: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)  # Windows' number; Linux has no SIGBREAK
    names = {getattr(signal, n): n for n in ("SIGINT", "SIGTERM", "SIGBREAK")}
    stop = StopSignals()
    with mock.patch.object(signal, "signal") as install:
        stop.install(windows=windows)
    return {names[call.args[0]]: call.args[1] for call in install.call_args_list}


def test_windows_stops_on_ctrl_c_and_ctrl_break_or_console_close(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = installed_signals(windows=True, monkeypatch=monkeypatch)
    assert set(handlers) == {"SIGINT", "SIGBREAK"}
    assert stop_signal_names(windows=True) == ("SIGINT", "SIGBREAK")


def test_posix_stops_on_ctrl_c_and_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = installed_signals(windows=False, monkeypatch=monkeypatch)
    assert set(handlers) == {"SIGINT", "SIGTERM"}


@pytest.mark.parametrize("windows", [True, False])
def test_first_signal_asks_a_graceful_stop_the_second_stops_at_once(windows: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    stop = StopSignals()
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    with mock.patch.object(signal, "signal") as install:
        stop.install(windows=windows)
    handler = install.call_args_list[-1].args[1]  # SIGBREAK on Windows, SIGTERM elsewhere
    handler(install.call_args_list[-1].args[0], None)
    assert stop.count == 1
    with pytest.raises(KeyboardInterrupt):
        handler(install.call_args_list[-1].args[0], None)


def test_windows_tools_get_their_own_group_and_hidden_console() -> None:
    flags = detach_flags(windows=True)
    assert flags == {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    assert (CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW) == (0x200, 0x08000000)  # winbase.h


def test_posix_tools_get_their_own_session() -> None:
    assert detach_flags(windows=False) == {"start_new_session": True}


def test_tessdata_beside_the_found_tesseract() -> None:
    exe = r"D:\Tools\Tesseract-OCR\tesseract.exe"
    assert windows_tessdata((exe,), {}) == PureWindowsPath(r"D:\Tools\Tesseract-OCR\tessdata")
    assert windows_tessdata(("tesseract",), {}) == PureWindowsPath(r"C:\Program Files\Tesseract-OCR\tessdata")
    assert windows_tessdata((exe,), {"TESSDATA_PREFIX": r"E:\lang"}) == PureWindowsPath(r"E:\lang")


def test_language_hint_names_the_file_and_where_it_goes() -> None:
    debian, windows = language_install_hint("deu", PureWindowsPath(r"D:\Tools\Tesseract-OCR\tessdata"))
    assert debian == "sudo apt-get install -y tesseract-ocr-deu"
    assert r"as D:\Tools\Tesseract-OCR\tessdata\deu.traineddata" in windows
    assert "tessdata_fast/raw/main/deu.traineddata" in windows


def test_doctor_names_the_winget_ids_the_tessdata_file_and_the_integration_tests(
        tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    gone = tmp_path / "not installed"
    settings = make_settings(SEVEN_ZIP=str(gone / "7z.exe"), TESSERACT=str(gone / "tesseract.exe"),
                             GHOSTSCRIPT=str(gone / "gswin64c.exe"))
    out = io.StringIO()
    assert doctor(settings, out=out) == ExitCode.MISSING_TOOL
    text = out.getvalue()
    for winget in ("7zip.7zip", "UB-Mannheim.TesseractOCR", "ArtifexSoftware.GhostScript"):
        assert f"winget install --id {winget}" in text
    assert r"Tesseract-OCR\tessdata\eng.traineddata" in text  # Tesseract does not run: no language is there
    assert r".\run_tests.ps1 -Integration" in text


def test_after_a_hard_stop_the_next_start_kills_the_tools_left_behind(
        data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[[Settings], Scheduler]) -> None:
    """``taskkill /F`` (or a closed console) ends ocrpipe with no clean-up at all: a tool it ran may outlive it,
    but only until the next start, which kills what the job's heartbeat names (pid and start time)."""
    job_dir = job_ready_for_ocr(data_dir / "work", "f" * 64, make_pdf(1))
    for state in (JobState.OCR_SUBMITTED, JobState.OCR_RUNNING):
        transition(job_dir, state, attempts={"PREP": 1, "OCR": 1})
    settings = make_settings()
    # Started as a stage starts its tools: with the mark that makes it this ocrpipe's (ownprocs.py).
    tool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL,
                            env=tool_env(settings, job_dir))
    try:
        created = psutil.Process(tool.pid).create_time()
        (job_dir / "ocr.heartbeat").write_text(json.dumps({"stage": "OCR", "attempt": 1, "host": HOST, "worker": None,
                                                           "tools": [{"pid": tool.pid, "createTime": created}]}))
        scheduler_for(settings).start()
        assert tool.wait(timeout=10) is not None  # killed at start
        assert read_state(job_dir)["state"] != "OCR_RUNNING"  # the interrupted stage runs again
    finally:
        tool.kill()
        tool.wait()
