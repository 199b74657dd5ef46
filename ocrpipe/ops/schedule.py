"""``ocrpipe schedule``: the Task Scheduler XML, a crontab line or systemd units that run ``run --once``."""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath

from ocrpipe.config import Settings
from ocrpipe.errors import ConfigError, MissingToolError, ScheduleError, TransientError
from ocrpipe.tools.run import run_tool

TASK_NS = "http://schemas.microsoft.com/windows/2004/02/mit/task"
LOG_NAME = "ocrpipe.log"
MIN_EVERY, MAX_EVERY = 60, 24 * 3600
# The largest document planned for: the time limit must let one such document through PREP and OCR,
# or a run that is stopped at the limit would start it again at every run and never finish it.
LARGEST_DOCUMENT_PAGES = 500
STAGE_MARGIN_SECONDS = 30  # the scheduler's own margin beyond each stage's limit
SCHTASKS_TIMEOUT = 60
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EVERY = re.compile(r"\s*(\d+)\s*([smh])\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Action:
    """What the scheduler starts: ``python -m ocrpipe run --once`` in the data folder, logging to a file."""

    python: str
    data_dir: PurePath

    @property
    def log_file(self) -> PurePath:
        return self.data_dir / "index" / LOG_NAME

    @property
    def args(self) -> list[str]:
        return ["-m", "ocrpipe", "run", "--once", "--data", str(self.data_dir), "--log-file", str(self.log_file)]


def action_for(python: str, data_dir: str, *, windows: bool) -> Action:
    """``windows`` picks the path flavour, so the Windows output can be built and tested anywhere."""
    if any(ord(c) < 32 for c in data_dir + python):
        raise ConfigError(f"the data folder {data_dir!r} has a control character (a line break?) in its name")
    return Action(python, PureWindowsPath(data_dir) if windows else PurePosixPath(data_dir))


def parse_every(text: str) -> int:
    """``5m`` → 300 seconds; ``1m`` to ``24h``, whole minutes (Task Scheduler's and cron's unit)."""
    match = _EVERY.fullmatch(text)
    if not match:
        raise ConfigError(f"--every {text!r} is not valid: expected a number and a unit, e.g. 5m, 90m or 2h")
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2).lower()]
    if seconds < MIN_EVERY:
        raise ConfigError(f"--every {text!r} is not valid: under a minute (Task Scheduler and cron repeat "
                          "at most once a minute)")
    if seconds > MAX_EVERY:
        raise ConfigError(f"--every {text!r} is not valid: over 24h")
    if seconds % 60:
        raise ConfigError(f"--every {text!r} is not valid: expected whole minutes")
    return seconds


