"""``--empty-run``: what a scheduled ``ocrpipe run --once`` with nothing in in/ costs, in wall seconds and in the
CPU seconds of every process it starts (tool probes, pool workers, multiprocessing's resource tracker…).

Each round runs, for every checkout measured, one start on a fresh data folder ("cold": it makes the index and
fills the tool cache) and one more on that same folder ("warm"); the checkouts take turns going first. With the
default settings a user has (LibreOffice found, OFFICE_INPUT=auto, the HTTP API on: on a free port here, so
another program on 8080 cannot turn it off), and with .pyc files written as on a user's machine (one untimed start
per checkout writes them first).

CPU: on Linux the bench becomes the "subreaper" of what it starts, so a process left behind by ocrpipe (the
resource tracker outlives it by a moment) is reaped by the bench and counted; elsewhere only what ocrpipe's own
processes reaped counts. ``--ocrpipe-repo PATH`` adds another checkout, run with its own ``.venv`` Python and
its folder first on PYTHONPATH, for a before/after comparison in one command.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runs import CLEARED_ENV, REPO
from sampling import children_cpu_seconds, load_average
from sources import BenchError

TARGET_WALL_SECONDS = 0.5
TARGET_CPU_SECONDS = 0.5
LEFTOVER_WAIT_SECONDS = 10.0
PR_SET_CHILD_SUBREAPER = 36
# Settings a user has not set after scripts/setup.sh: whatever the bench's shell has is taken out.
DEFAULTED = ("OCR_LANG", "OCR_LANG_DEFAULT", "OCR_LANG_CANDIDATES", "PREP_CONCURRENCY", "OCR_CONCURRENCY",
             "OFFICE_INPUT", "STABLE_SECONDS", "POLL_SECONDS", "INDEX_DIR", "WORK_DIR", "LOG_FILE", "LOG_LEVEL",
             "LOG_JSON", "PREP_EXECUTOR", "OCR_EXECUTOR", "HOOK_COMMAND", "WEBHOOK_URL", "SEVEN_ZIP", "TESSERACT",
             "GHOSTSCRIPT", "SOFFICE", "ROTATE_PAGES", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH")


def add_empty_run_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--empty-run", type=int, metavar="ROUNDS", help="an empty run --once, cold and warm, ROUNDS "
                       "times: wall and CPU of every process (targets 0.5 s, 0.5 CPU-s; bench/startbench.py)")
    group.add_argument("--ocrpipe-repo", type=Path, action="append", metavar="PATH",
                       help="with --empty-run and --single-doc: also this checkout (its .venv), interleaved, e.g. "
                            "main for a before; with --latency: the service is that checkout's instead of this one")


def become_subreaper() -> bool:
    """Linux: orphans of what this process starts are re-parented here, so their CPU is counted when reaped."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(deadline: float) -> tuple[int, int]:
    """Reap re-parented orphans until none is left or the deadline passes: (reaped, still running then)."""
    if os.name == "nt":
        return 0, 0
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped, 0
        if pid:
            reaped += 1
        elif time.monotonic() >= deadline:
            return reaped, 1
        else:
            time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checkout(repo: Path) -> dict[str, Any]:
    """How to start a checkout's ocrpipe: its own .venv's Python, its folder first on PYTHONPATH."""
    repo = repo.resolve()
    venv = repo / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    python = str(venv) if venv.is_file() else sys.executable
    if not (repo / "ocrpipe" / "__main__.py").is_file():
        raise BenchError(f"{repo} is no ocrpipe checkout (no ocrpipe/__main__.py)")
    label = "this" if repo == REPO else repo.name
    return {"label": label, "repo": str(repo), "python": python}


def user_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV and k not in DEFAULTED}
    env["ORCHESTRATOR_PORT"] = str(port)
    return env


