"""Latency of a running service: from a complete document dropped into ``in/`` to its output in ``out/``,
against ``ocrmypdf`` alone on the same file with the same options, for a 1-page and an 18-page document.

``python -m ocrpipe run`` (service mode, the default POLL_SECONDS and STABLE_SECONDS unless the environment
sets them) is started once on a fresh data folder and left until it is up and idle (its warmed workers have
finished starting). Then, round after round, each document is dropped (written beside the data folder, then
renamed into ``in/``, so it appears whole at a known instant) and the output is waited for in ``out/``, where
ocrpipe publishes by a link or rename of a finished temp file: the name appears only when the file is whole.
``ocrmypdf`` alone runs on the very file dropped, before or after it (alternating), in a session of its own as
ocrpipe runs its tools. Each drop is a new document (its /Title differs): ocrpipe holds a repeated one as a
duplicate.

The stability allowance is what ocrpipe's intake must wait by its own rule, whatever the rest costs: a new
file is seen at the next poll of ``in/`` and taken once its size and mtime held still for STABLE_SECONDS. So
allowance = (the poll that first saw the file − the drop) + STABLE_SECONDS, the first term read from the
service's own log (its ``seen in in/`` line), between 0 and POLL_SECONDS. Verdict per document: the median over
rounds of (latency − allowance) ÷ ``ocrmypdf`` alone ≤ 1.05. The CPU of the service's process tree (the
scheduler, its workers and the tools they ran) from the drop to the output is reported beside the baseline's.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pikepdf
from sampling import children_cpu_seconds
from service import Service
from targets import long_document, long_document_pages

LATENCY_TARGET = 1.05
ONE_PAGE_SCAN = "ocrmypdf/linn.pdf"
# Upright scans of the corpus, 18 pages in all: none needs turning, so ROTATE_PAGES=auto only adds its checks.
UPRIGHT_SCANS = ("ocrmypdf/linn.pdf", "ocrmypdf/skew.pdf", "ocrmypdf/c02-22.pdf", "ocrmypdf/3small.pdf",
                 "ocrmypdf/ccitt.pdf", "ocrmypdf/jbig2.pdf", "ocrmypdf/epson.pdf", "derived/dibco11_pr1-4.pdf",
                 "derived/leptonica_1555_003.pdf", "derived/paperless_multipage.pdf", "ocrmypdf/francais.pdf")
PAGES = (1, 18)
# The service's log lines that mark a job's steps: (name, start of the message), in their order.
STEPS = (("taken", "new job for "), ("prepStarted", "PREP attempt started"), ("prepared", "prepared "),
         ("ocrStarted", "OCR attempt started"), ("done", "done: "))


def documents(source: Path | None, work: Path) -> dict[int, Path]:
    """The 1-page and the 18-page document: generated (tests/inputs.py), a corpus's upright scans, or the
    PDFs of another folder, cycled."""
    folder = work / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None and (source / "MANIFEST.tsv").is_file():
        parts, one = [source / name for name in UPRIGHT_SCANS], [source / ONE_PAGE_SCAN]
    else:
        parts = long_document_pages(source, work)
        one = parts[:1]
    made = {}
    for pages, of in ((1, one), (18, parts)):
        made[pages] = folder / f"{pages}p.pdf"
        count = long_document(of, pages, made[pages])
        if count != pages:
            raise ValueError(f"the {pages}-page document has {count} pages")
    return made


def variant(document: Path, dest: Path, label: str) -> Path:
    """The document with its own /Title: a new file for ocrpipe, the same pages for OCR."""
    with pikepdf.open(document) as pdf:
        pdf.docinfo["/Title"] = f"latency {label} {time.time()}"
        pdf.save(dest)
    return dest


def job_steps(service: Service, name: str, dropped: float, timeout: float = 30.0) -> dict[str, float]:
    """Seconds from the drop to each step of the job, from the service's log (waits for its ``done`` line)."""
    deadline = time.monotonic() + timeout
    while True:
        service.new_lines()
        found = _job_steps(service.lines, name, dropped)
        if "done" in found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _at(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


def _job_steps(lines: list[dict[str, Any]], name: str, dropped: float) -> dict[str, float]:
    seen = next((line for line in lines if line.get("file") == name and line["message"].startswith("seen in in/")),
                None)
    found = {"seen": round(_at(seen) - dropped, 3)} if seen else {}
    taken = next((line for line in lines if line["message"] == f"new job for {name}"), None)
    key = taken.get("jobKey") if taken else None
    mine = [line for line in lines if key and line.get("jobKey") == key]
    for step, prefix in STEPS:
        hit = next((line for line in mine if line["message"].startswith(prefix)), None)
        if hit is not None:
            found[step] = round(_at(hit) - dropped, 3)
    if "ocrStarted" in found:
        # The tools run since its OCR started: its ocrmypdf calls (a split document's run in threads, whose
        # lines do not name the job); nothing else runs meanwhile.
        begin = dropped + found["ocrStarted"]
        calls = [(_at(line) - float(line["seconds"]), _at(line)) for line in lines
                 if line.get("tool") and line.get("seconds") is not None and _at(line) >= begin
                 and line.get("jobKey") in (None, key)]
        if calls:
            found["ocrmypdfStarted"] = round(min(start for start, _ in calls) - dropped, 3)
            found["ocrmypdfEnded"] = round(max(end for _, end in calls) - dropped, 3)
    return found


def baseline(document: Path, out: Path, env: dict[str, str], cores: int, rotate_pages: str) -> dict[str, Any]:
    """``ocrmypdf`` alone with the options ocrpipe gives it: --output-type auto --skip-text -l --jobs <cores>,
    and under ROTATE_PAGES=auto the same orientation plugin. Its temp files in a folder of its own."""
    from ocrpipe.stages.orientation import PLUGIN, orientation_env
    from ocrpipe.tools.ocrmypdf import build_argv, orientation_args

    tmp = out.with_suffix(".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    call_env = orientation_env({**env, "OMP_THREAD_LIMIT": "1", "TMPDIR": str(tmp)}, rotate_pages)
    argv = build_argv([sys.executable, "-m", "ocrmypdf"], document, out, lang=env["OCR_LANG"], jobs=cores,
                      orientation=orientation_args(rotate_pages, False, PLUGIN))
    cpu, started = children_cpu_seconds(), time.perf_counter()
    # In a session of its own, as ocrpipe starts its tools: where the kernel shares the cores between
    # sessions (Linux's autogroup), a loaded machine then gives both the same share.
    done = subprocess.run(argv, env=call_env, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                          start_new_session=os.name == "posix")
    wall, after = time.perf_counter() - started, children_cpu_seconds()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"seconds": round(wall, 3), "cpuSeconds": round(after - cpu, 2) if cpu is not None and after else None,
            "exitCode": done.returncode}


def measure(service: Service, document: Path, name: str, stable: float) -> dict[str, Any]:
    """One drop: latency, the allowance, the steps and the service's CPU until the output."""
    dropped, cpu_before = service.drop(document, name)
    appeared, cpu_after = service.output(name, dropped)
    steps = job_steps(service, name, dropped)
    latency = appeared - dropped
    allowance = steps["seen"] + stable if "seen" in steps else None
    entry = {"latency": round(latency, 3), "allowance": None if allowance is None else round(allowance, 3),
             "serviceCpuSeconds": round(cpu_after - cpu_before, 2), "steps": steps,
             "afterAllowance": None if allowance is None else round(latency - allowance, 3)}
    if allowance is not None and "ocrmypdfEnded" in steps:
        # ocrpipe's own share of the wait: all but the allowance and the span of its ocrmypdf calls.
        span = steps["ocrmypdfEnded"] - steps["ocrmypdfStarted"]
        entry.update(ocrmypdfSpan=round(span, 3), outsideOcrmypdf=round(latency - allowance - span, 3))
    return entry


def one_round(service: Service, docs: dict[int, Path], n: int, folder: Path, env: dict[str, str], cores: int,
              rotate_pages: str, stable: float) -> dict[int, dict[str, Any]]:
    """Each document dropped into the service and run through ocrmypdf alone, back to back; which goes first
    alternates from round to round."""
    found = {}
    for pages, document in docs.items():
        name = f"r{n}-{pages}p.pdf"
        dropped = variant(document, folder / f"r{n}-{pages}p.source.pdf", name)
        order = ("alone", "ocrpipe") if n % 2 == 0 else ("ocrpipe", "alone")
        results = {}
        for side in order:
            results[side] = (baseline(dropped, folder / "baseline" / name, env, cores, rotate_pages) if side == "alone"
                             else measure(service, dropped, name, stable))
        alone, entry = results["alone"], results["ocrpipe"]
        entry.update(alone=alone["seconds"], aloneCpuSeconds=alone["cpuSeconds"], aloneExitCode=alone["exitCode"],
                     first=order[0])
        if entry["afterAllowance"] is not None and alone["seconds"] > 0:
            entry["ratio"] = round(entry["afterAllowance"] / alone["seconds"], 3)
        if alone["seconds"] > 0:
            # with the poll's delay counted against ocrpipe: comparable with a checkout that does not log it
            entry["ratioWithPoll"] = round((entry["latency"] - stable) / alone["seconds"], 3)
        if alone["cpuSeconds"]:
            entry["cpuRatio"] = round(entry["serviceCpuSeconds"] / alone["cpuSeconds"], 3)
        print(f"latency round {n + 1}, {pages} page(s): {_line(entry)}", file=sys.stderr, flush=True)
        found[pages] = entry
    return found


def service_latency(source: Path | None, work: Path, env: dict[str, str], cores: int, *, rounds: int,
                    rotate_pages: str, repo: Path | None = None) -> dict[str, Any]:
    """Each round, each document: dropped into the running service and run through ocrmypdf alone,
    the two back to back, alternating which goes first. ``repo``: the service is that checkout's ocrpipe
    (its .venv, its folder first on PYTHONPATH): an older one has no ``seen in in/`` line, so its
    allowance is not known and only its latency counts."""
    from ocrpipe.config import load_settings

    env = {**env, "ROTATE_PAGES": rotate_pages}
    # ocrpipe's defaults, unless the caller's environment sets them
    for name in ("STABLE_SECONDS", "POLL_SECONDS", "PREP_CONCURRENCY", "OCR_CONCURRENCY"):
        if name in os.environ:
            env[name] = os.environ[name]
        else:
            env.pop(name, None)
    folder = work / "latency"
    docs = documents(source, folder)
    settings = load_settings({**env, "DATA_DIR": str(folder / "service" / "data")})
    per_doc: dict[int, list[dict[str, Any]]] = {pages: [] for pages in PAGES}
    python = sys.executable
    if repo is not None:
        from startbench import checkout

        other = checkout(repo)
        python, env = other["python"], {**env, "PYTHONPATH": other["repo"]}
    with Service(folder / "service", env, python=python) as service:
        for n in range(rounds):
            for pages, entry in one_round(service, docs, n, folder, env, cores, rotate_pages,
                                          settings.stable_seconds).items():
                per_doc[pages].append(entry)
    report = {f"{pages}p": _verdict(per_doc[pages]) for pages in PAGES}
    return {"ocrpipe": str(repo) if repo is not None else "this checkout", "rotatePages": rotate_pages,
            "pollSeconds": settings.poll_seconds,
            "stableSeconds": settings.stable_seconds, "baseline": f"ocrmypdf --jobs {cores}", "target": LATENCY_TARGET,
            "allowance": "(the poll of in/ that first saw the file - the drop) + STABLE_SECONDS",
            **report, "ok": all(r["ok"] for r in report.values())}


def _line(entry: dict[str, Any]) -> str:
    steps = " ".join(f"{k}={v}" for k, v in entry["steps"].items())
    return (f"latency {entry['latency']} s, allowance {entry['allowance']} s, after it {entry['afterAllowance']} s "
            f"(outside ocrmypdf {entry.get('outsideOcrmypdf')} s); ocrmypdf alone {entry['alone']} s; ratio "
            f"{entry.get('ratio')}; CPU {entry['serviceCpuSeconds']} s (alone {entry['aloneCpuSeconds']} s); "
            f"seconds after the drop: {steps}")


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


MEDIANS = ("latency", "allowance", "afterAllowance", "alone", "outsideOcrmypdf", "serviceCpuSeconds",
           "aloneCpuSeconds")


def _verdict(entries: list[dict[str, Any]]) -> dict[str, Any]:
    ratio = _median([e.get("ratio") for e in entries])
    medians = {key: _median([e.get(key) for e in entries]) for key in MEDIANS}
    ran = all(e["aloneExitCode"] == 0 and e.get("ratio") is not None for e in entries)
    return {"rounds": entries, "median": medians, "medianRatio": ratio,
            "medianRatioWithPoll": _median([e.get("ratioWithPoll") for e in entries]),
            "medianCpuRatio": _median([e.get("cpuRatio") for e in entries]),
            "ok": ran and ratio is not None and ratio <= LATENCY_TARGET}
