"""``ocrpipe schedule``: the Task Scheduler XML, --every, the schtasks argv, cron and systemd output, quoting."""

from __future__ import annotations

import shlex
import subprocess
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path, PureWindowsPath
from typing import Callable
from unittest import mock

import pytest

from ocrpipe import cli
from ocrpipe.ops import schedule
from ocrpipe.config import Settings
from ocrpipe.errors import ConfigError, ExitCode, MissingToolError, ScheduleError
from ocrpipe.ops.schedule import (
    TASK_NS, action_for, cron_line, iso_duration, parse_every, schtasks_create_argv, schtasks_delete_argv,
    systemd_units, task_xml, time_limit,
)
from ocrpipe.tools.run import ToolResult

# A OneDrive folder with spaces, a dash, non-ASCII letters and an apostrophe: what a user's profile holds.
WIN_DATA = r"C:\Users\zoë.o'brien\OneDrive - Société\Documents\ocrpipe\data"
WIN_PYTHON = r"C:\Program Files\Python312\python.exe"
POSIX_DATA = "/srv/scans/Zoë's scans/data 100%"
POSIX_PYTHON = "/opt/ocr pipe/.venv/bin/python"
START = datetime(2026, 12, 1, 15, 42, 17)
NS = {"t": TASK_NS}


def windows_xml(every: int = 300, limit: int = 9 * 3600) -> str:
    return task_xml(action_for(WIN_PYTHON, WIN_DATA, windows=True), every=every, limit=limit, start=START)


def text_of(root: ET.Element, path: str) -> str | None:
    element = root.find(path, NS)
    assert element is not None, f"no {path} in the task XML"
    return element.text


# ----- the Task Scheduler XML ----------------------------------------------------------------------

def test_task_xml_has_every_element_with_its_value() -> None:
    root = ET.fromstring(windows_xml())
    assert root.tag == f"{{{TASK_NS}}}Task"
    trigger = "t:Triggers/t:TimeTrigger"
    assert text_of(root, f"{trigger}/t:StartBoundary") == "2026-12-01T15:42:00"
    assert text_of(root, f"{trigger}/t:Repetition/t:Interval") == "PT5M"
    assert root.find(f"{trigger}/t:Repetition/t:Duration", NS) is None  # repeats indefinitely
    assert text_of(root, "t:Settings/t:MultipleInstancesPolicy") == "IgnoreNew"
    assert text_of(root, "t:Settings/t:StartWhenAvailable") == "true"
    assert text_of(root, "t:Settings/t:ExecutionTimeLimit") == "PT9H"
    assert text_of(root, "t:Settings/t:DisallowStartIfOnBatteries") == "false"
    assert text_of(root, "t:Settings/t:StopIfGoingOnBatteries") == "false"
    assert text_of(root, "t:Principals/t:Principal/t:LogonType") == "InteractiveToken"
    assert text_of(root, "t:Actions/t:Exec/t:WorkingDirectory") == WIN_DATA
    assert text_of(root, "t:Actions/t:Exec/t:Command") == f'"{WIN_PYTHON}"'


