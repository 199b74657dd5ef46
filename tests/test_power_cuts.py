"""Repeated power cuts with the real tools: a long-running ``ocrpipe run`` killed with its whole process
group (SIGKILL) a dozen times at random moments, a batch in flight, restarted each time. Every document
ends in out/, none in error/, and nothing it started is left running."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import inputs
from ocrpipe.ownprocs import OWNER_VARIABLE, owner_mark

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(sys.platform == "win32", reason="kills POSIX process groups")]

DOCS = 10
CUTS = 12
SEED = 24
CUT_AFTER_SECONDS = (0.0, 1.5)  # after a stage of the run started: the power cut's moment
START_LIMIT = 8.0  # no stage started by then (all done): cut anyway
FINAL_RUN_TIMEOUT = 180
# Settings from the caller's environment that would send the run somewhere else.
_FOREIGN_SETTINGS = ("DATA_DIR", "IN_DIR", "OUT_DIR", "ARCHIVE_DIR", "ERROR_DIR", "OCR_ARGS", "LOG_JSON",
                     OWNER_VARIABLE)


def env_for(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env.update(STABLE_SECONDS="0", POLL_SECONDS="0.2", OCR_LANG="eng", LOG_LEVEL="INFO", TMPDIR=str(root / "tmp"),
               ORCHESTRATOR_PORT="0", PREP_CONCURRENCY="2", OCR_CONCURRENCY="2", RETRY_BACKOFF_SECONDS="0")
    (root / "tmp").mkdir(exist_ok=True)
    return env


def in_flight(data: Path, run: subprocess.Popen[bytes]) -> tuple[set[psutil.Process], str | None]:
    """The run's processes, and what a stage of this run (its worker is the run's) works on now:
    "batch", "alone" or None."""
    try:
        procs = set(psutil.Process(run.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return set(), None
    pids, found = {p.pid for p in procs}, None
    for state_file in (data / "work").glob("*/state.json"):
        try:
            record = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        if str(record.get("state")).endswith("_RUNNING") and record.get("workerPid") in pids:
            found = "batch" if record.get("batch") else found or "alone"
    return procs, found


def marked_processes(work_dir: Path) -> list[psutil.Process]:
    """Processes of this machine that carry this data folder's mark: ocrpipe's workers and tools."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(OWNER_VARIABLE) == owner_mark(work_dir) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def wait_until_gone(procs: list[psutil.Process], timeout: float = 15.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = procs
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    return alive


def test_a_dozen_power_cuts_with_a_batch_in_flight_send_nothing_to_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    for n in range(DOCS):  # small one-page scans: they are OCRed in batches
        inputs.scanned_pdf(data / "in" / f"doc{n}.pdf", [[f"power cut number {n}", "the quick brown fox"]],
                           size=(900, 500))
    env = env_for(tmp_path)
    argv = [sys.executable, "-m", "ocrpipe", "run", "--data", str(data)]
    rnd = random.Random(SEED)
    seen: set[psutil.Process] = set()
    batches_cut = 0
    with open(tmp_path / "runs.log", "w", encoding="utf-8") as log:
        for _ in range(CUTS):
            # Its own process group, as a service or a console has: the cut takes the scheduler and its
            # pool workers at once. The tools run in sessions of their own: the next start must kill them.
            run = subprocess.Popen(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   start_new_session=True)
            # Aimed at work in flight, at a random moment once a stage of this run has started: on a
            # loaded machine, purely random moments fall mostly in the start-up (tool probes, imports).
            started, cut_at = time.monotonic(), None
            while True:
                procs, working = in_flight(data, run)
                seen.update(procs)
                now = time.monotonic()
                if cut_at is None and (working or now - started > START_LIMIT):
                    cut_at = now + rnd.uniform(*CUT_AFTER_SECONDS)
                if cut_at is not None and now >= cut_at:
                    break
                time.sleep(0.05)
            batches_cut += working == "batch"
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        final = subprocess.run([*argv, "--once"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=log, timeout=FINAL_RUN_TIMEOUT)
    runs_log = (tmp_path / "runs.log").read_text(encoding="utf-8", errors="replace")
    assert final.returncode == 0, runs_log[-3000:]
    assert "Traceback" not in runs_log
    assert batches_cut >= 1, "no cut hit a batch in flight: the test tested nothing"
    errors = [json.loads(p.read_text())["reason"] for p in (data / "error").glob("*/error.json")]
    assert errors == []
    assert sorted(p.name for p in (data / "out").iterdir()) == sorted(f"doc{n}.pdf" for n in range(DOCS))
    assert list((data / "work").iterdir()) == []
    left = wait_until_gone(sorted(seen, key=lambda p: p.pid)) + marked_processes(data / "work")
    assert not left, f"left running: {[(p.pid, p.name()) for p in left]}"
    print(f"{CUTS} power cuts, {batches_cut} of them with a batch in flight")
