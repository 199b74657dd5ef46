"""An ocrmypdf started ahead of its call (tools/readytool.py and its launcher) runs the call as a fresh
``python -m ocrmypdf`` would: the call's arguments, environment (TMPDIR too), working folder, no stdin, its
output in the call's log, its exit code. It is used only for the command it was started for, never when it
died meanwhile, and it ends when its worker ends or stdin closes. A fake ``ocrmypdf`` package stands in for
the real one (the integration tests run the real one through it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ocrpipe.config import load_settings
from ocrpipe.engine.worker import ready_for_next, warm_up
from ocrpipe.tools.readytool import READY, ReadyTool, launcher_argv
from ocrpipe.tools.run import run_tool

FAKE_MAIN = """
import json, os, sys, tempfile

def run(args):
    record = {"args": args, "pid": os.getpid(), "tmpdir": tempfile.gettempdir(), "cwd": os.getcwd(),
              "marker": os.environ.get("CALL_MARKER"), "stdin": sys.stdin.read()}
    with open(args[-1], "w") as out:
        json.dump(record, out)
    print("a line on stderr", file=sys.stderr)
    print("a line on stdout")
    return int(os.environ.get("FAKE_EXIT", "0"))

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
"""
COMMAND = (sys.executable, "-m", "ocrmypdf")


@pytest.fixture
def fake_ocrmypdf(tmp_path: Path) -> dict[str, str]:
    package = tmp_path / "fake" / "ocrmypdf"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_MAIN)
    return {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}


@pytest.fixture
def ready() -> Iterator[ReadyTool]:
    tool = ReadyTool()
    yield tool
    tool.stop()


def waiting_pid(tool: ReadyTool) -> int:
    proc = tool._proc  # the launcher started ahead, for the test to recognise
    assert proc is not None and proc.poll() is None
    return proc.pid


def test_only_python_dash_m_ocrmypdf_can_be_started_ahead() -> None:
    assert launcher_argv(COMMAND) == [sys.executable, str(Path(__file__).resolve().parents[1] / "ocrpipe" / "tools"
                                                          / "ocrmypdf_launcher.py")]
    for other in (("ocrmypdf",), (sys.executable, "-S", "fake_tool.py", "ocrmypdf"), (sys.executable, "-m", "pip")):
        assert launcher_argv(other) is None


def test_a_call_runs_in_the_launcher_as_a_fresh_ocrmypdf_would(ready: ReadyTool, fake_ocrmypdf: dict[str, str],
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ocrpipe.tools.run.READY", ready)
    ready.start(COMMAND, fake_ocrmypdf)
    launcher = waiting_pid(ready)
    time.sleep(0.3)  # let it finish its import: the call then only waits for itself
    call_tmp, cwd = tmp_path / "job-tmp", tmp_path / "cwd"
    call_tmp.mkdir()
    cwd.mkdir()
    env = {**fake_ocrmypdf, "TMPDIR": str(call_tmp), "CALL_MARKER": "this call", "FAKE_EXIT": "6"}
    log = tmp_path / "ocr.log"
    log.write_text("an older attempt's log\n")
    out = tmp_path / "record.json"
    result = run_tool([*COMMAND, "--jobs", "2", str(out)], timeout=60, env=env, cwd=cwd, log_path=log)
    record = json.loads(out.read_text())
    assert record["pid"] == launcher
    assert record["args"] == ["--jobs", "2", str(out)]
    assert (record["tmpdir"], record["cwd"], record["marker"], record["stdin"]) == (str(call_tmp), str(cwd),
                                                                                    "this call", "")
    assert result.returncode == 6
    assert "a line on stderr" in result.stderr_tail
    assert log.read_text().startswith("a line on")  # the call's log, not the older attempt's
    assert ready._proc is None  # used up: the next call starts its own unless another is started


def test_another_command_or_a_call_without_a_log_starts_its_own_tool(ready: ReadyTool, fake_ocrmypdf: dict[str, str],
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ocrpipe.tools.run.READY", ready)
    ready.start(COMMAND, fake_ocrmypdf)
    launcher = waiting_pid(ready)
    script = tmp_path / "other.py"
    script.write_text(FAKE_MAIN)
    out = tmp_path / "other.json"
    run_tool([sys.executable, str(script), str(out)], timeout=60, env=fake_ocrmypdf, log_path=tmp_path / "other.log")
    assert json.loads(out.read_text())["pid"] != launcher
    out = tmp_path / "nolog.json"
    run_tool([*COMMAND, str(out)], timeout=60, env=fake_ocrmypdf)  # no log file for the launcher to write to
    assert json.loads(out.read_text())["pid"] != launcher
    assert waiting_pid(ready) == launcher  # still waiting for its own kind of call


def test_a_launcher_that_died_while_waiting_is_not_used(ready: ReadyTool, fake_ocrmypdf: dict[str, str],
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ocrpipe.tools.run.READY", ready)
    ready.start(COMMAND, fake_ocrmypdf)
    launcher = psutil.Process(waiting_pid(ready))
    launcher.kill()
    launcher.wait(10)
    out = tmp_path / "record.json"
    result = run_tool([*COMMAND, str(out)], timeout=60, env=fake_ocrmypdf, log_path=tmp_path / "ocr.log")
    assert result.returncode == 0
    assert json.loads(out.read_text())["pid"] != launcher.pid


def test_a_launcher_ends_with_its_worker_or_at_the_end_of_stdin(ready: ReadyTool, fake_ocrmypdf: dict[str, str]) -> None:
    ready.start(COMMAND, fake_ocrmypdf)
    launcher = psutil.Process(waiting_pid(ready))
    ready.stop()
    assert not launcher.is_running() or launcher.status() == psutil.STATUS_ZOMBIE
    # Its worker gone without a word (stdin closed): it ends by itself, with exit code 0.
    alone = subprocess.Popen(launcher_argv(COMMAND) or [], stdin=subprocess.PIPE, env=fake_ocrmypdf)
    assert alone.stdin is not None
    alone.stdin.close()
    assert alone.wait(timeout=30) == 0


def test_an_ocr_worker_starts_one_at_warm_up_and_again_after_a_call_only_in_a_service(
        fake_ocrmypdf: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings({**fake_ocrmypdf, "DATA_DIR": str(tmp_path / "data")})
    assert settings.ocrmypdf == COMMAND
    taken: list[subprocess.Popen[bytes]] = []

    def take() -> int:  # as a call takes it
        pid = waiting_pid(READY)
        assert READY._proc is not None
        taken.append(READY._proc)
        READY._proc = None
        return pid

    try:
        warm_up("PREP", settings, keep_tools_ready=True)
        assert READY._proc is None  # PREP workers run no ocrmypdf
        warm_up("OCR", settings, keep_tools_ready=False)  # run --once
        first = take()
        ready_for_next(settings)
        assert READY._proc is None  # no next file to wait for
        warm_up("OCR", settings, keep_tools_ready=True)  # a service
        second = take()
        ready_for_next(settings)
        assert waiting_pid(READY) not in (first, second)
    finally:
        READY.stop()
        READY.keep_ready = False
        for proc in taken:
            ReadyTool._end(proc)
