"""Issue 19 with real processes: ``dask scheduler``, two ``ocrpipe worker`` and ``ocrpipe run --once``
on localhost with the real tools; one worker machine's ocrpipe worker is SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest

import inputs
from ocrpipe.heartbeat import read_heartbeat

pytest.importorskip("distributed")
pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g}s")
        time.sleep(0.1)


class Started:
    """The processes this test starts; each one and everything under it is reaped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with log.open("wb") as out:  # the child keeps its own copy of the handle
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def reap(self) -> list[psutil.Process]:
        """Stop what is left, politely first; returns what was still alive beyond its own processes."""
        tree = []
        for proc in self.procs:
            try:
                tree += psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _, alive = psutil.wait_procs(tree, timeout=15)
        for leftover in alive:
            leftover.kill()
        return alive


@pytest.fixture
def started() -> Iterator[Started]:
    procs = Started()
    yield procs
    assert procs.reap() == [], "processes outlived their parent"


def test_a_worker_machine_killed_mid_run_loses_nothing_and_leaves_no_process(
        tmp_path: Path, started: Started) -> None:
    data, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DATA_DIR": str(data), "OCR_LANG": "eng", "ORCHESTRATOR_PORT": "0", "STABLE_SECONDS": "0",
           "POLL_SECONDS": "0.2", "HEARTBEAT_SECONDS": "0.5", "OCR_EXECUTOR": address, "PREP_EXECUTOR": address,
           "OCR_BATCH_MAX_PAGES": "1", "RETRY_BACKOFF_SECONDS": "0"}
    started.start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                   "--no-dashboard"], env, logs / "scheduler.log")
    wait_until(lambda: listening(port), "the Dask scheduler")
    first = subprocess.run([str(BIN / "ocrpipe"), "run", "--once"], env=env, capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr  # an empty run: it writes the data folder's marker
    workers = [started.start([str(BIN / "ocrpipe"), "worker", "--scheduler", address, "--data", str(data),
                              "--nthreads", "1"], env, logs / f"worker{n}.log") for n in range(2)]
    names = []
    for n in range(4):
        path = inputs.text_page_png(data / "in" / f"page{n}.png", [f"Page {n} of the farm test", "Dask worker"])
        names.append(path.stem)
    run = started.start([str(BIN / "ocrpipe"), "run", "--once"], env, logs / "run.log")

    def ocr_heartbeat() -> dict | None:
        for hb in (data / "work").glob("*/ocr.heartbeat"):
            beat = read_heartbeat(hb)
            if beat and beat.get("tools"):
                return beat
        return None

    wait_until(lambda: ocr_heartbeat() is not None or run.poll() is not None, "an OCR tool running")
    beat = ocr_heartbeat()
    assert beat is not None, (logs / "run.log").read_text()
    victim = next(w for w in workers
                  if beat["worker"]["pid"] in {p.pid for p in psutil.Process(w.pid).children(recursive=True)})
    tools = [psutil.Process(t["pid"]) for t in beat["tools"] if psutil.pid_exists(t["pid"])]
    victim.send_signal(signal.SIGKILL)  # the machine's ocrpipe worker dies mid-OCR
    victim.wait()
    psutil.wait_procs(tools, timeout=30)  # its worker process kills them itself, then exits
    assert not any(t.is_running() and t.status() != psutil.STATUS_ZOMBIE for t in tools)
    assert run.wait(timeout=300) == 0, (logs / "run.log").read_text()

    outputs = sorted(p.stem for p in (data / "out").rglob("*.pdf"))
    errors = sorted(p.name for p in (data / "error").glob("*"))
    assert outputs == sorted(names) and errors == []
    assert sorted(p.stem for p in (data / "archive").rglob("*.png")) == sorted(names)
    assert [p for p in (data / "work").iterdir()] == []
    assert "died or lost contact" in (logs / "run.log").read_text()
