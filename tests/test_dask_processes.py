"""The stages on a Dask cluster, with real processes: ``dask scheduler``, two ``ocrpipe worker`` and ``ocrpipe run --once``
on localhost with the real tools; one worker machine's ocrpipe worker is SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest

import inputs
from ocrpipe.folders.heartbeat import read_heartbeat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from daskbench import BIN, LocalFarm  # noqa: E402  (the bench starts its farm the same way)

pytestmark = pytest.mark.integration


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g}s")
        time.sleep(0.1)


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[LocalFarm]:
    """A Dask scheduler (and, once started, 2 ocrpipe workers); every process under them is reaped."""
    data, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "DATA_DIR": str(data), "OCR_LANG": "eng", "ORCHESTRATOR_PORT": "0", "STABLE_SECONDS": "0",
           "POLL_SECONDS": "0.2", "HEARTBEAT_SECONDS": "0.5", "OCR_BATCH_MAX_PAGES": "1",
           "RETRY_BACKOFF_SECONDS": "0"}
    local = LocalFarm(2, data, env, logs)
    local.env.update(OCR_EXECUTOR=local.address, PREP_EXECUTOR=local.address)
    yield local
    assert local.close() == [], "processes outlived the worker that started them"


def ocr_heartbeat(data: Path) -> dict[str, Any] | None:
    for hb in (data / "work").glob("*/ocr.heartbeat"):
        beat = read_heartbeat(hb)
        if beat and beat.get("tools"):
            return beat
    return None


def test_a_worker_machine_killed_mid_run_loses_nothing_and_leaves_no_process(farm: LocalFarm) -> None:
    data, env, logs = farm.data, farm.env, farm.logs
    first = subprocess.run([str(BIN / "ocrpipe"), "run", "--once"], env=env, capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr  # an empty run: it writes the data folder's marker
    farm.start_workers()
    names = [inputs.text_page_png(data / "in" / f"page{n}.png", [f"Page {n} of the farm test", "Dask worker"]).stem
             for n in range(4)]
    with open(logs / "run.log", "wb") as out:
        run = subprocess.Popen([str(BIN / "ocrpipe"), "run", "--once"], env=env, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: ocr_heartbeat(data) is not None or run.poll() is not None, "an OCR tool running")
        beat = ocr_heartbeat(data)
        assert beat is not None, (logs / "run.log").read_text()
        [victim] = [w for w in farm.procs[1:]
                    if beat["worker"]["pid"] in {p.pid for p in psutil.Process(w.pid).children(recursive=True)}]
        tools = [psutil.Process(t["pid"]) for t in beat["tools"] if psutil.pid_exists(t["pid"])]
        victim.send_signal(signal.SIGKILL)  # the machine's ocrpipe worker dies mid-OCR
        victim.wait()
        _, alive = psutil.wait_procs(tools, timeout=30)  # its worker process kills them itself, then exits
        assert alive == []
        assert run.wait(timeout=300) == 0, (logs / "run.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    assert sorted(p.stem for p in (data / "out").rglob("*.pdf")) == sorted(names)
    assert sorted(p.stem for p in (data / "archive").rglob("*.png")) == sorted(names)
    assert list((data / "error").glob("*")) == [] and list((data / "work").iterdir()) == []
    assert "died or lost contact" in (logs / "run.log").read_text()
