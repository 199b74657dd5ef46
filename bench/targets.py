"""The benchmark's single-purpose measurements: one big document against ``ocrmypdf --jobs <cores>``,
one scheduler tick with a long history, and the delay from a drop to the start of PREP."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable

import pikepdf

from sampling import load_average

# One- to six-page scans of a corpus folder (``--source``), cycled to build a long document: "mixed" has
# cardinal.pdf, whose pages are turned (ROTATE_PAGES=auto reads them again); "upright" is 18 pages, all upright.
SCANS = ("ocrmypdf/linn.pdf", "ocrmypdf/skew.pdf", "ocrmypdf/c02-22.pdf", "ocrmypdf/3small.pdf",
         "ocrmypdf/cardinal.pdf", "ocrmypdf/ccitt.pdf", "ocrmypdf/jbig2.pdf", "ocrmypdf/epson.pdf")
UPRIGHT_SCANS = ("ocrmypdf/linn.pdf", "ocrmypdf/skew.pdf", "ocrmypdf/c02-22.pdf", "ocrmypdf/3small.pdf",
                 "ocrmypdf/ccitt.pdf", "ocrmypdf/jbig2.pdf", "ocrmypdf/epson.pdf", "derived/dibco11_pr1-4.pdf",
                 "derived/leptonica_1555_003.pdf", "derived/paperless_multipage.pdf", "ocrmypdf/francais.pdf")
SCAN_SETS = {"mixed": SCANS, "upright": UPRIGHT_SCANS}
GENERATED_PAGES = 8  # distinct generated pages, cycled like the scans


def long_document_pages(source: Path | None, work: Path, *, choice: str = "mixed") -> list[Path]:
    """The PDFs a long document is made of: a corpus's scans (``choice``: a set of SCAN_SETS), every PDF of
    another folder, or by default eight generated full pages of prose (tests/inputs.py)."""
    if source is not None:
        pdfs = ([source / name for name in SCAN_SETS[choice]] if (source / "MANIFEST.tsv").is_file()
                else sorted(source.rglob("*.pdf")))
        if not pdfs:
            raise ValueError(f"no PDF in {source}")
        return pdfs
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import inputs

    folder = work / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for seed in range(GENERATED_PAGES):
        image = inputs.save_image(inputs.prose_page(100 + seed), folder / f"page{seed}.png")
        made.append(inputs.image_pdf(folder / f"page{seed}.pdf", [image]))
    return made


def long_document(parts: list[Path], pages: int, out: Path) -> int:
    """At least ``pages`` pages of ``parts`` (PDFs, cycled) in one PDF; returns its page count."""
    with pikepdf.new() as doc:
        sources = []
        try:
            while len(doc.pages) < pages:
                for part in parts:
                    source = pikepdf.open(part)
                    sources.append(source)
                    doc.pages.extend(source.pages)
                    if len(doc.pages) >= pages:
                        break
            doc.save(out)
            return len(doc.pages)
        finally:
            for source in sources:
                source.close()


def _children_cpu() -> float:
    """User + system CPU of every reaped descendant so far (what a finished run cost, tools included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (the command and everything it started) and exit code of one run."""
    wall, cpu, code, _ = _timed_beside_others(argv, env)
    return wall, cpu, code


def _busy_seconds() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _timed_beside_others(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, float]:
    """``_timed``, and the CPU seconds other programs used of the machine meanwhile: a run beside others is
    not clean (on a shared machine, a run of more processes takes a bigger share of it)."""
    cpu, busy, started = _children_cpu(), _busy_seconds(), time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    return wall, cpu, done.returncode, max(0.0, _busy_seconds() - busy - cpu)


# One long document against one ``ocrmypdf --jobs <cores>`` call, like for like, median over rounds: on fewer than
# MANY_CORES cores one call keeps them busy but in its start and tail, and ocrpipe may cost only its own start and
# steps around the call; on more, one call leaves cores idle that a split fills (docs/speed.md).
MANY_CORES = 8
SINGLE_DOC_TARGET = 1.03
MANY_CORES_TARGET = 0.90


def single_doc_target(cores: int) -> float:
    return MANY_CORES_TARGET if cores >= MANY_CORES else SINGLE_DOC_TARGET


def baseline_call(source: Path, out: Path, env: dict[str, str], cores: int,
                  rotate_pages: str) -> tuple[list[str], dict[str, str]]:
    """Plain ``ocrmypdf --jobs <cores>`` with ocrpipe's default options; with ROTATE_PAGES=auto, ocrpipe's
    orientation plugin and its report folder too, as ocrpipe passes them (stages/orientation.py)."""
    from ocrpipe.stages.orientation import PLUGIN, orientation_env
    from ocrpipe.tools.ocrmypdf import orientation_args

    tmp = out.parent / "baseline-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    call_env = orientation_env({**env, "OMP_THREAD_LIMIT": "1", "TMPDIR": str(tmp)}, rotate_pages)
    argv = [sys.executable, "-m", "ocrmypdf", "--output-type", "auto", "--skip-text", "-l", env["OCR_LANG"],
            "--jobs", str(cores), *orientation_args("auto" if rotate_pages == "auto" else "off", False, PLUGIN),
            str(source), str(out)]
    return argv, call_env


def _ocrpipe_run(co: dict[str, str], source: Path, data: Path,
                 env: dict[str, str]) -> tuple[float, float, int, float]:
    """``run --once`` on the document in a data folder a first (empty, untimed) run has set up, as a scheduled
    task's is: its folders made and the tools' versions it keeps between starts already found."""
    (data / "in").mkdir(parents=True)
    run_env = {**env, "PYTHONPATH": os.pathsep.join([co["repo"], env.get("PYTHONPATH", "")])}
    argv = [co["python"], "-m", "ocrpipe", "run", "--once", "--data", str(data)]
    subprocess.run(argv, env=run_env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    shutil.copyfile(source, data / "in" / "long.pdf")
    return _timed_beside_others(argv, run_env)


LOADED = 0.10  # a round in which other programs used more than this share of a run's CPU is not clean


def single_document(parts: list[Path], pages: int, work: Path, env: dict[str, str], cores: int, *,
                    rounds: int = 1, rotate_pages: str = "off", repos: list[Path] | None = None,
                    scan_set: str = "mixed") -> dict[str, Any]:
    """ocrpipe on one long document against one ``ocrmypdf --jobs <cores>`` call with the same options,
    ``rounds`` times, back to back (the order reversed every other round); the median ratio of wall times is
    the verdict, CPU seconds (of everything each started) are reported beside it. ``rotate_pages``: ocrpipe's
    ROTATE_PAGES, and the baseline gets ocrpipe's orientation plugin when it is auto. ``repos``: other
    checkouts run the same way, interleaved (each against the baseline and this one against each)."""
    source = work / "single" / "long.pdf"
    source.parent.mkdir(parents=True)
    count = long_document(parts, pages, source)
    env = {**env, "ROTATE_PAGES": rotate_pages}
    from runs import REPO
    from startbench import checkout

    checkouts = [checkout(REPO), *(checkout(repo) for repo in repos or [])]
    if len({co["repo"] for co in checkouts}) < len(checkouts):
        raise ValueError("--ocrpipe-repo names a checkout twice (this one is always measured)")
    target = single_doc_target(cores)
    per_round = []
    for n in range(rounds):
        folder = work / "single" / f"round{n}"
        argv, base_env = baseline_call(source, folder / "baseline.pdf", env, cores, rotate_pages)
        runs: dict[str, tuple[float, float, int, float]] = {}
        order = ["baseline", *(co["label"] for co in checkouts)]
        for label in order if n % 2 == 0 else order[::-1]:
            if label == "baseline":
                runs[label] = _timed_beside_others(argv, base_env)
            else:
                co = next(c for c in checkouts if c["label"] == label)
                runs[label] = _ocrpipe_run(co, source, folder / label / "data", env)
        base_wall, base_cpu, base_code, _ = runs["baseline"]
        wall, cpu, code, _ = runs["this"]
        row: dict[str, Any] = {"ocrpipeWallSeconds": round(wall, 2), "ocrpipeCpuSeconds": round(cpu, 2),
                               "ocrpipeExitCode": code, "baselineWallSeconds": round(base_wall, 2),
                               "baselineCpuSeconds": round(base_cpu, 2), "baselineExitCode": base_code,
                               "ratio": round(wall / base_wall, 3), "cpuRatio": round(cpu / base_cpu, 3),
                               "otherCpuSeconds": {label: round(run[3], 1) for label, run in runs.items()},
                               "clean": all(run[3] <= LOADED * run[1] for run in runs.values()),
                               "loadAverageAfter": load_average()}
        for co in checkouts[1:]:
            o_wall, o_cpu, o_code, _ = runs[co["label"]]
            row.setdefault("others", {})[co["label"]] = {
                "wallSeconds": round(o_wall, 2), "cpuSeconds": round(o_cpu, 2), "exitCode": o_code,
                "ratio": round(o_wall / base_wall, 3), "cpuRatio": round(o_cpu / base_cpu, 3),
                "thisToOther": round(wall / o_wall, 3), "cpuThisToOther": round(cpu / o_cpu, 3)}
        per_round.append(row)
        print(f"single-doc round {n + 1}/{rounds}: ocrpipe {wall:.2f} s ({cpu:.1f} CPU-s), ocrmypdf --jobs {cores} "
              f"{base_wall:.2f} s ({base_cpu:.1f} CPU-s): {row['ratio']:.3f}x, CPU {row['cpuRatio']:.3f}x"
              + ("" if row["clean"] else f" (not clean: others used {row['otherCpuSeconds']} CPU-s)")
              + "".join(f"; {label} {o['wallSeconds']:.2f} s ({o['ratio']:.3f}x, this/{label} {o['thisToOther']:.3f}x)"
                        for label, o in row.get("others", {}).items()), file=sys.stderr, flush=True)
    clean = [r for r in per_round if r["clean"]]
    judged = clean if 2 * len(clean) >= len(per_round) else per_round  # the clean rounds, when most are
    ratio = statistics.median(r["ratio"] for r in judged)
    cpu_ratio = statistics.median(r["cpuRatio"] for r in judged)
    all_ran = all(r["ocrpipeExitCode"] == 0 and r["baselineExitCode"] == 0 for r in per_round)
    report: dict[str, Any] = {
        "pages": count, "baseline": f"ocrmypdf --jobs {cores}", "cores": cores, "scanSet": scan_set,
        "rotatePages": rotate_pages, "rounds": per_round, "medianRatio": round(ratio, 3),
        "medianCpuRatio": round(cpu_ratio, 3), "judgedOn": "clean rounds" if judged is clean else "all rounds",
        "cleanRounds": len(clean), "target": target, "ok": all_ran and ratio <= target}
    for co in checkouts[1:]:
        mine = [r["others"][co["label"]] for r in judged]
        report.setdefault("otherCheckouts", {})[co["label"]] = {
            "repo": co["repo"], "medianRatio": round(statistics.median(o["ratio"] for o in mine), 3),
            "medianCpuRatio": round(statistics.median(o["cpuRatio"] for o in mine), 3),
            "medianThisToOther": round(statistics.median(o["thisToOther"] for o in mine), 3)}
    verdict = "meets" if report["ok"] else "misses"
    print(f"single-doc: median {ratio:.3f}x the wall of ocrmypdf --jobs {cores} (CPU {cpu_ratio:.3f}x) over "
          f"{'the clean' if judged is clean else 'all'} rounds ({len(judged)} of {rounds}): {verdict} the target {target}x"
          + "".join(f"; this / {label} {o['medianThisToOther']:.3f}x" for label, o in
                    report.get("otherCheckouts", {}).items()), file=sys.stderr, flush=True)
    return report


class _Idle(Executor):
    """An executor that never runs anything: the tick is measured, not the stages."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return Future()


def tick_with_history(finished: int, work: Path) -> dict[str, Any]:
    """How long one tick takes with ``finished`` jobs in the history (the job index)."""
    from indexbench import history_entry
    from ocrpipe.config import load_settings
    from ocrpipe.index.jobindex import JobIndex
    from ocrpipe.engine.scheduler import Scheduler

    data = work / "tick" / "data"
    (data / "index").mkdir(parents=True)
    (data / "in").mkdir()
    with JobIndex(data / "index") as index:
        index.record_many(history_entry(n) for n in range(finished))
    settings = load_settings({"DATA_DIR": str(data), "STABLE_SECONDS": "0", "POLL_SECONDS": "0.05",
                              "PATH": os.environ.get("PATH", "")})
    scheduler = Scheduler(settings, profile={"bench": 1}, executor_factory=lambda workers: _Idle())
    started = time.perf_counter()
    scheduler.start()
    start_seconds = time.perf_counter() - started
    idle, admitting = [], []
    for n in range(40):
        if n % 2:  # every other tick takes in a new file and submits its PREP
            (data / "in" / f"new{n}.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n" + str(n).encode())  # never run
        began = time.perf_counter()
        scheduler.tick(1000.0 + n)
        (admitting if n % 2 else idle).append((time.perf_counter() - began) * 1000)
    scheduler.close()
    slowest = max(idle + admitting)
    return {"finishedJobs": finished, "startSeconds": round(start_seconds, 3),
            "idleTickMs": {"median": round(statistics.median(idle), 2), "max": round(max(idle), 2)},
            "admittingTickMs": {"median": round(statistics.median(admitting), 2), "max": round(max(admitting), 2)},
            "targetMs": 50, "ok": slowest <= 50}


def drop_latency(work: Path, env: dict[str, str], drops: int = 6) -> dict[str, Any]:
    """Seconds from a file appearing in in/ to its PREP starting, with the default POLL and STABLE."""
    from ocrpipe.model import JobState

    data = work / "latency" / "data"
    (data / "in").mkdir(parents=True)
    env = {**env, "POLL_SECONDS": "1", "STABLE_SECONDS": "2", "FAKE_OCR_DELAY": "4"}
    proc = subprocess.Popen([sys.executable, "-m", "ocrpipe", "run", "--data", str(data)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    delays = []
    try:
        deadline = time.monotonic() + 30
        while not (data / "index" / "ocrpipe.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the pools are warm by now
        for n in range(drops):
            staged = Path(tempfile.mkstemp(dir=data, suffix=".pdf")[1])
            with pikepdf.new() as pdf:  # a valid one-page PDF: the job lives on while the fake OCR sleeps
                pdf.add_blank_page()
                pdf.docinfo["/Title"] = f"latency {n} {time.time()}"
                pdf.save(staged)
            dropped = time.time()
            os.replace(staged, data / "in" / f"drop{n}.pdf")  # appears whole, at a known instant
            delays.append(_prep_started(data, dropped, JobState.PREP_RUNNING.value) - dropped)
            time.sleep(0.37 * (n + 1) % 1.0)  # land at different moments of the poll cycle
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    limit = float(env["POLL_SECONDS"]) + float(env["STABLE_SECONDS"]) + 0.5
    return {"drops": drops, "secondsToPrep": {"mean": round(statistics.mean(delays), 2), "max": round(max(delays), 2)},
            "limitSeconds": limit, "ok": max(delays) <= limit}


def _prep_started(data: Path, after: float, running: str, timeout: float = 30.0) -> float:
    """Wall time at which a job created after ``after`` recorded PREP_RUNNING."""
    from datetime import datetime

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for state_file in (data / "work").glob("*/state.json"):
            try:
                record = json.loads(state_file.read_text())
            except (OSError, ValueError):
                continue
            for entry in record["history"]:
                at = datetime.fromisoformat(entry["at"]).timestamp()
                if entry["state"] == running and at >= after:
                    return at
        time.sleep(0.02)
    raise RuntimeError("no PREP started within 30 s of the drop")
