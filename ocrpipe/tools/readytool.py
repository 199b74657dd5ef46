"""An ocrmypdf ready before its call: an OCR worker starts one (tools/ocrmypdf_launcher.py) while it waits,
and the next ``run_tool`` of that ocrmypdf command hands it the call instead of starting a Python that must
first import ocrmypdf (about 0.7 s before any page is read). Only the ``<python> -m ocrmypdf`` form of the
OCRMYPDF setting can be started ahead; any other command runs as it always did."""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

from ocrpipe.proctree import kill_tree
from ocrpipe.tools.detach import detach_flags

log = logging.getLogger("ocrpipe.tools")
LAUNCHER = Path(__file__).resolve().with_name("ocrmypdf_launcher.py")


def launcher_argv(command: Sequence[str]) -> list[str] | None:
    """The launcher run by the command's Python, or None when the command is not ``<python> -m ocrmypdf``."""
    if len(command) == 3 and list(command[1:]) == ["-m", "ocrmypdf"]:
        return [command[0], str(LAUNCHER)]
    return None


class ReadyTool:
    """At most one launcher waiting in this process, for the command it was started for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._command: tuple[str, ...] = ()
        self.keep_ready = False  # start another after each call (a service), not only once (run --once)
        self._stop_at_exit = False

    def start(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        """Start a launcher for ``command`` unless one is waiting; ``env``: what its Python starts with
        (the call brings its own). Not startable now: the next call simply starts its tool."""
        argv = launcher_argv(command)
        if argv is None:
            return
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            try:
                self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, env=dict(env), **detach_flags())
            except OSError as exc:
                log.debug("ocrmypdf not started ahead: %s", exc)
                self._proc = None
                return
            self._command = tuple(command)
            if not self._stop_at_exit:  # a launcher still waiting ends with this process
                atexit.register(self.stop)
                self._stop_at_exit = True

    def take(self, argv: Sequence[str], env: Mapping[str, str] | None, cwd: Path | None,
             log_path: Path | None) -> subprocess.Popen[bytes] | None:
        """The waiting launcher, given this call, when it was started for ``argv``'s command and is alive;
        None otherwise (the caller starts the tool itself)."""
        with self._lock:
            proc, command = self._proc, self._command
            if proc is None or log_path is None or tuple(argv[:len(command)]) != command:
                return None
            self._proc = None
        call = {"args": list(argv[len(command):]), "env": dict(os.environ if env is None else env),
                "cwd": str(cwd) if cwd is not None else None, "log": str(log_path)}
        try:
            if proc.poll() is not None:
                raise BrokenPipeError("the launcher has ended")
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(call) + "\n").encode())
            proc.stdin.close()
        except OSError as exc:  # it died while waiting: the call starts its own tool
            log.debug("the ocrmypdf started ahead was gone (%s); starting one", exc)
            self._end(proc)
            return None
        return proc

    def stop(self) -> None:
        """End a launcher still waiting (its worker is leaving)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            self._end(proc)

    @staticmethod
    def _end(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            kill_tree(proc.pid, grace=0.0)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc.stdin is not None:
            with suppress(OSError):
                proc.stdin.close()


READY = ReadyTool()  # this process's (an OCR worker's)
