"""A running ``ocrpipe run`` for the bench: started on a fresh data folder and left until idle, documents
dropped into its in/ at a known instant, their outputs waited for in out/, its JSON log read as it grows, and
the CPU seconds of its whole process tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from sampling import stop_process
from startbench import free_port

OUTPUT_TIMEOUT = 600.0


def tree_cpu(root: psutil.Process) -> float:
    """CPU seconds of a process tree so far: each live process's own, plus what it reaped of its children
    (a worker's finished ocrmypdf calls, and their Tesseracts)."""
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    return total


class Service:
    """``ocrpipe run`` on a fresh data folder, its log in JSON lines at debug level (the steps' times)."""

    def __init__(self, folder: Path, env: dict[str, str], *, python: str = sys.executable) -> None:
        self.data, self.log = folder / "data", folder / "ocrpipe.jsonl"
        self.drops = folder / "drops"  # beside in/, on the same volume: a rename into in/ is atomic
        for path in (self.data / "in", self.drops):
            path.mkdir(parents=True)
        self.env = {**env, "LOG_LEVEL": "DEBUG", "LOG_JSON": "true", "LOG_FILE": str(self.log),
                    "ORCHESTRATOR_PORT": str(free_port())}
        self.python = python  # another checkout's (its PYTHONPATH in ``env``): a before/after comparison
        self.proc: subprocess.Popen[bytes] | None = None
        self._read = 0  # how far the log has been read
        self.lines: list[dict[str, Any]] = []

    def __enter__(self) -> Service:
        self.proc = subprocess.Popen([self.python, "-m", "ocrpipe", "run", "--data", str(self.data)], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.root = psutil.Process(self.proc.pid)
        try:
            self._wait_idle()
        except BaseException:
            stop_process(self.proc)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def _wait_idle(self, timeout: float = 120.0) -> None:
        """Up (it logged that it watches in/) and idle: its tree used under 2 % of a core for a second."""
        deadline = time.monotonic() + timeout
        while not any(line["message"].startswith("ocrpipe watching") for line in self.new_lines()):
            self._check_alive(deadline)
            time.sleep(0.1)
        before = tree_cpu(self.root)
        while True:
            self._check_alive(deadline)
            time.sleep(1.0)
            now = tree_cpu(self.root)
            if now - before < 0.02:
                return
            before = now

    def _check_alive(self, deadline: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"ocrpipe run exited {self.proc.returncode}; see {self.log}")
        if time.monotonic() > deadline:
            raise RuntimeError("ocrpipe run did not become idle")

    def new_lines(self) -> list[dict[str, Any]]:
        """The log lines written since the last call (whole lines only)."""
        try:
            with open(self.log, "rb") as handle:
                handle.seek(self._read)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._read += len(complete)
        lines = [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
        self.lines += lines
        return lines

    def drop(self, document: Path, name: str) -> tuple[float, float]:
        """Put a copy of ``document`` into in/ as ``name`` by one rename: (wall time of the rename, tree CPU)."""
        staged = self.drops / name
        shutil.copyfile(document, staged)
        cpu = tree_cpu(self.root)
        before = time.time()
        os.replace(staged, self.data / "in" / name)
        return (before + time.time()) / 2, cpu

    def output(self, name: str, dropped: float) -> tuple[float, float]:
        """(Wall time the output appeared whole in out/, tree CPU then); waits up to OUTPUT_TIMEOUT."""
        out = self.data / "out" / name
        deadline = time.monotonic() + OUTPUT_TIMEOUT
        looks = 0
        while not out.exists():  # one stat every 10 ms: a small cost on the cores ocrmypdf runs on
            looks += 1
            if looks % 100 == 0 and (time.monotonic() > deadline or any((self.data / "error").iterdir())):
                raise RuntimeError(f"no output for {name}; see {self.log} and {self.data / 'error'}")
            time.sleep(0.01)
        return time.time(), tree_cpu(self.root)
