"""Orientation benchmark: what ROTATE_PAGES and DESKEW cost on the mixed workload, and how right auto turns pages.

Cost: ocrmypdf, run with the options ocrpipe gives it, on the very PDFs ocrpipe's PREP stage makes of the
mixed workload (bench/workload.py: 21 documents, 42 full pages of prose; or ``--source``), two files at a
time with ``--jobs 1`` as ocrpipe's OCR pool runs them. The variants run interleaved, round after round
(the machine's speed drifts); CPU seconds are compared within a round, and the median over rounds decides.

Accuracy: upright pages (generated prose and short letters; or ``--source``), each also turned 90°, 180° and
270° (the page's /Rotate, so the rasterised page is turned as a scan fed the wrong way round), OCRed with
ROTATE_PAGES=auto and always. A turned page is right when it comes out upright (/Rotate 0 again) and its
text's word recall against its upright original's is at least 0.9; no upright page may be turned.

Usage::

    python bench/orientation.py --out /tmp/orientation.json              # generated inputs
    python bench/orientation.py --rounds 3 --variants off,auto,always,deskew
    python bench/orientation.py --source ../shared/corpus/tesseract --skip-cost
    python bench/orientation.py --upright-scans ../shared/corpus --rounds 3   # the corpus' upright real scans
    python bench/orientation.py --upright-scans ../shared/corpus --skip-accuracy \
        --other-plugin ../old/ocrpipe/tools/ocrpipe_orientation_plugin.py        # this plugin against another

Exit code 0 when the targets are met (auto ≤ 5 % more CPU than off; recall ≥ 0.9 on every turned page;
no upright page turned), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pikepdf  # noqa: E402
import pypdfium2  # noqa: E402

import workload  # noqa: E402  (also puts tests/ on the path, for inputs)
from baselines import raw_pdf_for  # noqa: E402
from inputs import LETTER, MIDI, numbered, pages_pdf, prose_page, text_page, turned  # noqa: E402
from ocrpipe.stages.orientation import PLUGIN, orientation_env, turn_reported_pages  # noqa: E402
from ocrpipe.tools.ocrmypdf import build_argv, orientation_args  # noqa: E402
from sampling import children_cpu_seconds  # noqa: E402
from sources import folder_inputs, upright_scans  # noqa: E402

LANG = "eng"
CPU_TARGET = 1.05  # auto's CPU seconds / off's, on the mixed workload
RECALL_TARGET = 0.9
VARIANTS = {"off": ("off", False), "auto": ("auto", False), "always": ("always", False), "deskew": ("off", True),
            "auto-other": ("auto", False)}  # auto with --other-plugin's file: before/after in one interleaved run
PLUGINS = {"auto-other": PLUGIN}  # set by --other-plugin
_ALWAYS_LINE = re.compile(r"(?:(\d+)\s+)?.*page is facing (\S+), confidence ([\d.]+) - (.*)")
_WORD = re.compile(r"[a-z0-9]+")


def ocrmypdf(src: Path, dst: Path, variant: str, scratch: Path) -> dict[str, Any]:
    """One ocrmypdf call as ocrpipe makes it under ``variant``; the pages auto turned, its stderr."""
    rotate, deskew = VARIANTS[variant]
    tmp = scratch / f"{dst.stem}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = orientation_env({**os.environ, "OMP_THREAD_LIMIT": "1", "TMPDIR": str(tmp)}, rotate)
    argv = build_argv([sys.executable, "-m", "ocrmypdf"], src, dst, lang=LANG, jobs=1,
                      orientation=orientation_args(rotate, deskew, PLUGINS.get(variant, PLUGIN)))
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        return {"exitCode": done.returncode, "stderr": done.stderr[-500:], "reports": [], "turns": {}}
    reports, turns = turn_reported_pages(dst, env)
    return {"exitCode": 0, "stderr": done.stderr, "reports": reports or [], "turns": turns}


def run_all(pdfs: Sequence[Path], out: Path, variant: str, scratch: Path) -> dict[str, Any]:
    """Every PDF, two at a time; CPU seconds of all the calls (Linux: reaped children's rusage)."""
    out.mkdir(parents=True, exist_ok=True)
    before, started = children_cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda src: ocrmypdf(src, out / src.name, variant, scratch), pdfs))
    wall, after = time.perf_counter() - started, children_cpu_seconds()
    return {"variant": variant, "wallSeconds": round(wall, 2),
            "cpuSeconds": round(after - before, 2) if before is not None and after is not None else None,
            "failed": sum(r["exitCode"] != 0 for r in results),
            "pagesChecked": sum(r.get("checked", True) for res in results for r in res["reports"]),
            # poorly read, but upright by their strokes: no orientation detection
            "pagesSpared": sum(not r.get("checked", True) for res in results for r in res["reports"]),
            "pagesTurned": sum(len(r["turns"]) for r in results)}


