"""ocrpipe as a real process: SIGKILL at random moments, one instance per data folder, Ctrl+C."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import make_pdf, read_calls

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


def start(env: dict[str, str], *args: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ocrpipe", "run", *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def descendants(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_all_gone(procs: list[psutil.Process], timeout: float = 10.0) -> None:
    """Workers notice their parent died within a second or two and take their tools with them."""
    deadline = time.monotonic() + timeout
    alive = procs
    while time.monotonic() < deadline:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"left running: {[(p.pid, p.cmdline()[:4]) for p in alive]}")


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def zipped(n: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("p1.pdf", make_pdf(1, scenario=f"zip-{n}"))
        zf.writestr("p2.pdf", make_pdf(2))
    return buffer.getvalue()


def drop_workload(inbox: Path) -> tuple[set[str], set[str], set[str]]:
    """30 files: PDFs and zips that succeed, two that fail for good, one duplicate."""
    good, bad, dup = set(), set(), set()
    (inbox / "sub").mkdir(parents=True)
    for n in range(24):
        name = f"sub/doc{n}.pdf" if n % 3 == 0 else f"doc{n}.pdf"
        (inbox / name).write_bytes(make_pdf(1 + n % 4, scenario=f"doc-{n}"))
        good.add(name)
    for n in range(3):
        (inbox / f"bundle{n}.zip").write_bytes(zipped(n))
        good.add(f"bundle{n}.zip")
    for n in range(2):
        (inbox / f"locked{n}.pdf").write_bytes(make_pdf(1, scenario=f"exit-8 {n}"))
        bad.add(f"locked{n}.pdf")
    (inbox / "again.pdf").write_bytes(make_pdf(1 + 1 % 4, scenario="doc-1"))  # same bytes as doc1.pdf
    dup.add("again.pdf")
    return good, bad, dup


def snapshot(data_dir: Path) -> Counter[str]:
    """Where the jobs were when the kill came: the points the crash test hit."""
    points: Counter[str] = Counter()
    for state_file in (data_dir / "work").glob("*/state.json"):
        try:
            record = json.loads(state_file.read_text())
        except (OSError, ValueError):
            points["state.json unreadable"] += 1
            continue
        state = record["state"]
        if state == "OCR_RUNNING" and record.get("output"):
            state += "+published" + ("+archived" if record.get("archived") else "")
        points[state] += 1
    staging = data_dir / "in" / ".ocrpipe-staging"
    points["staging"] += len(list(staging.iterdir())) if staging.is_dir() else 0
    points["out temp files"] += len(list((data_dir / "out").rglob(".*ocrpipe-tmp")))
    return +points


def wait_for_window(data_dir: Path, window: str, *, since: dict[str, int], timeout: float) -> None:
    """Until this run has moved something (the jobs are no longer as ``since``) and some job is in
    ``window``, or ``timeout`` passes (the pipeline may be past it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        points = snapshot(data_dir)
        if window in points and dict(points) != since:
            return
        time.sleep(0.02)


CRASH_SEEDS = [int(s) for s in os.environ.get("OCRPIPE_CRASH_SEEDS", "11,22,33").split(",")]
# Windows the kills must have hit, across the seeds, for the test to have tested something: a job
# created but not prepared, one prepared and waiting for OCR, one in the middle of OCR.
CRASH_WINDOWS = ("DISCOVERED", "PREP_DONE", "OCR_RUNNING")
WINDOWS_HIT: Counter[str] = Counter()
SEEDS_RUN: set[int] = set()


@pytest.mark.parametrize("seed", CRASH_SEEDS)
def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(seed: int, data_dir: Path, tool_log: Path,
                                                                      fake_env: dict[str, str]) -> None:
    rnd = random.Random(seed)
    env = {**fake_env, "FAKE_OCR_DELAY": "0.15", "FAKE_7Z_DELAY": "0.05", "OCR_CONCURRENCY": "2",
           "PREP_CONCURRENCY": "2", "MAX_ATTEMPTS_PREP": "10", "MAX_ATTEMPTS_OCR": "10",
           "HEARTBEAT_SECONDS": "0.2", "JOB_TIMEOUT_SECONDS": "5", "POLL_SECONDS": "0.1"}
    good, bad, dup = drop_workload(data_dir / "in")
    hits: list[dict[str, int]] = []
    spawned: list[psutil.Process] = []
    for n in range(6):
        proc = start(env, stderr=subprocess.DEVNULL)  # no pipe: orphaned workers would hold it open
        # Two kills aimed at each window, in the pipeline's order, at a random moment once it is open;
        # aimed, because on a loaded machine purely random moments all fall in the start-up.
        wait_for_window(data_dir, CRASH_WINDOWS[n // 2], since=hits[-1] if hits else {}, timeout=8.0)
        time.sleep(rnd.uniform(0.0, 0.4))
        spawned += descendants(proc)
        hits.append(dict(snapshot(data_dir)))
        proc.kill()
        proc.wait()
    final = start(env, "--once")
    _, err = final.communicate(timeout=120)
    # 1 when the locked PDFs reached error/ in this last run, 0 when an earlier (killed) run did it
    assert final.returncode in (0, 1), err
    assert "Traceback" not in err
    assert_all_gone(spawned)
    ocr_pids = [c["pid"] for c in read_calls(tool_log) if c["tool"] in ("ocrmypdf", "7z", "child")]
    assert not [pid for pid in ocr_pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]

    out = sorted(p.relative_to(data_dir / "out").as_posix() for p in (data_dir / "out").rglob("*") if p.is_file())
    archived = sorted(p.relative_to(data_dir / "archive").as_posix()
                      for p in (data_dir / "archive").rglob("*") if p.is_file())
    errored = sorted(p.name for p in (data_dir / "error").rglob("*") if p.is_file() and p.name != "error.json")
    held = [p for p in (data_dir / "hold" / "duplicates").rglob("*") if p.is_file() and not p.name.endswith(".json")]
    expected_out = sorted(name.rsplit(".", 1)[0] + ".pdf" for name in good)
    assert out == expected_out, "every good file published exactly once, nothing extra"
    assert archived == sorted(good)
    assert errored == sorted(bad)
    assert [p.name.split("__", 1)[1] for p in held] == sorted(dup)
    assert list((data_dir / "work").iterdir()) == []
    assert not [p for p in (data_dir / "in").rglob("*") if p.is_file()]
    print(f"seed {seed}: kill points {hits}")
    for points in hits:
        WINDOWS_HIT.update(points.keys())
    SEEDS_RUN.add(seed)


def test_the_kills_hit_every_listed_crash_window() -> None:
    """Runs after the seeds above: a window no kill ever hit was not tested, whatever they passed."""
    if SEEDS_RUN != set(CRASH_SEEDS):
        pytest.skip("needs every crash seed in the same run")
    print(f"crash windows hit (kills per window): {dict(WINDOWS_HIT)}")
    missed = [window for window in CRASH_WINDOWS if not WINDOWS_HIT[window]]
    assert not missed, f"no kill hit {missed}; hit: {dict(WINDOWS_HIT)}"


def test_second_instance_exits_4_and_ctrl_c_leaves_nothing(data_dir: Path, fake_env: dict[str, str]) -> None:
    first = start(fake_env)
    pid_file = data_dir / "index" / "ocrpipe.pid"
    wait_for(pid_file.exists)
    second = subprocess.run([sys.executable, "-m", "ocrpipe", "run", "--once"], env=fake_env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert second.returncode == 4
    assert f"another ocrpipe (pid {first.pid}) is already running" in second.stderr
    wait_for(lambda: len(descendants(first)) >= 1)
    children = descendants(first)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "Traceback" not in err
    assert_all_gone(children, timeout=5)


def test_first_ctrl_c_lets_running_stage_finish(data_dir: Path, tool_log: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "slow.pdf").write_bytes(make_pdf(1))
    (data_dir / "in" / "next.pdf").write_bytes(make_pdf(2))
    env = {**fake_env, "FAKE_OCR_DELAY": "2", "OCR_CONCURRENCY": "1", "MAX_JOBS_IN_FLIGHT": "1"}
    proc = start(env)
    wait_for(lambda: any(c["tool"] == "ocrmypdf" for c in read_calls(tool_log)))
    children = descendants(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "waiting up to 30s for 1 running stage" in err
    assert len(list((data_dir / "out").iterdir())) == 1, "the running OCR finished and was published"
    assert [p.name for p in (data_dir / "in").glob("*.pdf")] == ["next.pdf"], "nothing new was admitted"
    assert_all_gone(children, timeout=5)


def test_grace_period_ends_with_a_kill_and_the_job_resumes(data_dir: Path, tool_log: Path,
                                                           fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "slow.pdf").write_bytes(make_pdf(1))
    proc = start({**fake_env, "FAKE_OCR_DELAY": "30", "SHUTDOWN_GRACE_SECONDS": "0.5"})
    wait_for(lambda: any(c["tool"] == "ocrmypdf" for c in read_calls(tool_log)))
    children = descendants(proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - started < 10
    assert_all_gone(children, timeout=5)
    again = subprocess.run([sys.executable, "-m", "ocrpipe", "run", "--once"], env=fake_env, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    assert (data_dir / "out" / "slow.pdf").exists() and list((data_dir / "work").iterdir()) == []


def test_second_ctrl_c_stops_at_once(data_dir: Path, tool_log: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "slow.pdf").write_bytes(make_pdf(1))
    proc = start({**fake_env, "FAKE_OCR_DELAY": "30"})
    wait_for(lambda: any(c["tool"] == "ocrmypdf" for c in read_calls(tool_log)))
    children = descendants(proc)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - started < 10, err
    assert "Traceback" not in err
    assert_all_gone(children, timeout=5)


def test_a_batch_folder_an_orphaned_worker_makes_after_the_start_is_gone_at_the_end(
        data_dir: Path, fake_env: dict[str, str]) -> None:
    """A worker of a killed run may still make its batch folder for up to a second after the next
    run cleared work/ at its start (seen in the SIGKILL test above): the drained end clears it."""
    (data_dir / "in").mkdir(parents=True, exist_ok=True)
    (data_dir / "in" / "slow.pdf").write_bytes(make_pdf(2))
    run = start({**fake_env, "FAKE_OCR_DELAY": "1.5"}, "--once")
    # A job folder in work/: the start's clean-up is past.
    wait_for(lambda: (data_dir / "work").is_dir() and any(p.is_dir() for p in (data_dir / "work").iterdir()))
    orphan = data_dir / "work" / ".batch-0123456789ab"
    orphan.mkdir()
    (orphan / "raw.pdf").write_bytes(make_pdf(1))
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert list((data_dir / "work").iterdir()) == []
    assert [p.name for p in (data_dir / "out").iterdir()] == ["slow.pdf"]
