"""The OCR stage on a Dask cluster against the local pool, same files, same run, interleaved rounds.
``--dask-local N`` starts a local cluster of real processes: ``dask scheduler`` and N ``ocrpipe worker
--nthreads 1``; ``--executor tcp://…`` uses yours (its workers must mount the data folder at the same path,
or be started with ``--data`` on it after the first round wrote its marker).

Reported per round: wall seconds of ``ocrpipe run --once`` on each executor, their ratio (median over
rounds: the target is at most 1.05 on one machine), pages per minute per worker, the CPU share of
ocrpipe's scheduler process and of the Dask scheduler, ticks per second and files admitted per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def cpu_of(procs: Sequence[psutil.Process]) -> float:
    """User+system CPU of these processes and of their reaped children (the tools they waited for)."""
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


class LocalFarm:
    """``dask scheduler`` and N ``ocrpipe worker`` processes on this machine; stopped on exit."""

    def __init__(self, workers: int, data: Path, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.logs = logs
        self.scheduler = self._start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--no-dashboard"], env, "dask-scheduler.log")
        deadline = time.monotonic() + 60
        while not listening(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("the Dask scheduler did not start")
            time.sleep(0.1)
        self.env, self.data, self.count = env, data, workers

    def start_workers(self) -> None:
        """After the first Dask round wrote the data folder's marker: workers refuse to start before."""
        for n in range(self.count):
            self._start([str(BIN / "ocrpipe"), "worker", "--scheduler", self.address, "--data", str(self.data),
                         "--nthreads", "1"], self.env, f"worker{n}.log")

    def _start(self, argv: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
        with open(self.logs / log, "wb") as out:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def processes(self) -> list[psutil.Process]:
        found = []
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    def close(self) -> list[psutil.Process]:
        """Ctrl+C to each (workers first), then kill what is left; returns the descendants that
        outlived their process (none, when the workers clean up after themselves)."""
        tree = [p for p in self.processes() if p.pid not in {proc.pid for proc in self.procs}]
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(self.procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _, alive = psutil.wait_procs(tree, timeout=15)
        for leftover in alive:
            leftover.kill()
        return alive


def reset(data: Path, files: Sequence[Path]) -> None:
    """A fresh data folder with the same inputs; a cluster's marker is kept (its workers check it)."""
    for child in list(data.iterdir()) if data.exists() else []:
        if child.name != ".ocrpipe-cluster.json":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    (data / "in").mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, data / "in" / path.name)


def summary_line(log: Path) -> dict[str, Any]:
    for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
        if '"run_summary"' in line:
            return json.loads(line)
    return {}


def admitted_per_second(data: Path) -> float | None:
    from ocrpipe.index.jobindex import JobIndex
    from datetime import datetime

    with JobIndex(data / "index", readonly=True) as index:
        created = sorted(datetime.fromisoformat(j["createdAt"]).timestamp() for j in index if j.get("createdAt"))
    return round(len(created) / (created[-1] - created[0]), 1) if len(created) > 1 and created[-1] > created[0] else None


def one_run(name: str, data: Path, env: dict[str, str], log: Path, farm: LocalFarm | None,
            workers: int) -> dict[str, Any]:
    farm_procs = farm.processes() if farm else []
    farm_cpu0 = cpu_of(farm_procs)
    dask_cpu0 = cpu_of([psutil.Process(farm.scheduler.pid)]) if farm else 0.0
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ocrpipe", "run", "--once"], env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        own, tree = 0.0, 0.0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:  # the scheduler process's own CPU, read until it exits
            try:
                t = root.cpu_times()
                own = t.user + t.system
                tree = max(tree, own + t.children_user + t.children_system
                           + cpu_of([p for p in root.children(recursive=True)]))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        code = proc.wait()
    wall = time.perf_counter() - started
    summary = summary_line(log)
    farm_cpu = cpu_of(farm_procs) - farm_cpu0 if farm else 0.0
    dask_cpu = cpu_of([psutil.Process(farm.scheduler.pid)]) - dask_cpu0 if farm else 0.0
    total = tree + farm_cpu
    pages = summary.get("pages") or 0
    return {"executor": name, "exitCode": code, "wallSeconds": round(wall, 2), "pages": pages,
            "filesDone": summary.get("filesDone"), "filesFailed": summary.get("filesFailed"),
            "pagesPerMinutePerWorker": round(pages / wall * 60 / workers, 1) if wall else None,
            "schedulerCpuSeconds": round(own, 2), "daskSchedulerCpuSeconds": round(dask_cpu, 2),
            "totalCpuSeconds": round(total, 2),
            "schedulerCpuShare": round(own / total, 3) if total else None,
            "daskSchedulerCpuShare": round(dask_cpu / total, 3) if total and farm else None,
            "ticks": summary.get("ticks"),
            "ticksPerSecond": round(summary["ticks"] / wall, 1) if summary.get("ticks") else None,
            "schedulerCpuMsPerTick": round(own / summary["ticks"] * 1000, 2) if summary.get("ticks") else None,
            "filesAdmittedPerSecond": admitted_per_second(data)}


def run_comparison(args: argparse.Namespace, inputs: Sequence[Path], base_env: dict[str, str],
                   work: Path) -> dict[str, Any]:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers = args.dask_local or args.ocr_concurrency[0]
    local_data, dask_data = work / "local" / "data", work / "dask" / "data"
    common = {**base_env, "OCR_CONCURRENCY": str(workers), "LOG_JSON": "true", "ORCHESTRATOR_PORT": "0"}
    farm = LocalFarm(args.dask_local, dask_data, {**common, "DATA_DIR": str(dask_data)}, logs) if args.dask_local else None
    address = farm.address if farm else args.executor
    rounds = []
    try:
        if farm:
            # An empty first run writes the data folder's marker, which the workers check as they start.
            dask_data.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "ocrpipe", "run", "--once"],
                           env={**common, "DATA_DIR": str(dask_data), "OCR_EXECUTOR": farm.address},
                           cwd=work, capture_output=True, check=True, timeout=300)
            farm.start_workers()
            from distributed import Client

            with Client(farm.address, timeout=30) as client:  # their start is not part of any round
                client.wait_for_workers(farm.count, timeout=180)
        for n in range(args.rounds):
            order = ["local", "dask"] if n % 2 == 0 else ["dask", "local"]  # speed drifts: alternate who goes first
            results = {}
            for name in order:
                data = local_data if name == "local" else dask_data
                reset(data, inputs)
                env = {**common, "DATA_DIR": str(data)}
                if name == "dask":
                    env["OCR_EXECUTOR"] = address
                results[name] = one_run(name, data, env, logs / f"{name}-round{n + 1}.log",
                                        farm if name == "dask" else None, workers)
            ratio = results["dask"]["wallSeconds"] / results["local"]["wallSeconds"]
            rounds.append({"round": n + 1, "order": order, **results, "daskVsLocalWall": round(ratio, 3)})
            print(f"round {n + 1}: local {results['local']['wallSeconds']}s, dask {results['dask']['wallSeconds']}s, "
                  f"ratio {ratio:.3f}", file=sys.stderr)
    finally:
        if farm:
            farm.close()
    ratios = [r["daskVsLocalWall"] for r in rounds]
    return {"workers": workers, "files": len(inputs), "daskRounds": rounds, "medianDaskVsLocalWall": statistics.median(ratios),
            "ok": all(r[k]["exitCode"] == 0 for r in rounds for k in ("local", "dask"))}
