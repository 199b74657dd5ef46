"""The baselines: plain ocrmypdf on the PDFs ocrpipe would make, one file at a time and one file per core."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from runs import LANG
from sampling import TreeSampler, children_cpu_seconds, cores, cpu_seconds_between, stop_process
from sources import InputFile

IMAGE_DPI = 300  # ocrpipe's IMAGE_DPI default: what images without a DPI get in the baselines too


def extract_archive(archive: Path, dest: Path) -> None:
    """zip with zipfile; anything else with 7-Zip (SEVEN_ZIP or 7z on PATH)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
        return
    seven_zip = os.environ.get("SEVEN_ZIP") or shutil.which("7z") or "7z"
    subprocess.run([seven_zip, "x", "-y", f"-o{dest}", str(archive)], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)


def pages_in(folder: Path) -> list[Path]:
    """PDFs and images under ``folder`` in natural order, as ocrpipe's PREP stage takes them."""
    from ocrpipe.stages.assemble import natural_key
    from ocrpipe.stages.sniff import Kind, sniff

    found = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
             and not any(part.startswith((".", "__MACOSX")) for part in p.relative_to(folder).parts)
             and sniff(p) in (Kind.PDF, Kind.IMAGE)]
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def raw_pdf_for(source: Path, out: Path, scratch: Path) -> int:
    """The ``raw.pdf`` ocrpipe would give ocrmypdf for ``source``; returns its page count."""
    from ocrpipe.stages.assemble import assemble
    from ocrpipe.stages.sniff import Kind, sniff

    parts = [source]
    if sniff(source) is Kind.ARCHIVE:
        extract_archive(source, scratch)
        parts = pages_in(scratch)
    return assemble(parts, out, default_dpi=IMAGE_DPI)


def prepare_baseline_pdfs(inputs: Sequence[InputFile],
                          folder: Path) -> tuple[list[tuple[Path, int]], list[dict[str, str]]]:
    """Untimed: one PDF per input, as ocrpipe's PREP stage makes it."""
    folder.mkdir(parents=True)
    ready, skipped = [], []
    for n, item in enumerate(inputs):
        out = folder / f"{n:04d}.pdf"
        try:
            ready.append((out, raw_pdf_for(item.path, out, folder / f"{n:04d}.unpacked")))
        except Exception as exc:  # noqa: BLE001 — ocrpipe would reject it too; left out of the baselines
            skipped.append({"file": item.path.name, "reason": f"{type(exc).__name__}: {exc}"})
    return ready, skipped


def ocrmypdf_argv(src: Path, dst: Path, jobs: int) -> list[str]:
    from ocrpipe.tools.ocrmypdf import build_argv

    return build_argv([sys.executable, "-m", "ocrmypdf"], src, dst, lang=LANG, jobs=jobs)


class ProcessGroup:
    """Subprocesses started from worker threads, stopped together if the bench is interrupted."""

    def __init__(self) -> None:
        self._live: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(self, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=env)
        with self._lock:
            self._live.add(proc)
        try:
            _, stderr = proc.communicate()
        finally:
            with self._lock:
                self._live.discard(proc)
        return {"exitCode": proc.returncode, "stderrTail": stderr.decode(errors="replace")[-500:]}

    def stop_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for proc in live:
            stop_process(proc)


def run_batch(argvs: Sequence[list[str]], parallel: int) -> dict[str, Any]:
    """Run the commands ``parallel`` at a time (like ``xargs -P``); results, wall and CPU seconds."""
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    group = ProcessGroup()
    pool = ThreadPoolExecutor(parallel)
    before = children_cpu_seconds()
    started = time.perf_counter()
    try:
        with TreeSampler(os.getpid(), include_root=False) as sampler:
            results = list(pool.map(lambda argv: group.run(argv, env), argvs))
            wall = time.perf_counter() - started
    finally:  # after an interrupt: nothing new starts, what runs is stopped
        pool.shutdown(wait=False, cancel_futures=True)
        group.stop_all()
        pool.shutdown(wait=True)
    cpu, source = cpu_seconds_between(before, sampler)
    return {"results": results, "wall": wall, "cpu": cpu, "cpuSource": source, "tree": tree_without_root(sampler)}


def baseline(name: str, pdfs: Sequence[tuple[Path, int]], out_dir: Path, *, jobs: int,
             parallel: int) -> dict[str, Any]:
    """ocrmypdf on every PDF, ``parallel`` files at a time, each with ``--jobs jobs``."""
    out_dir.mkdir(parents=True)
    argvs = [ocrmypdf_argv(src, out_dir / src.name, jobs) for src, _ in pdfs]
    print(f"bench: baseline {name} ({len(argvs)} files, {parallel} at a time, --jobs {jobs}) …",
          file=sys.stderr, flush=True)
    batch = run_batch(argvs, parallel)
    wall, cpu, pages = batch["wall"], batch["cpu"], sum(p for _, p in pdfs)
    failed = [{"file": Path(a[-2]).name, **r} for a, r in zip(argvs, batch["results"]) if r["exitCode"] != 0]
    return {"name": name, "files": len(argvs), "failed": len(failed), "failures": failed[:10],
            "ocrmypdfJobs": jobs, "parallelFiles": parallel, "pages": pages, "wallSeconds": round(wall, 3),
            "cpuSeconds": round(cpu, 2), "cpuSource": batch["cpuSource"],
            "cpuUtilisation": round(cpu / (wall * cores()), 3) if wall else None,
            "pagesPerMinute": round(pages / wall * 60, 2) if wall else None, "tree": batch["tree"]}


def tree_without_root(sampler: TreeSampler) -> dict[str, Any]:
    tree = sampler.stats.as_dict()
    del tree["schedulerPeakRssMB"]  # the root is the bench itself, not measured
    return tree


def run_baselines(pdfs: Sequence[tuple[Path, int]], skipped: Sequence[dict[str, str]], work: Path) -> dict[str, Any]:
    """Both baselines on PDFs built once by ``prepare_baseline_pdfs``; ``work`` is this round's folder."""
    n = cores()
    sequential = baseline("sequential", pdfs, work / "out-sequential", jobs=n, parallel=1)
    parallel = baseline("file-parallel", pdfs, work / "out-parallel", jobs=1, parallel=n)
    best = min((sequential, parallel), key=lambda b: b["wallSeconds"])
    return {"prepared": len(pdfs), "skipped": list(skipped), "sequential": sequential, "fileParallel": parallel,
            "best": best["name"], "bestWallSeconds": best["wallSeconds"],
            "physicalLimitSeconds": round(parallel["cpuSeconds"] / n, 3),
            "note": "ocrmypdf only: the PDFs were built beforehand (untimed) with ocrpipe's assembly code"}
