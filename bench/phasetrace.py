"""Where one long document's time goes: a command's process tree sampled every 0.1 s (how many cores each
kind of process keeps busy), and each ocrmypdf call in it cut into its phases.

A call's phases, from its processes: **start** (from its start to its first Tesseract: Python imports,
reading and analysing the PDF, rasterising the first pages), **pages** (first Tesseract to the last one's
end) and **tail** (to its exit: the text layer rendered from Tesseract's hOCR and grafted, PDF/A, the
optimizer, the save). What a call leaves idle in its start and tail is what concurrent calls on page ranges
(ocrpipe's split) could fill; what each extra call costs is its own start and fixed tail.

Variants, run interleaved round after round (the order reversed every other round):

- ``--jobs 1,2``: one ``ocrmypdf --jobs N`` call on the whole document;
- ``--ranges 2x1,2x2``: K concurrent ``ocrmypdf --jobs J`` calls on K page ranges dealt by estimated work (as
  ocrpipe cuts them; the cutting is not timed), nothing of ocrpipe around them;
- ``--ocrpipe auto,whole,split2``: ``ocrpipe run --once`` as it decides, whole (OCR_SPLIT_MIN_PAGES=0), or
  split into K ranges whatever it predicts (OCR_SPLIT_PARTS=K); ``--ocrpipe-repo PATH`` runs another
  checkout's (its ``.venv``) instead, e.g. a before.

Usage::

    python bench/phasetrace.py --pages 18 --chart                   # generated pages, ocrmypdf --jobs 1 and 2
    python bench/phasetrace.py --pages 18 --source ../shared/corpus --set upright --jobs 2 --ranges 2x2 \\
        --ocrpipe whole,split2 --rounds 3

``--instant-tesseract`` puts a Tesseract that reads nothing first on PATH (POSIX shell): what is left is
ocrmypdf's own work on each page, and how well its page workers (threads of one process) share it.

``ROTATE_PAGES=off`` for ocrpipe unless ``--rotate-pages auto``. The JSON report (``--out``) keeps each run's
samples; a line per run and the medians are printed. ``outsideCpuSeconds`` is what other programs used of
the machine meanwhile: a run with much of it is not clean.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sampling import children_cpu_seconds, cores  # noqa: E402
from runs import REPO  # noqa: E402
from startbench import checkout  # noqa: E402
from targets import long_document, long_document_pages  # noqa: E402

INTERVAL = 0.1
KINDS = {"tesseract": "T", "ocrmypdf": "O", "tool": "x", "ocrpipe": "P"}


def _kind(proc: psutil.Process, calls: dict[int, int]) -> tuple[str, int | None]:
    """(kind, the ocrmypdf call it belongs to, by its main process's pid). ocrmypdf's page workers are
    threads of its main process (17.x), so "ocrmypdf" is its start, rasterising and tail together."""
    try:
        name, cmd, parent = proc.name(), proc.cmdline(), proc.ppid()
    except psutil.Error:
        return "gone", None
    call = calls.get(parent)
    if "tesseract" in name:  # a page's OCR; its version and language probes are "tool"
        return ("tesseract" if any(arg in ("hocr", "pdf", "txt") for arg in cmd) else "tool"), call
    if call is not None:
        return ("ocrmypdf" if "python" in name else "tool"), call
    if any(Path(arg).name == "ocrmypdf" for arg in cmd[1:3]):
        return "ocrmypdf", proc.pid
    return "ocrpipe", None


@dataclass
class Seen:
    kind: str
    call: int | None
    first: float  # seconds from the start of the run, when first sampled
    last: float
    cpu: float = 0.0


@dataclass
class Trace:
    started: float = field(default_factory=time.perf_counter)
    # per sample: time, cores busy by kind, by call, and machine-wide
    samples: list[tuple[float, dict[str, float], dict[int, float], float]] = field(default_factory=list)
    procs: dict[tuple[int, float], Seen] = field(default_factory=dict)
    lines: list[tuple[float, str]] = field(default_factory=list)  # what it printed, when


def _busy(times: Any) -> float:
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def sample_tree(root: psutil.Process, trace: Trace, stop: threading.Event) -> None:
    calls: dict[int, int] = {}
    last_t, last_machine = trace.started, psutil.cpu_times()
    while True:
        now = time.perf_counter()
        by_kind: dict[str, float] = {}
        by_call: dict[int, float] = {}
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for proc in tree:
            try:
                key, times = (proc.pid, proc.create_time()), proc.cpu_times()
            except psutil.Error:
                continue
            seen = trace.procs.get(key)
            if seen is None:
                kind, call = _kind(proc, calls)
                seen = trace.procs[key] = Seen(kind, call, now - trace.started, now - trace.started)
            if seen.call is not None:
                calls[proc.pid] = seen.call
            cpu = times.user + times.system
            delta, seen.cpu, seen.last = cpu - seen.cpu, cpu, now - trace.started
            by_kind[seen.kind] = by_kind.get(seen.kind, 0.0) + delta
            if seen.call is not None:
                by_call[seen.call] = by_call.get(seen.call, 0.0) + delta
        machine = psutil.cpu_times()
        span = max(now - last_t, 1e-3)
        trace.samples.append((round(now - trace.started, 3), {k: v / span for k, v in by_kind.items()},
                              {c: v / span for c, v in by_call.items()},
                              (_busy(machine) - _busy(last_machine)) / span))
        last_t, last_machine = now, machine
        if stop.wait(INTERVAL):
            return


def traced(argv: Sequence[str], env: dict[str, str], *, cwd: Path | None = None) -> tuple[Trace, dict[str, Any]]:
    """Run ``argv`` with its tree sampled and each line it prints timed; its wall and CPU seconds (every
    process it started, reaped). The lines are read as they come: a pipe nobody reads would fill."""
    cpu_before = children_cpu_seconds()
    trace = Trace()
    proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    stop = threading.Event()
    sampler = threading.Thread(target=sample_tree, args=(psutil.Process(proc.pid), trace, stop), daemon=True)
    sampler.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        trace.lines.append((round(time.perf_counter() - trace.started, 3), line.decode(errors="replace").rstrip()))
    code = proc.wait()
    wall = time.perf_counter() - trace.started
    stop.set()
    sampler.join()
    cpu = (children_cpu_seconds() or 0.0) - (cpu_before or 0.0)
    return trace, {"exitCode": code, "wallSeconds": round(wall, 2), "cpuSeconds": round(cpu, 2),
                   **({"outputTail": [text for _, text in trace.lines[-20:]]} if code else {})}


def _cpu_between(trace: Trace, start: float, end: float, call: int) -> float:
    total, previous = 0.0, 0.0
    for t, _, by_call, _ in trace.samples:
        if start < t <= end + INTERVAL / 2:
            total += by_call.get(call, 0.0) * (t - previous)
        previous = t
    return total


def call_phases(trace: Trace) -> list[dict[str, Any]]:
    """Each ocrmypdf call's start, pages and tail: from when, how long, CPU seconds and mean cores busy."""
    mains = sorted((s for s in trace.procs.values() if s.kind == "ocrmypdf" and s.call is not None
                    and s.first == min(p.first for p in trace.procs.values() if p.call == s.call)),
                   key=lambda s: s.first)
    result = []
    for main in mains:
        tess = [s for s in trace.procs.values() if s.kind == "tesseract" and s.call == main.call]
        begin, end = main.first - INTERVAL / 2, main.last + INTERVAL / 2
        first_page = min((s.first - INTERVAL / 2 for s in tess), default=end)
        last_page = max((s.last + INTERVAL / 2 for s in tess), default=end)
        phases = {}
        for name, a, b in (("start", begin, first_page), ("pages", first_page, last_page), ("tail", last_page, end)):
            cpu = _cpu_between(trace, a, b, main.call)  # type: ignore[arg-type]
            phases[name] = {"from": round(a, 2), "seconds": round(b - a, 2), "cpuSeconds": round(cpu, 2),
                            "cores": round(cpu / (b - a), 2) if b > a else None}
        result.append({"pages": len(tess), "ocrmypdfCpuSeconds": round(sum(
            s.cpu for s in trace.procs.values() if s.call == main.call and s.kind == "ocrmypdf"), 2),
            "tesseractCpuSeconds": round(sum(s.cpu for s in tess), 2), **phases})
    return result


def summary(trace: Trace, run: dict[str, Any]) -> dict[str, Any]:
    """CPU by kind, mean cores busy, time with fewer than 1.5 of them busy, other programs' CPU meanwhile."""
    by_kind: dict[str, float] = {}
    for s in trace.procs.values():
        by_kind[s.kind] = by_kind.get(s.kind, 0.0) + s.cpu
    previous, low, outside = 0.0, 0.0, 0.0
    for t, kinds, _, machine in trace.samples[1:]:
        mine = sum(kinds.values())
        low += (t - previous) if mine < 1.5 else 0.0
        outside += max(0.0, machine - mine) * (t - previous)
        previous = t
    calls = call_phases(trace)
    wall = run["wallSeconds"]
    return {**run, "cpuByKind": {k: round(v, 2) for k, v in sorted(by_kind.items())},
            "meanCores": round(run["cpuSeconds"] / wall, 2) if wall else None,
            "secondsBelow1.5Cores": round(low, 2), "outsideCpuSeconds": round(outside, 2),
            "firstCall": calls[0]["start"]["from"] if calls else None,
            "lastCallEnd": round(max(c["tail"]["from"] + c["tail"]["seconds"] for c in calls), 2) if calls else None,
            "calls": calls}


LOADED = 0.10  # a run during which other programs used more than this share of its CPU is not clean


def is_clean(run: dict[str, Any]) -> bool:
    return run["outsideCpuSeconds"] <= LOADED * run["cpuSeconds"]


def chart(trace: Trace, width: float = 0.5) -> str:
    """One row per ``width`` seconds, a character per 0.1 core busy: T Tesseract, O ocrmypdf, x its other tools,
    P ocrpipe; after the bar, '.' per 0.1 core other programs used."""
    rows: dict[int, list[tuple[dict[str, float], float]]] = {}
    for t, kinds, _, machine in trace.samples[1:]:
        rows.setdefault(int(t / width), []).append((kinds, machine))
    lines = []
    for n, row in sorted(rows.items()):
        mean = {kind: sum(k.get(kind, 0.0) for k, _ in row) / len(row) for kind in KINDS}
        outside = sum(max(0.0, m - sum(k.values())) for k, m in row) / len(row)
        bar = "".join(letter * round(mean[kind] * 10) for kind, letter in KINDS.items())
        lines.append(f"{n * width:6.1f} {bar:<{10 * cores() + 2}}|{'.' * round(outside * 10)}")
    return "\n".join(lines)


def concurrent(commands: list[list[str]]) -> int:
    """The ``--ranges`` runner: the commands at once; the worst exit code."""
    procs = [subprocess.Popen(command, stdin=subprocess.DEVNULL) for command in commands]
    return max(proc.wait() for proc in procs)


def range_files(source: Path, parts: int, folder: Path) -> list[Path]:
    """``source`` cut into ``parts`` ranges as ocrpipe cuts them (pages dealt by estimated work)."""
    from ocrpipe.stages.pagemerge import cut_range
    from ocrpipe.stages.split import plan_ranges

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n, pages in enumerate(plan_ranges(source, parts)):
        cut_range(source, pages, folder / f"range-{n}.pdf")
        made.append(folder / f"range-{n}.pdf")
    return made


INSTANT_TESSERACT = """#!/bin/sh
# Answers like Tesseract, reads nothing: an empty hOCR page and text.
for a in "$@"; do case "$a" in --version|--list-langs|--print-parameters) exec "$REAL_TESSERACT" "$@";; esac; done
while [ "$#" -gt 0 ]; do case "$1" in -l|-c|--psm|--oem|--dpi|--tessdata-dir) shift 2;; -*) shift;; *) break;; esac; done
printf '%s\\n' '<?xml version="1.0" encoding="UTF-8"?>' \\
  '<html xmlns="http://www.w3.org/1999/xhtml"><head><title></title>' \\
  "<meta name='ocr-system' content='tesseract 5.3.0' /></head><body>" \\
  "<div class='ocr_page' id='page_1' title='image \\"x\\"; bbox 0 0 2550 3300; ppageno 0'></div></body></html>" \\
  > "$2.hocr"
: > "$2.txt"
"""


def instant_tesseract(env: dict[str, str], folder: Path) -> dict[str, str]:
    """``env`` with a Tesseract first on PATH that answers at once and reads nothing."""
    real = shutil.which("tesseract", path=env.get("PATH"))
    if real is None:
        raise SystemExit("phasetrace: no tesseract on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tesseract").write_text(INSTANT_TESSERACT)
    (folder / "tesseract").chmod(0o755)
    return {**env, "REAL_TESSERACT": real, "PATH": os.pathsep.join([str(folder), env.get("PATH", "")])}


def variants(args: argparse.Namespace, source: Path, work: Path,
             env: dict[str, str]) -> list[tuple[str, list[str], dict[str, str]]]:
    def ocrmypdf(jobs: int, src: Path, dst: Path) -> list[str]:
        return [sys.executable, "-m", "ocrmypdf", "--output-type", "auto", "--skip-text", "-l", env["OCR_LANG"],
                "--jobs", str(jobs), str(src), str(dst)]

    if args.instant_tesseract:
        env = instant_tesseract(env, work / "instant")
    tool_env = {**env, "OMP_THREAD_LIMIT": "1"}
    made = [(f"ocrmypdf --jobs {jobs}", ocrmypdf(int(jobs), source, work / "out.pdf"), tool_env)
            for jobs in filter(None, args.jobs.split(","))]
    for spec in filter(None, args.ranges.split(",")):
        parts, jobs = (int(x) for x in spec.split("x"))
        files = range_files(source, parts, work / f"ranges{parts}")
        commands = [ocrmypdf(jobs, f, f.with_suffix(".ocr.pdf")) for f in files]
        made.append((f"{parts} ranges, --jobs {jobs} each",
                     [sys.executable, __file__, "--concurrent", json.dumps(commands)], tool_env))
    co = checkout(args.ocrpipe_repo or REPO)
    for variant in filter(None, args.ocrpipe.split(",")):
        if variant not in ("auto", "whole") and not variant.startswith("split"):
            raise SystemExit(f"phasetrace: --ocrpipe {variant!r}: expected auto, whole or splitK")
        run_env = {**env, "PYTHONPATH": os.pathsep.join([co["repo"], env.get("PYTHONPATH", "")]),
                   **({"OCR_SPLIT_MIN_PAGES": "0"} if variant == "whole" else {}),
                   **({"OCR_SPLIT_PARTS": variant[5:], "OCR_SPLIT_MIN_PAGES": "2"} if variant.startswith("split")
                      else {})}
        made.append((f"ocrpipe {variant}" + (f" ({co['label']})" if co["label"] != "this" else ""),
                     [co["python"], "-m", "ocrpipe", "run", "--once", "--data", str(work / "data")], run_env))
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=18)
    parser.add_argument("--source", type=Path, help="a corpus folder (MANIFEST.tsv): its scans")
    parser.add_argument("--set", choices=("mixed", "upright"), default="mixed", help="which of the corpus' scans")
    parser.add_argument("--jobs", default="1,2", help="whole-document ocrmypdf calls, by --jobs (default 1,2)")
    parser.add_argument("--ranges", default="", help="raw concurrent calls on ranges, PARTSxJOBS, e.g. 2x2,2x1")
    parser.add_argument("--ocrpipe", default="", help="ocrpipe runs: auto, whole, splitK (comma list)")
    parser.add_argument("--ocrpipe-repo", type=Path, help="the ocrpipe runs from this checkout (its .venv)")
    parser.add_argument("--rotate-pages", choices=("off", "auto"), default="off")
    parser.add_argument("--instant-tesseract", action="store_true", help="a Tesseract that reads nothing")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--chart", action="store_true", help="print each run as a chart of the cores busy")
    parser.add_argument("--out", type=Path, default=Path("phasetrace.json"))
    parser.add_argument("--concurrent", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.concurrent:
        return concurrent(json.loads(args.concurrent))
    from runs import REPO, ocrpipe_env

    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="ocrpipe-trace-"))
    try:
        source = work / "long.pdf"
        count = long_document(long_document_pages(args.source, work, choice=args.set), args.pages, source)
        env = ocrpipe_env(1, cores(), argparse.Namespace(fake_tools=False))
        env.update(STABLE_SECONDS="0", POLL_SECONDS="0.2", ROTATE_PAGES=args.rotate_pages)
        runs = variants(args, source, work, env)
        report: dict[str, Any] = {"pages": count, "cores": cores(), "set": args.set, "source": str(args.source),
                                  "runs": []}
        for n in range(args.rounds):
            for name, command, run_env in (runs if n % 2 == 0 else runs[::-1]):
                if "ocrpipe" in name:
                    shutil.rmtree(work / "data", ignore_errors=True)
                    (work / "data" / "in").mkdir(parents=True)
                    shutil.copyfile(source, work / "data" / "in" / "long.pdf")
                trace, run = traced(command, run_env, cwd=REPO)
                result = {"name": name, "round": n, **summary(trace, run)}
                report["runs"].append({**result, "lines": trace.lines,
                                       "samples": [s[:2] + s[3:] for s in trace.samples]})
                print(json.dumps({k: v for k, v in result.items() if k != "calls"}), flush=True)
                for call in result["calls"]:
                    print("   ", json.dumps(call), flush=True)
                if args.chart:
                    print(chart(trace), flush=True)
                    print("\n".join(f"{t:6.2f} {text}" for t, text in trace.lines[:40]), flush=True)
        clean = [r["round"] for r in report["runs"]]
        clean = [n for n in sorted(set(clean)) if all(is_clean(r) for r in report["runs"] if r["round"] == n)]
        report["cleanRounds"] = clean
        print(f"clean rounds (other programs used under {LOADED:.0%} of a run's CPU in every run): {clean}")
        for name, *_ in runs:
            mine = [r for r in report["runs"] if r["name"] == name and (r["round"] in clean or not clean)]
            print(f"{name}: wall median {statistics.median(r['wallSeconds'] for r in mine):.2f} s, CPU median "
                  f"{statistics.median(r['cpuSeconds'] for r in mine):.2f} s over {len(mine)} "
                  f"{'clean ' if clean else ''}round(s)")
        args.out.write_text(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