def test_task_xml_says_how_to_run_logged_off_and_how_the_limit_is_chosen() -> None:
    comments = ET.fromstring(windows_xml(), parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    text = " ".join(e.text or "" for e in comments.iter() if e.tag is ET.Comment)
    assert "schtasks /Change /TN ocrpipe /RU <DOMAIN\\user> /RP" in text
    assert "500 pages" in text and "SHUTDOWN_GRACE_SECONDS" in text


def test_task_xml_trigger_children_follow_the_schema_sequence() -> None:
    # triggerBaseType is an xs:sequence: Task Scheduler refuses the elements in another order.
    trigger = ET.fromstring(windows_xml()).find("t:Triggers/t:TimeTrigger", NS)
    assert trigger is not None
    assert [child.tag.split("}")[1] for child in trigger] == ["Enabled", "StartBoundary", "Repetition"]


def split_windows(command_line: str) -> list[str]:
    """CommandLineToArgvW's rules for arguments (what python.exe's C runtime does), for the test."""
    args, current, quoted, backslashes, started = [], "", False, 0, False
    for char in command_line:
        if char == "\\":
            backslashes += 1
            continue
        if char == '"':
            current += "\\" * (backslashes // 2)
            if backslashes % 2:
                current += '"'
            else:
                quoted = not quoted
            backslashes, started = 0, True
            continue
        current += "\\" * backslashes
        backslashes = 0
        if char in " \t" and not quoted:
            if started:
                args.append(current)
            current, started = "", False
        else:
            current += char
            started = True
    current += "\\" * backslashes
    if started:
        args.append(current)
    return args


@pytest.mark.parametrize("data", [WIN_DATA, "D:\\", r"\\nas\scans\Überweisungen 2026", r"C:\data"])
def test_task_arguments_split_back_into_the_run_command(data: str) -> None:
    xml = task_xml(action_for(WIN_PYTHON, data, windows=True), every=300, limit=3600, start=START)
    arguments = text_of(ET.fromstring(xml), "t:Actions/t:Exec/t:Arguments")
    assert arguments is not None
    log = str(PureWindowsPath(data) / "index" / "ocrpipe.log")
    assert split_windows(arguments) == ["-m", "ocrpipe", "run", "--once", "--data", data, "--log-file", log]


def test_task_xml_round_trips_through_etree() -> None:
    text = windows_xml()
    root = ET.fromstring(text)
    again = ET.fromstring(ET.tostring(root, encoding="unicode"))
    assert [(e.tag, (e.text or "").strip(), e.attrib) for e in root.iter()] == \
           [(e.tag, (e.text or "").strip(), e.attrib) for e in again.iter()]
    # install writes UTF-16 with a byte order mark, schtasks' own format; it parses the same.
    assert ET.fromstring(text.encode("utf-16")).find("t:Actions/t:Exec/t:WorkingDirectory", NS).text == WIN_DATA


def test_interval_and_time_limit_durations() -> None:
    assert [iso_duration(s) for s in (60, 300, 3600, 5400, 86400, 90061)] == \
           ["PT1M", "PT5M", "PT1H", "PT1H30M", "P1D", "P1DT1H1M1S"]
    root = ET.fromstring(windows_xml(every=86400))
    assert text_of(root, "t:Triggers/t:TimeTrigger/t:Repetition/t:Interval") == "P1D"


def test_time_limit_lets_the_largest_document_through(make_settings: Callable[..., Settings]) -> None:
    # 600 s PREP + 300 s + 500 pages × 60 s OCR + 2 × 30 s margins + 30 s grace = 30,990 s → 9 h
    assert time_limit(make_settings()) == 9 * 3600
    slow = make_settings(OCR_TIMEOUT_PER_PAGE_SECONDS="200")
    assert time_limit(slow) == 29 * 3600  # 600 + 300 + 100,000 + 90 = 100,990 s → 28.05 h → 29 h


# ----- --every --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("1m", 60), ("5m", 300), ("90m", 5400), ("2h", 7200), ("24h", 86400),
                                           ("120s", 120), (" 10M ", 600)])
def test_every_accepts_a_minute_to_a_day(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text, why", [("30s", "under a minute"), ("59s", "under a minute"), ("0m", "under a minute"),
                                       ("25h", "over 24h"), ("90s", "whole minutes"), ("5", "a number and a unit"),
                                       ("5 min", "a number and a unit"), ("-5m", "a number and a unit"),
                                       ("", "a number and a unit")])