def iso_duration(seconds: int) -> str:
    """``xs:duration`` as Task Scheduler writes it: 300 → PT5M, 5400 → PT1H30M, 86400 → P1D."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "") if seconds else "PT0S"


def time_limit(settings: Settings) -> int:
    """Seconds a run may take before the scheduler stops it: one document of LARGEST_DOCUMENT_PAGES
    through PREP and OCR at their time limits (with the scheduler's margins) and the stop's grace
    period, rounded up to the hour. A stopped run loses nothing: the next one resumes its jobs."""
    seconds = (settings.prep_timeout_seconds + settings.ocr_timeout_for(LARGEST_DOCUMENT_PAGES)
               + 2 * STAGE_MARGIN_SECONDS + settings.shutdown_grace_seconds)
    return max(1, math.ceil(seconds / 3600)) * 3600


def human(seconds: int) -> str:
    """300 → ``5 min``, 5400 → ``1 h 30 min``."""
    hours, minutes = divmod(seconds // 60, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if part)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"--name {name!r} is not valid: expected letters, digits, '.', '_' or '-' "
                          "(at most 64, starting with a letter or digit)")
    return name


# ----- Windows: Task Scheduler -------------------------------------------------------------------


def _windows_command_line(args: list[str]) -> str:
    # The rules of the Microsoft C runtime, which python.exe uses to split its command line.
    return subprocess.list2cmdline(args)


def task_xml(action: Action, *, every: int, limit: int, start: datetime, name: str = "ocrpipe") -> str:
    """The task definition for ``schtasks /Create /XML``: repeats every ``every`` seconds from ``start``
    (local time), never two at once, catches up a start missed while the machine was off, runs on
    battery, and is stopped after ``limit`` seconds."""
    ET.register_namespace("", TASK_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{TASK_NS}}}{tag}")
        element.text = text
        return element

    task = ET.Element(f"{{{TASK_NS}}}Task", {"version": "1.2"})
    info = sub(task, "RegistrationInfo")
    sub(info, "Description", f"ocrpipe: OCR what is dropped into {action.data_dir / 'in'}, every "
                             f"{human(every)} (see the README's exit codes for Last Run Result)")
    trigger = sub(sub(task, "Triggers"), "TimeTrigger")  # triggerBaseType is a sequence: keep this order
    sub(trigger, "Enabled", "true")
    sub(trigger, "StartBoundary", start.replace(second=0, microsecond=0, tzinfo=None).isoformat())
    repetition = sub(trigger, "Repetition")
    sub(repetition, "Interval", iso_duration(every))  # no Duration: repeat indefinitely
    sub(repetition, "StopAtDurationEnd", "false")
    principals = sub(task, "Principals")
    principals.append(ET.Comment(
        f" Runs only while you are logged on. To run it whether or not anyone is: schtasks /Change /TN {name} "
        "/RU <DOMAIN\\user> /RP (it asks for the password and stores it with the task) "))
    principal = sub(principals, "Principal")
    principal.set("id", "Author")
    sub(principal, "LogonType", "InteractiveToken")
    sub(principal, "RunLevel", "LeastPrivilege")
    settings = sub(task, "Settings")
    settings.append(ET.Comment(
        f" ExecutionTimeLimit: one document of {LARGEST_DOCUMENT_PAGES} pages through PREP and OCR at their time "
        "limits (PREP_TIMEOUT_SECONDS + OCR_TIMEOUT_SECONDS + pages x OCR_TIMEOUT_PER_PAGE_SECONDS), their margins "
        "and SHUTDOWN_GRACE_SECONDS, rounded up to the hour. A run stopped there resumes at the next start. "))
    sub(settings, "MultipleInstancesPolicy", "IgnoreNew")
    sub(settings, "DisallowStartIfOnBatteries", "false")
    sub(settings, "StopIfGoingOnBatteries", "false")
    sub(settings, "StartWhenAvailable", "true")
    sub(settings, "AllowHardTerminate", "true")
    sub(settings, "ExecutionTimeLimit", iso_duration(limit))
    sub(settings, "Enabled", "true")
    actions = sub(task, "Actions")
    actions.set("Context", "Author")
    exec_ = sub(actions, "Exec")
    sub(exec_, "Command", _windows_command_line([action.python]))
    sub(exec_, "Arguments", _windows_command_line(action.args))
    sub(exec_, "WorkingDirectory", str(action.data_dir))  # a task otherwise starts in System32
    ET.indent(task, space="  ")
    # No encoding in the declaration: the parser goes by the byte order mark, so the text is read
    # right both as printed (UTF-8) and as install writes it (UTF-16, which schtasks prefers).
    return '<?xml version="1.0"?>\n' + ET.tostring(task, encoding="unicode") + "\n"


def schtasks_create_argv(xml_file: Path, name: str) -> list[str]:
    return ["schtasks", "/Create", "/XML", str(xml_file), "/TN", name, "/F"]


def schtasks_delete_argv(name: str) -> list[str]:
    return ["schtasks", "/Delete", "/TN", name, "/F"]


def run_schtasks(argv: list[str]) -> str:
    """Run schtasks (an argument list, no shell, no stdin); its own message on failure."""
    try:
        result = run_tool(argv, timeout=SCHTASKS_TIMEOUT)
    except TransientError as exc:
        raise MissingToolError(f"could not run schtasks: {exc}") from None
    said = (result.stdout.strip() + "\n" + result.stderr_tail).strip()
    if result.returncode != 0:
        raise ScheduleError(f"{' '.join(argv[:2])} failed (exit code {result.returncode}): {said or 'no message'}")
    return said


def install_task(xml: str, name: str) -> str:
    with tempfile.TemporaryDirectory(prefix="ocrpipe-task-") as folder:
        xml_file = Path(folder) / "task.xml"
        xml_file.write_bytes(xml.encode("utf-16"))  # with a byte order mark
        return run_schtasks(schtasks_create_argv(xml_file, name))


def remove_task(name: str) -> str:
    return run_schtasks(schtasks_delete_argv(name))


# ----- Linux: cron and systemd -------------------------------------------------------------------


def _calendar_step(every: int, option: str) -> tuple[str, int]:
    """('m', n) or ('h', n) when ``every`` divides the hour or the day, which is all cron and
    systemd's calendar can repeat evenly."""
    minutes = every // 60
    if minutes < 60 and 60 % minutes == 0:
        return "m", minutes
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        return "h", minutes // 60
    raise ConfigError(f"--every {minutes}m cannot be written for {option}: it repeats within the hour or the "
                      "day, so use a divisor of 60 minutes (1m…30m, 60m) or of 24 hours (1h…12h, 24h)")


def cron_line(action: Action, *, every: int) -> str:
    """One crontab line. Overlap needs no flock: a run that finds another still working exits 4
    (ocrpipe's own lock), which stays quiet; any other failure mails one line (if MAILTO is set)."""
    unit, n = _calendar_step(every, "cron")
    when = (f"*/{n} * * * *" if n > 1 else "* * * * *") if unit == "m" else \
           ("0 0 * * *" if n == 24 else f"0 */{n} * * *" if n > 1 else "0 * * * *")
    run = shlex.join([action.python, *action.args])
    command = (f"cd {shlex.quote(str(action.data_dir))} && {run} >/dev/null 2>&1; rc=$?; "
               f"[ $rc -eq 0 ] || [ $rc -eq 4 ] || echo \"ocrpipe run --once exited $rc: see {LOG_NAME} in the "
               "index folder of the data folder\"")
    return f"{when} {command.replace('%', chr(92) + '%')}"  # cron turns a bare % into a line break


def _systemd_quote(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_./:@+=,-]+", text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _systemd_literal(text)


def _systemd_literal(text: str) -> str:
    return text.replace("%", "%%").replace("$", "$$")  # specifiers and variables


def systemd_units(action: Action, *, every: int, limit: int, grace: float, name: str) -> str:
    """A oneshot service and its timer. systemd never starts a oneshot service that is still running,
    and Persistent= catches up a start missed while the machine was off."""
    unit, n = _calendar_step(every, "a systemd timer")
    calendar = f"*:0/{n}" if unit == "m" else ("*-*-* 00:00:00" if n == 24 else f"0/{n}:00")
    exec_start = " ".join(_systemd_quote(a) for a in [action.python, *action.args])
    return f"""# ~/.config/systemd/user/{name}.service
[Unit]
Description=ocrpipe: OCR what is dropped into {_systemd_literal(str(action.data_dir / 'in'))}

[Service]
Type=oneshot
WorkingDirectory={_systemd_literal(str(action.data_dir))}
ExecStart={exec_start}
# 4: another run still works on this data folder; it takes what is waiting.
SuccessExitStatus=4
TimeoutStartSec={limit}
# SIGTERM to ocrpipe alone: it lets running stages finish for SHUTDOWN_GRACE_SECONDS, then stops them.
KillMode=mixed
TimeoutStopSec={math.ceil(grace) + 30}

# ~/.config/systemd/user/{name}.timer
[Unit]
Description=Run {name}.service every {human(every)}

[Timer]
OnCalendar={calendar}
Persistent=true

[Install]
WantedBy=timers.target

# then: systemctl --user daemon-reload && systemctl --user enable --now {name}.timer
# and, to run while you are logged out: loginctl enable-linger "$USER"
"""


# ----- the command ---------------------------------------------------------------------------------

FORMATS = ("xml", "cron", "systemd")


def default_format(*, windows: bool) -> str:
    return "xml" if windows else "cron"


def schedule(verb: str, settings: Settings, *, every: str, name: str, fmt: str | None, python: str,
             windows: bool, now: datetime | None = None) -> str:
    """What ``ocrpipe schedule show|install|remove`` prints; ``windows`` says where we run."""
    name = check_name(name)
    if verb != "show" and not windows:
        raise ConfigError(f"'ocrpipe schedule {verb}' calls schtasks, which only Windows has; here, print the "
                          "schedule with 'ocrpipe schedule show --format cron' (or --format systemd) and "
                          "install it with crontab -e (or systemctl)")
    if verb == "remove":
        return remove_task(name)
    seconds = parse_every(every)
    if not settings.data_dir.is_dir():
        raise ConfigError(f"the data folder {settings.data_dir} does not exist: create it, or give the right "
                          "one with --data (or DATA_DIR)")
    fmt = fmt or default_format(windows=windows)
    if verb == "install" and fmt != "xml":
        raise ConfigError(f"--format {fmt} is for 'show': install registers the Task Scheduler XML")
    action = action_for(python, str(settings.data_dir), windows=windows)
    if fmt == "cron":
        return cron_line(action, every=seconds)
    if fmt == "systemd":
        return systemd_units(action, every=seconds, limit=time_limit(settings),
                             grace=settings.shutdown_grace_seconds, name=name)
    xml = task_xml(action, every=seconds, limit=time_limit(settings), start=now or datetime.now(), name=name)
    if verb == "show":
        return xml
    said = install_task(xml, name)
    return (f"{said}\nocrpipe: task {name!r} runs every {every.strip()} on {settings.data_dir}; "
            f"its log: {action.log_file}")
