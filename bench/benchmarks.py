"""ocrpipe benchmark: N conversions through ``ocrpipe run --once``, compared with plain ocrmypdf.

For each PREP_CONCURRENCY x OCR_CONCURRENCY combination it copies the same N inputs into a fresh
data folder's ``in/``, runs ``python -m ocrpipe run --once`` as a subprocess, samples the whole
process tree with psutil every ~0.2 s (CPU utilisation, peak RSS of the scheduler and of the tree),
then reads the job index (DONE/ERROR counts, pages, PREP and OCR seconds per job).

Baselines (real tools only) run ocrmypdf directly on the very PDFs ocrpipe hands to it (built,
untimed, with ocrpipe's own assembly code): one file after the other with ``--jobs <cores>``, and
``<cores>`` files at a time with ``--jobs 1``. The report gives ocrpipe's wall time relative to the
best baseline and to the physical limit (CPU seconds of the file-parallel baseline / cores).

Usage::

    python bench/benchmarks.py --smoke --out /tmp/smoke.json       # CI: 3 small files, < 1 min
    python bench/benchmarks.py --files 21 --ocr-concurrency 1,2     # 21 generated documents, 42 pages
    python bench/benchmarks.py --source ../shared/corpus            # your own files (a corpus: its scans)
    python bench/benchmarks.py --rounds 3                           # the same 3 times, median ratios
    python bench/benchmarks.py --fake-tools --files 1000            # the pipeline's own overhead
    python bench/benchmarks.py --dask-local 2 --rounds 3            # OCR on a local Dask cluster vs the pool
    python bench/benchmarks.py --executor tcp://host:8786           # ... on your cluster (bench/daskbench.py)
    python bench/benchmarks.py --empty-run 9 --ocrpipe-repo ../main # an empty run --once, before/after
    python bench/benchmarks.py --latency --rounds 5                 # a running service: drop -> out/ (latencybench.py)

Exit code: 0 when every ocrpipe run exited 0 and finished every job; 1 otherwise; 2 bad usage.
Without ``--source`` the inputs are generated (tests/inputs.py): nothing outside the repository is read.

This file is the command line; the parts are in its neighbours: ``sources.py`` chooses the inputs and makes
each unique (``workload.py`` generates the default ones), ``runs.py`` runs ocrpipe and measures it (with
``sampling.py``), ``baselines.py`` runs plain ocrmypdf, ``reports.py`` gives the ratios, the median over
rounds and the table; ``targets.py`` and the other ``*bench.py`` hold the single measurements (``service.py``
runs ocrpipe as a service for ``latencybench.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench's other modules, under python -m too

from baselines import prepare_baseline_pdfs, run_baselines  # noqa: E402
from reports import (  # noqa: E402
    NOTES, add_ratios, fidelity_vs_alone, input_summary, machine_info, print_report, round_summary, tool_versions,
    write_report,
)
from runs import FAKE_TOOL, LANG, REPO, benchmark_run, ocrpipe_env  # noqa: E402
from sampling import SAMPLE_SECONDS, cores  # noqa: E402
from sources import (  # noqa: E402
    BenchError, InputFile, corpus_inputs, folder_inputs, generated_inputs, is_corpus, materialise_inputs,
)
from startbench import add_empty_run_arguments  # noqa: E402


def ensure_ocrpipe_importable() -> None:
    """Use this checkout's ocrpipe even when the package is not installed."""
    if importlib.util.find_spec("ocrpipe") is None:
        sys.path.insert(0, str(REPO))


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected numbers >= 1, got {text!r}")
    return list(dict.fromkeys(values))  # a repeated value would run the same combination twice


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int,
                        help="number of conversions (default 21; 1000 with --fake-tools; 3 with --smoke)")
    parser.add_argument("--source", type=Path,
                        help="folder of PDFs, images and archives; a corpus folder (with MANIFEST.tsv) gives its "
                             "scans (default: 21 generated documents, 42 pages)")
    parser.add_argument("--prep-concurrency", type=int_list, help="comma list, e.g. 1,2 (default 1)")
    parser.add_argument("--ocr-concurrency", type=int_list,
                        help=f"comma list, e.g. 1,2,4 (default {cores()}, the cores)")
    parser.add_argument("--out", type=Path, default=Path("bench-report.json"), help="JSON report (default %(default)s)")
    parser.add_argument("--fake-tools", action="store_true", help="fake 7z/ocrmypdf: the pipeline's own overhead")
    parser.add_argument("--fake-ocr-seconds", type=float, default=0.0, help="fake ocrmypdf duration (default 0)")
    parser.add_argument("--fake-7z-seconds", type=float, default=0.0, help="fake 7z duration (default 0)")
    parser.add_argument("--smoke", action="store_true",
                        help="3 small generated files, real tools, one combination: CI check")
    parser.add_argument("--no-baselines", action="store_true", help="skip the plain-ocrmypdf baselines")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat everything N times, baselines and ocrpipe back to back, and report the "
                             "median ratios: a shared machine's speed drifts (default 1)")
    parser.add_argument("--plot", type=Path, metavar="FILE.svg",
                        help="also draw the report as an SVG: wall time per round, ratios, concurrency sweep")
    parser.add_argument("--keep", type=Path, help="keep the work folder here (must be empty or new)")
    cluster = parser.add_argument_group("the OCR stage on Dask against the local pool, same files, interleaved "
                                        "(bench/daskbench.py)")
    cluster.add_argument("--executor", metavar="ADDR", help="a Dask scheduler whose workers mount the data folder")
    cluster.add_argument("--dask-local", type=int, metavar="N",
                         help="start dask scheduler and N 'ocrpipe worker --nthreads 1' here")
    targets = parser.add_argument_group("single measurements (run instead of the sweep)")
    targets.add_argument("--single-doc", type=int, metavar="PAGES",
                         help="one document of PAGES pages against ocrmypdf --jobs <cores>, like for like (target "
                              "1.03x its wall on fewer than 8 cores, 0.90x on 8 or more; CPU reported)")
    targets.add_argument("--scan-set", choices=("mixed", "upright"), default="mixed",
                         help="with --single-doc and a corpus --source: its mixed scans (one with turned pages) or "
                              "18 upright ones (default %(default)s)")
    targets.add_argument("--rotate-pages", choices=("off", "auto"), default="off",
                         help="with --single-doc and --latency: ocrpipe's ROTATE_PAGES; auto gives the baseline "
                              "ocrpipe's orientation plugin too (default %(default)s: like for like)")
    targets.add_argument("--tick-history", type=int, metavar="N",
                         help="duration of one scheduler tick with N finished jobs in the history (target 50 ms)")
    targets.add_argument("--index-history", type=int, metavar="N",
                         help="run --once, status and the duplicate lookup with N finished jobs in the job index, "
                              "imported from an N-line jobs.jsonl (targets 1.3x an empty index, 150 MB, 1 s, 5 ms)")
    targets.add_argument("--hostile", action="store_true",
                         help="PREP worker peak memory on a 20,000 x 20,000 page, work folder size during a lying bomb")
    targets.add_argument("--http-jobs", type=int, metavar="N",
                         help="HTTP API request times with N finished jobs in the index, and the tick cost of "
                              "publishing its snapshot (targets 100 ms, 1 ms)")
    add_empty_run_arguments(targets)
    targets.add_argument("--latency", action="store_true",
                         help="a running service: drop to output in out/ for 1 and 18 pages against ocrmypdf alone "
                              "(target 1.05x + the stability wait; bench/latencybench.py); with --fake-tools, "
                              "drop to the start of PREP (target POLL + STABLE + 0.5 s)")
    return parser


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    if args.files is None:
        args.files = 3 if args.smoke else 1000 if args.fake_tools else 21
    if args.files < 1:
        raise BenchError("--files must be at least 1")
    if args.rounds < 1:
        raise BenchError("--rounds must be at least 1")
    if args.smoke:
        args.rounds = 1
    args.prep_concurrency = args.prep_concurrency or [1]
    args.ocr_concurrency = args.ocr_concurrency or [cores()]
    if args.smoke:
        args.prep_concurrency, args.ocr_concurrency = args.prep_concurrency[:1], args.ocr_concurrency[:1]
    args.baselines = not (args.no_baselines or args.fake_tools)
    if args.source is not None and not args.source.is_dir():
        raise BenchError(f"--source {args.source} is not a folder")
    if args.fake_tools and not FAKE_TOOL.is_file():
        raise BenchError(f"--fake-tools needs {FAKE_TOOL}")
    return args