def one_start(co: dict[str, Any], data: Path, env: dict[str, str]) -> dict[str, Any]:
    """One ``run --once``: wall seconds to its exit, CPU seconds of it and everything it started."""
    argv = [co["python"], "-m", "ocrpipe", "run", "--once", "--data", str(data)]
    env = {**env, "PYTHONPATH": co["repo"]}
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    with open(data.parent / "ocrpipe.log", "ab") as log:
        # cwd: the data folder's parent, not a checkout, which ``-m`` would put first on sys.path
        code = subprocess.run(argv, env=env, cwd=data.parent, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - started
    orphans, left = reap_orphans(time.monotonic() + LEFTOVER_WAIT_SECONDS)
    cpu_after = children_cpu_seconds()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {"wallSeconds": round(wall, 3), "cpuSeconds": None if cpu is None else round(cpu, 3),
            "exitCode": code, "orphansReaped": orphans, "processesLeftRunning": left}


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wallSeconds"] for r in runs]
    cpus = [r["cpuSeconds"] for r in runs if r["cpuSeconds"] is not None]
    wall = round(statistics.median(walls), 3)
    cpu = round(statistics.median(cpus), 3) if cpus else None
    return {"n": len(runs), "wallSeconds": wall, "cpuSeconds": cpu,
            "ok": wall <= TARGET_WALL_SECONDS and cpu is not None and cpu <= TARGET_CPU_SECONDS}


def empty_runs(rounds: int, work: Path, repos: list[Path] | None = None) -> dict[str, Any]:
    """``rounds`` rounds over this checkout and ``repos``, interleaved; medians, targets and a verdict."""
    checkouts = [checkout(r) for r in [*(repos or []), REPO]]
    if len({c["repo"] for c in checkouts}) < len(checkouts):
        raise BenchError("--ocrpipe-repo names a checkout twice (this one is always measured)")
    for n, co in enumerate(checkouts[:-1]):  # two checkouts in folders of the same name: told apart
        if co["label"] in [c["label"] for c in checkouts[:n]] or co["label"] == "this":
            co["label"] = f"{co['label']}-{n + 1}"
    load_before = load_average()
    reaper = become_subreaper()
    port = free_port()
    env = user_env(port)
    for co in checkouts:  # untimed: writes the .pyc files, as a user's first start does
        (work / "pyc" / co["label"]).mkdir(parents=True)
        one_start(co, work / "pyc" / co["label"] / "data", env)
    per_round: list[dict[str, Any]] = []
    for n in range(rounds):
        order = checkouts if n % 2 == 0 else checkouts[::-1]
        for co in order:
            data = work / f"round{n}" / co["label"] / "data"
            data.parent.mkdir(parents=True)
            for kind in ("cold", "warm"):
                run = {"round": n, "checkout": co["label"], "kind": kind, **one_start(co, data, env)}
                per_round.append(run)
                print(f"empty run: round {n} {co['label']:>10} {kind}: {run['wallSeconds']:.3f} s wall, "
                      f"{run['cpuSeconds']} CPU-s, exit {run['exitCode']}, {run['orphansReaped']} orphan(s) reaped",
                      file=sys.stderr, flush=True)
    summary = {co["label"]: {kind: medians([r for r in per_round if r["checkout"] == co["label"] and r["kind"] == kind])
                             for kind in ("cold", "warm")} for co in checkouts}
    this = summary["this"]
    report: dict[str, Any] = {
        "checkouts": checkouts, "port": port, "loadAverage": {"before": load_before, "after": load_average()},
        "cpuMethod": "rusage of every descendant, orphans reaped by the bench" if reaper else
                     "rusage of the descendants ocrpipe reaped itself (orphans missed)",
        "rounds": per_round, "medians": summary,
        "targets": {"wallSeconds": TARGET_WALL_SECONDS, "cpuSeconds": TARGET_CPU_SECONDS, "of": "warm, median"},
        "ok": this["warm"]["ok"] and all(r["exitCode"] == 0 and not r["processesLeftRunning"]
                                         for r in per_round if r["checkout"] == "this")}
    for co in checkouts[:-1]:  # this checkout against each other one: medians' ratios
        other = summary[co["label"]]
        report.setdefault("ratiosThisToOther", {})[co["label"]] = {
            kind: {"wall": round(this[kind]["wallSeconds"] / other[kind]["wallSeconds"], 2),
                   "cpu": round(this[kind]["cpuSeconds"] / other[kind]["cpuSeconds"], 2)
                   if this[kind]["cpuSeconds"] and other[kind]["cpuSeconds"] else None}
            for kind in ("cold", "warm")}
    verdict = "meets" if report["ok"] else "misses"
    print(f"empty run: this checkout, warm median {this['warm']['wallSeconds']:.3f} s wall, "
          f"{this['warm']['cpuSeconds']} CPU-s (cold {this['cold']['wallSeconds']:.3f} s, {this['cold']['cpuSeconds']} "
          f"CPU-s): {verdict} the targets {TARGET_WALL_SECONDS} s and {TARGET_CPU_SECONDS} CPU-s", file=sys.stderr)
    return report
