"""HOOK_COMMAND: one run of the operator's program per event. An argument list, never a shell (file names
come from whoever drops files); the event's fields in ``OCRPIPE_*`` variables and its JSON on stdin, from a
file, so a program that never reads it blocks nothing; its output drained into a bounded tail, so one that
prints a lot blocks nothing either; past HOOK_TIMEOUT_SECONDS its whole process tree is killed."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ocrpipe.proctree import kill_tree
from ocrpipe.tools.detach import detach_flags
from ocrpipe.tools.run import tail

OUTPUT_TAIL_BYTES = 4000
MAX_VARIABLE_CHARS = 8000  # Windows allows 32767 characters for the whole block of one variable
# Variable → the event's field; every one is set (empty when the event has no such field).
VARIABLES = {
    "OCRPIPE_JOB_KEY": "jobKey", "OCRPIPE_RUN_ID": "runId", "OCRPIPE_STATE": "state",
    "OCRPIPE_SOURCE": "source", "OCRPIPE_OUTPUT": "output", "OCRPIPE_ARCHIVED": "archived",
    "OCRPIPE_ERROR_DIR": "errorDir", "OCRPIPE_ERROR_CODE": "code", "OCRPIPE_REASON": "reason",
    "OCRPIPE_PAGES": "pages", "OCRPIPE_SECONDS": "seconds", "OCRPIPE_ACTION": "action",
    "OCRPIPE_HELD": "held",
}


@dataclass(frozen=True)
class HookResult:
    ok: bool
    detail: str  # why it failed, or "" when it did not


def event_environment(base: Mapping[str, str], event_id: str, event_type: str, data: Mapping[str, Any],
                      ) -> dict[str, str]:
    env = dict(base)  # the settings' tool environment: WEBHOOK_SECRET is not in it
    env["OCRPIPE_EVENT"] = event_type
    env["OCRPIPE_EVENT_ID"] = event_id
    for variable, field in VARIABLES.items():
        value = data.get(field)
        env[variable] = "" if value is None else str(value).replace("\x00", "")[:MAX_VARIABLE_CHARS]
    return env


def run_hook_command(argv: Sequence[str], *, body: bytes, env: Mapping[str, str], timeout: float,
                     cwd: Path | None = None) -> HookResult:
    """Run the command for one event; exit 0 means delivered."""
    name = Path(argv[0]).name
    with tempfile.TemporaryFile() as stdin:
        stdin.write(body)
        stdin.seek(0)
        try:
            proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=dict(env), cwd=cwd, **detach_flags())
        except OSError as exc:
            return HookResult(False, f"could not start {name}: {exc.strerror or exc}")
        assert proc.stdout is not None
        output = _Drain(proc.stdout)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
            return HookResult(False, f"{name} ran longer than HOOK_TIMEOUT_SECONDS={timeout:g} and was stopped"
                                     f"{output.shown()}")
        except BaseException:
            kill_tree(proc.pid)
            proc.wait()
            raise
        finally:
            output.finish()
    if code != 0:
        return HookResult(False, f"{name} exited with {code}{output.shown()}")
    return HookResult(True, "")


class _Drain:
    """Reads a pipe to its end on a thread of its own, keeping only the last bytes."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.pipe = pipe
        self.kept = b""
        self.thread = threading.Thread(target=self._read, name="ocrpipe-hook-output", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.pipe.read1(65536) if hasattr(self.pipe, "read1") else self.pipe.read(65536):
                self.kept = (self.kept + chunk)[-OUTPUT_TAIL_BYTES:]
        except (OSError, ValueError):
            pass

    def finish(self) -> None:
        # A grandchild that left the process tree may still hold the pipe: not waited for long.
        self.thread.join(timeout=2.0)
        try:
            self.pipe.close()
        except OSError:
            pass

    def shown(self) -> str:
        text = tail(self.kept.decode("utf-8", errors="replace"), 1000)
        return f"; its output ended with: {text}" if text else ""