def make_inputs(args: argparse.Namespace, work: Path) -> list[InputFile]:
    dest = work / "inputs"
    if args.fake_tools and args.source is None:
        return generated_inputs(args.files, dest)
    from workload import generated_scans, smoke_inputs

    if args.source is not None:
        order = corpus_inputs(args.source) if is_corpus(args.source) else folder_inputs(args.source)
    elif args.smoke:
        order = smoke_inputs(work / "generated")
    else:
        order = generated_scans(work / "generated")
    if not order:
        raise BenchError("no input files found")
    return materialise_inputs(order, args.files, dest)


@dataclass
class WorkDir:
    """The bench's scratch folder: a temporary one, or --keep's."""

    keep: Path | None
    path: Path = field(init=False)

    def __enter__(self) -> Path:
        if self.keep is None:
            self.path = Path(tempfile.mkdtemp(prefix="ocrpipe-bench-"))
        else:
            if self.keep.exists() and any(self.keep.iterdir()):
                raise BenchError(f"--keep {self.keep} is not empty")
            self.keep.mkdir(parents=True, exist_ok=True)
            self.path = self.keep.resolve()
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.keep is None:
            shutil.rmtree(self.path, ignore_errors=True)


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"files": args.files, "source": str(args.source) if args.source else
            ("generated:smoke" if args.smoke else "generated"),
            "prepConcurrency": args.prep_concurrency, "ocrConcurrency": args.ocr_concurrency,
            "fakeTools": args.fake_tools, "fakeOcrSeconds": args.fake_ocr_seconds,
            "fake7zSeconds": args.fake_7z_seconds, "smoke": args.smoke, "baselines": args.baselines,
            "rounds": args.rounds,
            "ocrLang": LANG, "stableSeconds": 0, "pollSeconds": 0.2, "sampleSeconds": SAMPLE_SECONDS}


