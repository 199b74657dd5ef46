"""``--index-history N``: start, status and the duplicate lookup with N finished jobs in the job index."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

PAIRS = 5  # a start's time drifts on a shared machine: empty and full back to back, the median ratio decides
TARGET_RATIO, TARGET_RSS_MB, TARGET_STATUS_S, TARGET_LOOKUP_MS = 1.3, 150, 1.0, 5.0


def history_entry(n: int) -> dict[str, Any]:
    """A finished job as ``ocrpipe run`` records it (about 600 bytes as a JSON line); every 50th failed."""
    key = f"{n:064x}__{'ab' * 32}"
    rel = f"scans/{2026 - n % 3}/{1 + n % 12:02d}/scan{n:07d}.pdf"
    entry: dict[str, Any] = {
        "jobKey": key, "runId": f"{n:032x}", "state": "DONE", "source": rel,
        "output": f"/srv/ocrpipe/data/out/{rel}", "archived": f"/srv/ocrpipe/data/archive/{rel}",
        "pages": 1 + n % 7, "kind": "pdf", "pdfa": "PDF/A-2B", "batchSize": 1 + n % 5,
        "attempts": {"PREP": 1, "OCR": 1}, "timings": {"prepSeconds": 0.412, "ocrSeconds": 6.731},
        "reason": None, "createdAt": "2026-11-27T10:11:12.345+00:00", "finishedAt": "2026-11-27T10:11:20.678+00:00",
    }
    if n % 50 == 49:
        entry.update(state="ERROR", output=None, archived=None, errorDir=f"/srv/ocrpipe/data/error/{key}",
                     reason="the PDF is encrypted: it needs a password to open", code=8)
    return entry


def write_history_jsonl(path: Path, count: int) -> int:
    """``count`` lines of ``index/jobs.jsonl`` as the JSONL-era ocrpipe wrote it; returns its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for n in range(count):
            handle.write(json.dumps(history_entry(n), ensure_ascii=False) + "\n")
    return path.stat().st_size


def timed_process(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Wall time and peak RSS (sampled every 10 ms) of one process; its pool workers are not counted.
    Its output goes to temporary files, not pipes: a pipe nobody reads while it is sampled fills at
    ~64 KB and the process would wait for ever."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        peak = 0
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.01)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return {"seconds": round(wall, 3), "peakRssMb": round(peak / 2**20, 1), "exitCode": proc.returncode,
            "stdout": stdout.decode(errors="replace"), "stderr": stderr.decode(errors="replace")}


def run_once(data: Path, env: dict[str, str]) -> dict[str, Any]:
    result = timed_process([sys.executable, "-m", "ocrpipe", "run", "--once", "--data", str(data)], env)
    if result["exitCode"] != 0:
        raise RuntimeError(f"ocrpipe run --once exited {result['exitCode']}:\n{result['stderr'][-2000:]}")
    return result


def paired_runs(empty: Path, full: Path, env: dict[str, str]) -> dict[str, Any]:
    """``run --once`` on both folders back to back, alternating which goes first; each pair gives a ratio."""
    pairs = []
    for n in range(PAIRS):
        if n % 2:
            loaded, base = run_once(full, env), run_once(empty, env)
        else:
            base, loaded = run_once(empty, env), run_once(full, env)
        pairs.append((base, loaded))

    def side(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"seconds": [r["seconds"] for r in runs], "medianSeconds": statistics.median(r["seconds"] for r in runs),
                "peakRssMb": max(r["peakRssMb"] for r in runs)}

    ratios = [round(loaded["seconds"] / base["seconds"], 3) for base, loaded in pairs]
    return {"emptyIndex": side([b for b, _ in pairs]), "fullIndex": side([f for _, f in pairs]),
            "ratios": ratios, "medianRatio": statistics.median(ratios)}


def lookups(index_dir: Path, count: int, probes: int = 1000) -> dict[str, Any]:
    """Milliseconds of the duplicate lookup ``is_done`` for known and unknown keys, picked at random;
    judged on the 99th percentile (a shared machine's scheduler can stall any single call)."""
    from ocrpipe.index.jobindex import JobIndex

    rng = random.Random(12)
    times = []
    with JobIndex(index_dir, readonly=True) as index:
        for n in range(probes):
            key = history_entry(rng.randrange(count))["jobKey"] if n % 2 else f"{rng.getrandbits(256):064x}__x"
            began = time.perf_counter()
            index.is_done(key)
            times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {"probes": probes, "medianMs": round(statistics.median(times), 3),
            "p99Ms": round(times[int(len(times) * 0.99)], 3), "maxMs": round(times[-1], 3)}


def status_in_process(data: Path) -> float:
    """``collect_status`` alone, without the start of a Python process."""
    from ocrpipe.config import load_settings
    from ocrpipe.ops.status import collect_status

    settings = load_settings({"DATA_DIR": str(data), "PATH": os.environ.get("PATH", "")})
    began = time.perf_counter()
    collect_status(settings)
    return round(time.perf_counter() - began, 3)


def index_history(count: int, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Builds a data folder whose jobs.jsonl has ``count`` jobs, lets ``run --once`` import it, then
    measures against an empty data folder: run --once, its peak RSS, status, the lookup, bytes per job."""
    empty, full = work / "index-empty" / "data", work / "index-full" / "data"
    for data in (empty, full):
        (data / "in").mkdir(parents=True)
    jsonl_bytes = write_history_jsonl(full / "index" / "jobs.jsonl", count)
    imported = run_once(full, env)  # the one-time migration
    import_line = [line for line in imported["stderr"].splitlines() if "imported" in line and "finished jobs" in line]
    run_once(empty, env)  # both folders set up alike before timing
    runs = paired_runs(empty, full, env)
    status = timed_process([sys.executable, "-m", "ocrpipe", "status", "--data", str(full)], env)
    status_query = status_in_process(full)
    db = full / "index" / "ocrpipe.sqlite"
    db_bytes = sum(p.stat().st_size for p in db.parent.glob("ocrpipe.sqlite*") if p.is_file())
    lookup = lookups(full / "index", count)
    ok = (runs["medianRatio"] <= TARGET_RATIO and runs["fullIndex"]["peakRssMb"] <= TARGET_RSS_MB
          and status["seconds"] < TARGET_STATUS_S and lookup["p99Ms"] < TARGET_LOOKUP_MS and status["exitCode"] == 0)
    return {
        "finishedJobs": count, "jsonlBytes": jsonl_bytes,
        "importRunOnceSeconds": imported["seconds"], "importPeakRssMb": imported["peakRssMb"],
        "importLog": import_line[-1] if import_line else None,
        "runOnce": runs,
        "statusSeconds": status["seconds"], "statusPeakRssMb": status["peakRssMb"],
        "statusInProcessSeconds": status_query,
        "duplicateLookup": lookup, "dbBytes": db_bytes, "dbBytesPerJob": round(db_bytes / max(count, 1), 1),
        "targets": {"ratio": TARGET_RATIO, "peakRssMb": TARGET_RSS_MB, "statusSeconds": TARGET_STATUS_S,
                    "lookupMs": TARGET_LOOKUP_MS},
        "ok": ok,
    }
