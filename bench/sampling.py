"""Measuring the processes the bench starts: the CPU seconds and memory of a whole process tree, and stopping one."""

from __future__ import annotations

import functools
import os
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

import psutil

SAMPLE_SECONDS = 0.2


@functools.lru_cache(maxsize=1)
def cores() -> int:
    return psutil.cpu_count(logical=True) or 1


def children_cpu_seconds() -> float | None:
    """User + system CPU of every reaped descendant so far (Linux/macOS); None where unavailable."""
    try:
        import resource
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


@dataclass
class TreeStats:
    samples: int = 0
    util_sum: float = 0.0
    util_samples: int = 0
    util_peak: float = 0.0
    root_rss_peak: int = 0
    tree_rss_peak: int = 0
    procs_peak: int = 0
    cpu_seen: dict[tuple[int, float], float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        mib = 1024 * 1024
        return {
            "samples": self.samples,
            "meanUtilisation": round(self.util_sum / self.util_samples, 3) if self.util_samples else None,
            "peakUtilisation": round(self.util_peak, 3),
            "schedulerPeakRssMB": round(self.root_rss_peak / mib, 1),
            "treePeakRssMB": round(self.tree_rss_peak / mib, 1),
            "peakProcesses": self.procs_peak,
        }


class TreeSampler:
    """Samples a process and all its descendants every ``interval`` seconds on a thread."""

    def __init__(self, root_pid: int, *, include_root: bool = True, interval: float = SAMPLE_SECONDS) -> None:
        self.root = psutil.Process(root_pid)
        self.include_root = include_root
        self.interval = interval
        self.stats = TreeStats()
        self._known: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _tree(self) -> list[psutil.Process]:
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            return []
        return ([self.root] if self.include_root else []) + children

    def _cached(self, proc: psutil.Process) -> psutil.Process:
        """The same Process object each time, so cpu_percent() measures since the last sample."""
        known = self._known.get(proc.pid)
        if known is None or known != proc:  # equality includes the creation time: pid reuse is caught
            self._known[proc.pid] = known = proc
        return known

    def _sample(self) -> None:
        cpu_percent, tree_rss, count, root_rss = 0.0, 0, 0, 0
        for proc in map(self._cached, self._tree()):
            try:
                with proc.oneshot():
                    cpu_percent += proc.cpu_percent(None)
                    rss = proc.memory_info().rss
                    times = proc.cpu_times()
                    self.stats.cpu_seen[(proc.pid, proc.create_time())] = times.user + times.system
            except psutil.Error:
                continue
            tree_rss += rss
            count += 1
            if proc.pid == self.root.pid:
                root_rss = rss
        self._record(cpu_percent / (100 * cores()), tree_rss, root_rss, count)

    def _record(self, util: float, tree_rss: int, root_rss: int, count: int) -> None:
        stats = self.stats
        if stats.samples > 0:  # the first cpu_percent() call of each process reads 0: not a measure
            stats.util_sum += util
            stats.util_samples += 1
            stats.util_peak = max(stats.util_peak, util)
        stats.samples += 1
        stats.tree_rss_peak = max(stats.tree_rss_peak, tree_rss)
        stats.root_rss_peak = max(stats.root_rss_peak, root_rss)
        stats.procs_peak = max(stats.procs_peak, count)

    def cpu_seconds(self) -> float:
        """CPU seen per process at its last sample: a lower bound (short-lived processes escape)."""
        return sum(self.stats.cpu_seen.values())


def cpu_seconds_between(before: float | None, sampler: TreeSampler) -> tuple[float, str]:
    after = children_cpu_seconds()
    if before is not None and after is not None:
        return after - before, "rusage-children"
    return sampler.cpu_seconds(), "psutil-samples"


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM first (ocrpipe then kills its own tree), SIGKILL if it does not stop."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