def run_targets(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The single measurements asked for, each with its target and verdict."""
    from targets import drop_latency, long_document_pages, single_document, tick_with_history

    report: dict[str, Any] = {"benchmark": "ocrpipe targets", "machine": machine_info()}
    if args.single_doc:
        env = ocrpipe_env(1, cores(), argparse.Namespace(fake_tools=False))
        env.update(STABLE_SECONDS="0", POLL_SECONDS="0.2")
        try:
            parts = long_document_pages(args.source, work, choice=args.scan_set)
            report["singleDocument"] = single_document(parts, args.single_doc, work, env, cores(), rounds=args.rounds,
                                                       rotate_pages=args.rotate_pages, repos=args.ocrpipe_repo,
                                                       scan_set=args.scan_set if args.source else "generated")
        except ValueError as exc:
            raise BenchError(str(exc)) from None
    if args.tick_history:
        report["tick"] = tick_with_history(args.tick_history, work)
    if args.index_history:
        from indexbench import index_history

        report["indexHistory"] = index_history(args.index_history, work, ocrpipe_env(1, cores(), argparse.Namespace(
            fake_tools=True, fake_ocr_seconds=0.0, fake_7z_seconds=0.0)))
    if args.hostile:
        from hostilebench import hostile

        report["hostile"] = hostile(work / "hostile")
    if args.http_jobs is not None:
        from api_targets import api_over_history

        report["httpApi"] = api_over_history(args.http_jobs, work)
    if args.empty_run:
        from startbench import empty_runs

        report["emptyRun"] = empty_runs(args.empty_run, work, args.ocrpipe_repo)
    if args.latency and args.fake_tools:
        report["latency"] = drop_latency(work, ocrpipe_env(1, cores(), args))
    elif args.latency:
        from latencybench import service_latency

        report["latency"] = service_latency(args.source, work, ocrpipe_env(1, cores(), args), cores(),
                                            rounds=args.rounds, rotate_pages=args.rotate_pages,
                                            repo=args.ocrpipe_repo[0] if args.ocrpipe_repo else None)
    report["ok"] = all(v["ok"] for v in report.values() if isinstance(v, dict) and "ok" in v)
    return report


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if args.executor or args.dask_local:
        from daskbench import run_comparison

        inputs = make_inputs(args, work)
        env = ocrpipe_env(args.prep_concurrency[0], args.ocr_concurrency[0], args)
        return {"benchmark": "ocrpipe-dask", "machine": machine_info(), "settings": settings_of(args),
                **run_comparison(args, [i.path for i in inputs], env, work)}
    if (args.single_doc or args.tick_history or args.latency or args.index_history or args.hostile
            or args.http_jobs is not None or args.empty_run):
        return run_targets(args, work)
    started = datetime.now(timezone.utc)
    inputs = make_inputs(args, work)
    env = ocrpipe_env(args.prep_concurrency[0], args.ocr_concurrency[0], args)
    report: dict[str, Any] = {"benchmark": "ocrpipe", "startedAt": started.isoformat(timespec="seconds"),
                              "machine": machine_info(), "tools": tool_versions(env), "settings": settings_of(args),
                              "inputs": input_summary(inputs)}
    pdfs, skipped = prepare_baseline_pdfs(inputs, work / "baseline" / "raw") if args.baselines else ([], [])
    report["rounds"] = []
    for round_no in range(args.rounds):
        # Alternate which goes first, so a drift of the machine's speed does not always favour one side.
        baselines_first = round_no % 2 == 0
        round_dir = work / "baseline" / f"round{round_no}"
        baselines = run_baselines(pdfs, skipped, round_dir) if args.baselines and baselines_first else None
        runs = [benchmark_run(inputs, work, prep, ocr, args, round_no)
                for prep, ocr in itertools.product(args.prep_concurrency, args.ocr_concurrency)]
        if args.baselines and not baselines_first:
            baselines = run_baselines(pdfs, skipped, round_dir)
        for run in runs:
            add_ratios(run, baselines)
            if baselines:
                run["outputFidelity"] = fidelity_vs_alone(inputs, pdfs, round_dir / "out-parallel", work, run)
        report["rounds"].append({"round": round_no, "baselines": baselines, "runs": runs})
    report["summary"] = round_summary(report["rounds"], len(inputs))
    report["ok"] = all(r["ok"] for rnd in report["rounds"] for r in rnd["runs"])
    report["notes"] = NOTES
    report["finishedAt"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return report


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so the finally blocks stop ocrpipe and remove the work folder


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _sigterm)
    ensure_ocrpipe_importable()
    try:
        args = resolve_args(args)
        with WorkDir(args.keep) as work:
            report = run_benchmark(args, work)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    write_report(report, args.out)
    if args.plot:
        from plot import plot

        plot(report, args.plot)
        print(f"plot: {args.plot}")
    print_report(report)
    print(f"report: {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