def cost(pdfs: Sequence[Path], variants: Sequence[str], rounds: int, work: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for n in range(rounds):
        order = list(variants) if n % 2 == 0 else list(reversed(variants))  # neither always runs first
        for variant in order:
            print(f"bench: round {n + 1}, {variant} …", file=sys.stderr, flush=True)
            runs.append({"round": n + 1, **run_all(pdfs, work / f"r{n}-{variant}", variant, work / "tmp")})
    ratios = {}
    for variant in variants:
        per_round = [mine["cpuSeconds"] / off["cpuSeconds"] for n in range(1, rounds + 1)
                     for mine in runs if mine["round"] == n and mine["variant"] == variant
                     for off in runs if off["round"] == n and off["variant"] == "off"
                     if mine["cpuSeconds"] and off["cpuSeconds"]]
        if per_round:
            ratios[variant] = {"cpuVsOff": round(statistics.median(per_round), 3),
                               "perRound": [round(r, 3) for r in per_round]}
    return {"files": len(pdfs), "runs": runs, "ratios": ratios}


def turned_set(upright: Sequence[Path], folder: Path, *, by_rotate: bool) -> list[tuple[Path, int, int, Path]]:
    """Each upright PDF's first page as four one-page PDFs: (pdf, turn, index of the upright page, upright
    pdf). The page is drawn at 300 DPI and the drawing turned, as a scan fed the wrong way round; with
    ``by_rotate``, the page is kept and its /Rotate turns it instead."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n, src in enumerate(upright):
        if not by_rotate:
            doc = pypdfium2.PdfDocument(str(src))
            image = doc[0].render(scale=300 / 72, grayscale=True).to_pil()
            doc.close()
        for turn in (0, 90, 180, 270):
            out = folder / f"{n:02d}-{turn}.pdf"
            if not by_rotate:
                pages_pdf(out, [turned(image, turn)])
            else:
                with pikepdf.open(src) as pdf:
                    del pdf.pages[1:]
                    page = pdf.pages[0]
                    page.obj.Rotate = (int(page.obj.get("/Rotate", 0)) + turn) % 360
                    pdf.save(out)
            made.append((out, turn, n, src))
    return made


def page_words(pdf: Path) -> Counter[str]:
    doc = pypdfium2.PdfDocument(str(pdf))
    try:
        return Counter(_WORD.findall(doc[0].get_textpage().get_text_range().lower()))
    finally:
        doc.close()


def recall(reference: Counter[str], found: Counter[str]) -> float | None:
    total = sum(reference.values())
    return sum((reference & found).values()) / total if total else None


def rotation(pdf: Path) -> int:
    with pikepdf.open(pdf) as doc:
        return int(doc.pages[0].obj.get("/Rotate", 0)) % 360


def shown_upright(pdf: Path, turn: int, by_rotate: bool) -> bool:
    """A drawing turned ``turn``° counter-clockwise needs /Rotate ``turn``; a page turned by its /Rotate, 0."""
    return rotation(pdf) == (0 if by_rotate else turn)


def accuracy(upright: Sequence[Path], variant: str, work: Path, *, by_rotate: bool) -> dict[str, Any]:
    """``variant`` (auto or always) on the turned set: recall per turn, pages left turned, upright pages turned."""
    pages = turned_set(upright, work / "turned", by_rotate=by_rotate)
    out = work / f"out-{variant}"
    out.mkdir(parents=True, exist_ok=True)
    print(f"bench: turned set, {variant} ({len(pages)} pages) …", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: ocrmypdf(p[0], out / p[0].name, variant, work / "tmp"), pages))
    originals = {n: page_words(out / pdf.name) for pdf, turn, n, _ in pages if turn == 0}
    rows = []
    for (pdf, turn, n, src), result in zip(pages, results):
        if result["exitCode"] != 0:
            rows.append({"page": pdf.name, "turn": turn, "failed": result["stderr"]})
            continue
        osd = [m.groups() for m in map(_ALWAYS_LINE.search, result["stderr"].splitlines()) if m]
        report = result["reports"][0] if result["reports"] and result["reports"][0].get("checked", True) else {}
        rows.append({"page": pdf.name, "source": src.name, "turn": turn, "rotateAfter": rotation(out / pdf.name),
                     "shownUpright": shown_upright(out / pdf.name, turn, by_rotate),
                     "recall": recall(originals[n], page_words(out / pdf.name)) if turn else None,
                     "words": sum(originals[n].values()),
                     "osdConfidence": report.get("confidence") if variant == "auto" else
                     (float(osd[0][2]) if osd else None),
                     "checked": bool(report) if variant == "auto" else None,
                     # auto: confidence as read and upright again, share of characters in words read well
                     **({key: report[key] for key in ("before", "after", "sureShare") if key in report})})
    # A page without text (a photo) has nothing to read: auto leaves it as it is; reported apart.
    text_rows = [r for r in rows if r.get("words")]
    blank_rows = [r for r in rows if not r.get("words") and r.get("turn")]
    by_turn = {}
    for turn in (90, 180, 270):
        values = [r["recall"] for r in text_rows if r.get("turn") == turn and r.get("recall") is not None]
        upright_again = sum(bool(r.get("shownUpright")) for r in text_rows if r.get("turn") == turn)
        by_turn[str(turn)] = {"pages": sum(r.get("turn") == turn for r in text_rows), "uprightAfter": upright_again,
                              "recallMin": round(min(values), 3) if values else None,
                              "recallMedian": round(statistics.median(values), 3) if values else None}
    left = sum(r["rotateAfter"] == (r["turn"] if by_rotate else 0) for r in blank_rows)
    return {"variant": variant, "byTurn": by_turn, "pages": rows,
            "turnedPagesWithoutText": {"pages": len(blank_rows), "leftAsTheyWere": left},
            "uprightTurnedByMistake": sum(r.get("turn") == 0 and not r.get("shownUpright") for r in rows),
            "failed": sum("failed" in r for r in rows)}


def generated_upright(folder: Path) -> list[Path]:
    """Three full pages of prose (one grey, speckled and skewed) and three short letters."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = [prose_page(seed) for seed in (1, 2, 3)]
    pages += [text_page(LETTER), text_page(MIDI), text_page(numbered(2, 5))]
    return [pages_pdf(folder / f"upright{n}.pdf", [page]) for n, page in enumerate(pages)]


def prepared(sources: Sequence[Path], folder: Path) -> list[Path]:
    """The raw.pdf ocrpipe's PREP stage makes of each source."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n, src in enumerate(sources):
        out = folder / f"{n:03d}.pdf"
        try:
            raw_pdf_for(src, out, folder / f"{n:03d}.unpacked")
        except Exception as exc:  # noqa: BLE001 — ocrpipe would refuse it too: not part of the figures
            print(f"bench: {src.name} left out: {exc}", file=sys.stderr)
            continue
        made.append(out)
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a folder of scans instead of the generated inputs")
    parser.add_argument("--other-plugin", type=Path, metavar="FILE",
                        help="also run auto with this orientation plugin (another checkout's "
                             "ocrpipe/tools/ocrpipe_orientation_plugin.py), interleaved: variant auto-other")
    parser.add_argument("--upright-scans", type=Path, metavar="CORPUS",
                        help="the corpus' upright real scans (18 pages: sources.UPRIGHT_SCANS) instead of --source")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="off,auto", help="of off, auto, always, deskew (off always runs)")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--turn-by-rotate", action="store_true",
                        help="turn the set's pages by their /Rotate instead of turning their drawing")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    variants = ["off", *[v for v in args.variants.split(",") if v in VARIANTS and v not in ("off", "auto-other")]]
    if args.other_plugin:
        PLUGINS["auto-other"] = args.other_plugin.resolve()
        variants.append("auto-other")
    if args.upright_scans:
        args.source = args.upright_scans
    report: dict[str, Any] = {"source": (f"{args.source} (upright scans)" if args.upright_scans else str(args.source))
                              if args.source else "generated"}
    with tempfile.TemporaryDirectory(prefix="ocrpipe-orientation-") as tmp:
        work = Path(tmp)
        if args.source:
            sources = [path for path, _ in (upright_scans(args.source) if args.upright_scans
                                            else folder_inputs(args.source))]
        else:
            sources = [path for path, _ in workload.generated_scans(work / "workload")]
        if not args.skip_cost:
            report["cost"] = cost(prepared(sources, work / "raw"), variants, args.rounds, work / "cost")
        if not args.skip_accuracy:
            upright = prepared(sources, work / "raw-acc") if args.source else generated_upright(work / "upright")
            report["accuracy"] = [accuracy(upright, variant, work / f"acc-{variant}", by_rotate=args.turn_by_rotate)
                                  for variant in ("auto", "always")]
    report["verdict"] = verdict(report)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(json.dumps(report["verdict"], indent=2) if args.out else text)
    return 0 if all(report["verdict"].values()) else 1


def verdict(report: dict[str, Any]) -> dict[str, bool]:
    met = {}
    auto_cost = report.get("cost", {}).get("ratios", {}).get("auto")
    if auto_cost:
        met["autoCpuWithin5PercentOfOff"] = auto_cost["cpuVsOff"] <= CPU_TARGET
    for run in report.get("accuracy", []):
        if run["variant"] == "auto":
            met["everyTurnedPageRecall0.9"] = all(
                t["recallMin"] is not None and t["recallMin"] >= RECALL_TARGET and t["uprightAfter"] == t["pages"]
                for t in run["byTurn"].values())
            met["noUprightPageTurned"] = run["uprightTurnedByMistake"] == 0
    return met


if __name__ == "__main__":
    sys.exit(main())