def test_every_refuses_what_a_scheduler_cannot_repeat(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_every(text)


# ----- schtasks --------------------------------------------------------------------------------------

def test_schtasks_argv_is_a_list_without_a_shell() -> None:
    xml_file = Path("C:/Users/zoë/AppData/Local/Temp/ocrpipe-task-1/task.xml")
    assert schtasks_create_argv(xml_file, "ocrpipe") == ["schtasks", "/Create", "/XML", str(xml_file), "/TN",
                                                         "ocrpipe", "/F"]
    assert schtasks_delete_argv("ocrpipe-scans") == ["schtasks", "/Delete", "/TN", "ocrpipe-scans", "/F"]


def test_install_writes_utf16_xml_and_calls_schtasks(data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    data_dir.mkdir()
    seen: dict[str, object] = {}

    def fake_run_tool(argv: list[str], *, timeout: float) -> ToolResult:
        seen["argv"] = argv
        seen["xml"] = Path(argv[3]).read_bytes()
        return ToolResult(0, "SUCCESS: The scheduled task \"scans\" has successfully been created.", "", 0.1)

    with mock.patch.object(schedule, "run_tool", fake_run_tool):
        said = schedule.schedule("install", make_settings(), every="5m", name="scans", fmt=None,
                                 python=WIN_PYTHON, windows=True, now=START)
    argv = seen["argv"]
    assert isinstance(argv, list) and argv[:3] == ["schtasks", "/Create", "/XML"] and argv[4:] == ["/TN", "scans", "/F"]
    raw = seen["xml"]
    assert isinstance(raw, bytes) and raw.startswith(b"\xff\xfe")  # UTF-16 with its byte order mark
    root = ET.fromstring(raw)
    assert text_of(root, "t:Actions/t:Exec/t:WorkingDirectory") == str(PureWindowsPath(data_dir.resolve()))
    assert not Path(argv[3]).exists()  # the temporary file is gone
    assert "successfully been created" in said and "scans" in said


def test_schtasks_failure_is_a_clear_error_with_its_own_code(make_settings: Callable[..., Settings]) -> None:
    refused = ToolResult(1, "", "ERROR: Access is denied.", 0.1)
    with mock.patch.object(schedule, "run_tool", return_value=refused):
        with pytest.raises(ScheduleError, match="Access is denied") as caught:
            schedule.schedule("remove", make_settings(), every="5m", name="ocrpipe", fmt=None, python=WIN_PYTHON,
                              windows=True)
    assert caught.value.exit_code == ExitCode.SCHEDULE_FAILED == 6


def test_missing_schtasks_is_a_missing_tool() -> None:
    # The real run_tool: no program of that name here, as on a Windows without System32 on PATH.
    with mock.patch.object(schedule, "schtasks_delete_argv", return_value=["ocrpipe-no-such-schtasks", "/Delete"]):
        with pytest.raises(MissingToolError, match="could not run schtasks"):
            schedule.remove_task("ocrpipe")


@pytest.mark.parametrize("verb", ["install", "remove"])
def test_install_and_remove_elsewhere_exit_2_and_point_to_show(verb: str, data_dir: Path,
                                                               fake_env: dict[str, str],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    data_dir.mkdir()
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setattr(cli, "WINDOWS", False)
    assert cli.main(["schedule", verb]) == 2
    err = capsys.readouterr().err
    assert "only Windows has" in err and "ocrpipe schedule show --format cron" in err and "Traceback" not in err


def test_show_needs_an_existing_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no such folder"
    assert cli.main(["schedule", "show", "--data", str(missing)]) == 2
    assert f"the data folder {missing} does not exist" in capsys.readouterr().err


def main(argv: list[str]) -> int:
    """The command's exit code, whether argparse exits or main returns."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("args, what", [(["--every", "30s"], "under a minute"), (["--name", "my task"], "--name"),
                                        (["--name", "..\\x"], "--name"), (["--format", "ical"], "invalid choice"),
                                        (["--every", "7m", "--format", "cron"], "divisor of 60 minutes")])
def test_bad_usage_exits_2_naming_it(args: list[str], what: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "show", "--data", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert what in err and "Traceback" not in err


# ----- cron ------------------------------------------------------------------------------------------

def posix_action() -> schedule.Action:
    return action_for(POSIX_PYTHON, POSIX_DATA, windows=False)


@pytest.mark.parametrize("every, when", [(60, "* * * * *"), (300, "*/5 * * * *"), (1800, "*/30 * * * *"),
                                         (3600, "0 * * * *"), (7200, "0 */2 * * *"), (86400, "0 0 * * *")])
def test_cron_schedule(every: int, when: str) -> None:
    assert cron_line(posix_action(), every=every).startswith(when + " cd ")


@pytest.mark.parametrize("every", [420, 5400, 5 * 3600])
def test_cron_refuses_what_it_cannot_repeat_evenly(every: int) -> None:
    with pytest.raises(ConfigError, match="divisor of 60 minutes"):
        cron_line(posix_action(), every=every)


def test_cron_line_quotes_paths_and_escapes_percent() -> None:
    line = cron_line(posix_action(), every=300)
    command = line.split(" ", 5)[5]
    assert "%" not in command.replace("\\%", "")  # cron would turn a bare % into a line break
    shell = command.replace("\\%", "%")  # what cron hands to /bin/sh
    words = shlex.split(shell.split(" >/dev/null")[0])
    assert words[:3] == ["cd", POSIX_DATA, "&&"]
    assert words[3:] == [POSIX_PYTHON, "-m", "ocrpipe", "run", "--once", "--data", POSIX_DATA, "--log-file",
                         f"{POSIX_DATA}/index/ocrpipe.log"]
    assert "flock" not in line and "[ $rc -eq 4 ]" in line  # ocrpipe's own lock: exit 4 stays quiet


def test_cron_command_runs_in_sh(tmp_path: Path) -> None:
    """The line's command, run by /bin/sh as cron does, reaches the program with every argument intact
    and mails (prints) one line for a failure other than 4."""
    data = tmp_path / "Zoë's data 100%"
    data.mkdir()
    recorder = tmp_path / "fake python"
    recorder.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$PWD\" \"$@\" > {shlex.quote(str(tmp_path / 'argv'))}\nexit 1\n")
    recorder.chmod(0o755)
    line = cron_line(action_for(str(recorder), str(data), windows=False), every=300)
    command = line.split(" ", 5)[5].replace("\\%", "%")
    result = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=30)
    assert (tmp_path / "argv").read_text().splitlines() == [
        str(data), "-m", "ocrpipe", "run", "--once", "--data", str(data), "--log-file", f"{data}/index/ocrpipe.log"]
    assert result.stdout.strip() == "ocrpipe run --once exited 1: see ocrpipe.log in the index folder of the data folder"


# ----- systemd ---------------------------------------------------------------------------------------

def split_units(text: str) -> dict[str, str]:
    units, name = {}, ""
    for line in text.splitlines():
        if line.startswith("# ~/.config/systemd/user/"):
            name = line.rsplit("/", 1)[1]
            units[name] = ""
        elif name:
            units[name] += line + "\n"
    return units


def test_systemd_service_and_timer() -> None:
    units = split_units(systemd_units(posix_action(), every=300, limit=9 * 3600, grace=30, name="ocrpipe"))
    assert set(units) == {"ocrpipe.service", "ocrpipe.timer"}
    service, timer = units["ocrpipe.service"], units["ocrpipe.timer"]
    for line in ("Type=oneshot", "SuccessExitStatus=4", "TimeoutStartSec=32400", "KillMode=mixed",
                 "TimeoutStopSec=60"):
        assert line in service.splitlines()
    for line in ("OnCalendar=*:0/5", "Persistent=true", "WantedBy=timers.target"):
        assert line in timer.splitlines()
    hourly = split_units(systemd_units(posix_action(), every=7200, limit=3600, grace=30, name="x"))["x.timer"]
    assert "OnCalendar=0/2:00" in hourly.splitlines()
    every_hour = split_units(systemd_units(posix_action(), every=3600, limit=3600, grace=30, name="x"))["x.timer"]
    assert "OnCalendar=0/1:00" in every_hour.splitlines()


def test_systemd_quotes_spaces_and_escapes_specifiers() -> None:
    service = split_units(systemd_units(posix_action(), every=300, limit=3600, grace=30, name="ocrpipe"))["ocrpipe.service"]
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]
    # systemd first turns %% into % and $$ into $, then splits like a shell with double quotes.
    words = shlex.split(exec_start.replace("%%", "%").replace("$$", "$"))
    assert words == [POSIX_PYTHON, "-m", "ocrpipe", "run", "--once", "--data", POSIX_DATA, "--log-file",
                     f"{POSIX_DATA}/index/ocrpipe.log"]
    assert f"WorkingDirectory={POSIX_DATA.replace('%', '%%')}" in service.splitlines()


def test_show_prints_the_platforms_default(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data_dir.mkdir()
    monkeypatch.setattr(cli, "WINDOWS", False)
    assert cli.main(["schedule", "show", "--data", str(data_dir)]) == 0
    assert capsys.readouterr().out.startswith("*/5 * * * * cd ")
    monkeypatch.setattr(cli, "WINDOWS", True)
    assert cli.main(["schedule", "show", "--data", str(data_dir), "--every", "15m"]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    assert text_of(root, "t:Triggers/t:TimeTrigger/t:Repetition/t:Interval") == "PT15M"


def test_the_scheduled_command_is_one_ocrpipe_run_accepts() -> None:
    """The task's arguments parse with ocrpipe's own parser: run --once, the data folder, the log file."""
    args = cli.build_parser().parse_args(posix_action().args[2:])
    assert (args.command, args.once, str(args.data)) == ("run", True, POSIX_DATA)
    assert str(args.LOG_FILE) == f"{POSIX_DATA}/index/ocrpipe.log"
