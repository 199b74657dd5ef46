"""One ``ocrpipe run --once`` measured: wall, CPU of every process, memory, and the job index's figures."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from sampling import TreeSampler, children_cpu_seconds, cores, cpu_seconds_between, load_average, stop_process
from sources import InputFile

REPO = Path(__file__).resolve().parents[1]
FAKE_TOOL = REPO / "tests" / "fakes" / "fake_tool.py"
LANG = "eng"
# Settings that would point ocrpipe elsewhere than the bench's data folder or change what it runs.
CLEARED_ENV = ("DATA_DIR", "IN_DIR", "OUT_DIR", "ARCHIVE_DIR", "ERROR_DIR", "OCR_ARGS", "OCRMYPDF",
               "FAKE_OCR_DELAY", "FAKE_7Z_DELAY", "FAKE_TOOL_LOG")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "p95": None}
    return {"n": len(values), "mean": round(statistics.fmean(values), 3),
            "median": round(statistics.median(values), 3), "p95": round(percentile(values, 0.95), 3)}


def tail_of(path: Path, chars: int = 2000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def ocrpipe_env(prep: int, ocr: int, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(PREP_CONCURRENCY=str(prep), OCR_CONCURRENCY=str(ocr), STABLE_SECONDS="0",
               POLL_SECONDS="0.2", OCR_LANG=LANG)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    if args.fake_tools:
        env.update(fake_tool_env(args))
    return env


def fake_tool_env(args: argparse.Namespace) -> dict[str, str]:
    def command(tool: str) -> str:
        return f'"{sys.executable}" -S "{FAKE_TOOL}" {tool}'  # quoted for shlex, as tests/conftest.py does

    return {"SEVEN_ZIP": command("7z"), "OCRMYPDF": command("ocrmypdf"), "TESSERACT": command("tesseract"),
            "GHOSTSCRIPT": command("gs"), "FAKE_OCR_DELAY": str(args.fake_ocr_seconds),
            "FAKE_7Z_DELAY": str(args.fake_7z_seconds)}


def run_ocrpipe_once(run_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Start ocrpipe on ``run_dir/data`` (inputs already in in/), sample it until it exits."""
    log_path = run_dir / "ocrpipe.log"
    argv = [sys.executable, "-m", "ocrpipe", "run", "--once", "--data", str(run_dir / "data")]
    before = children_cpu_seconds()
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=run_dir)
        try:
            with TreeSampler(proc.pid) as sampler:
                code = proc.wait()
                wall = time.perf_counter() - started
        finally:
            stop_process(proc)
    cpu, source = cpu_seconds_between(before, sampler)
    return {"exitCode": code, "wallSeconds": round(wall, 3), "cpuSeconds": round(cpu, 2), "cpuSource": source,
            "cpuSecondsSampled": round(sampler.cpu_seconds(), 2), "tree": sampler.stats.as_dict(),
            "logPath": str(log_path)}


def read_jobs(data_dir: Path) -> list[dict[str, Any]]:
    from ocrpipe.index.jobindex import JobIndex

    with JobIndex(data_dir / "index", readonly=True) as index:
        return list(index)


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def count_dirs(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else 0


def job_span(jobs: Sequence[dict[str, Any]]) -> float | None:
    """First job created to last job finished, from the index timestamps."""
    try:
        starts = [datetime.fromisoformat(j["createdAt"]) for j in jobs]
        ends = [datetime.fromisoformat(j["finishedAt"]) for j in jobs]
    except (KeyError, TypeError, ValueError):
        return None
    return round((max(ends) - min(starts)).total_seconds(), 3) if jobs else None


def job_figures(data_dir: Path, expected: int, wall: float) -> dict[str, Any]:
    jobs = read_jobs(data_dir)
    done = [j for j in jobs if j.get("state") == "DONE"]
    errors = [j for j in jobs if j.get("state") == "ERROR"]
    pages = sum(int(j.get("pages") or 0) for j in done)
    timings = [j.get("timings") or {} for j in done]
    return {
        "jobs": {"expected": expected, "done": len(done), "error": len(errors),
                 "missing": expected - len(done) - len(errors),
                 "heldDuplicates": count_dirs(data_dir / "hold" / "duplicates"),
                 "leftInInbox": count_files(data_dir / "in")},
        "errors": [{"source": j.get("source"), "reason": j.get("reason")} for j in errors][:20],
        "pages": pages,
        "pagesPerMinute": round(pages / wall * 60, 2) if wall > 0 else None,
        "jobSpanSeconds": job_span(jobs),
        "prepSeconds": summary([float(t["prepSeconds"]) for t in timings if "prepSeconds" in t]),
        "ocrSeconds": summary([float(t["ocrSeconds"]) for t in timings if "ocrSeconds" in t]),
        "byKind": by_kind(done),
    }


def by_kind(done: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Jobs, pages and mean PREP/OCR seconds per input kind (pdf, image, archive)."""
    kinds: dict[str, Any] = {}
    for kind in sorted({str(j.get("kind")) for j in done}):
        jobs = [j for j in done if str(j.get("kind")) == kind]
        times = [j.get("timings") or {} for j in jobs]
        kinds[kind] = {"jobs": len(jobs), "pages": sum(int(j.get("pages") or 0) for j in jobs),
                       "prepMean": summary([float(t.get("prepSeconds", 0)) for t in times])["mean"],
                       "ocrMean": summary([float(t.get("ocrSeconds", 0)) for t in times])["mean"]}
    return kinds


def benchmark_run(inputs: Sequence[InputFile], work: Path, prep: int, ocr: int,
                  args: argparse.Namespace, round_no: int = 0) -> dict[str, Any]:
    run_dir = work / "runs" / f"round{round_no}-prep{prep}-ocr{ocr}"
    in_dir = run_dir / "data" / "in"
    in_dir.mkdir(parents=True)
    for item in inputs:  # all inputs in place before ocrpipe starts
        shutil.copyfile(item.path, in_dir / item.path.name)
    print(f"bench: ocrpipe run PREP={prep} OCR={ocr} on {len(inputs)} files …", file=sys.stderr, flush=True)
    load = load_average()
    measured = run_ocrpipe_once(run_dir, ocrpipe_env(prep, ocr, args))
    figures = job_figures(run_dir / "data", len(inputs), measured["wallSeconds"])
    cpu = measured["cpuSeconds"]
    figures["ocrSlotUtilisation"] = slot_use(figures, ocr)
    wall = measured["wallSeconds"]
    result = {"round": round_no, "prepConcurrency": prep, "ocrConcurrency": ocr, "loadAverageBefore": load,
              **measured, **figures,
              "cpuUtilisation": round(cpu / (wall * cores()), 3) if wall else None}
    result["ok"] = run_ok(result)
    if not result["ok"]:
        result["logTail"] = tail_of(Path(measured["logPath"]))
    if args.keep is None:
        del result["logPath"]  # removed with the work folder
    return result


def slot_use(figures: dict[str, Any], slots: int) -> float | None:
    """Σ OCR seconds / (job span × OCR_CONCURRENCY): how busy the scheduler kept the OCR pool."""
    span, ocr = figures["jobSpanSeconds"], figures["ocrSeconds"]
    if not span or not ocr["n"]:
        return None
    return round(ocr["mean"] * ocr["n"] / (span * slots), 3)


def run_ok(result: dict[str, Any]) -> bool:
    jobs = result["jobs"]
    return result["exitCode"] == 0 and jobs["error"] == 0 and jobs["done"] == jobs["expected"]
