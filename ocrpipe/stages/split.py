"""OCR of one long document as page ranges in concurrent ocrmypdf calls, so one call's serial phases
(start, text-layer graft, PDF/A) overlap another's page work; merged back and checked, then published.
A range is the pages one call OCRs, chosen for equal estimated work (rangeplan), not always consecutive.

A range that fails is run again alone; should it fail again, or the merge not pass its checks, the
split fails at no attempt's cost and the document is OCRed whole (lifecycle: ``splitFailed``).
Range outputs are kept in ``split/`` beside a plan: a restart after a crash between the ranges and
the merge finishes the merge from the ranges already done, never publishing a partial document."""

from __future__ import annotations

import contextvars
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pikepdf

from ocrpipe.config import Settings
from ocrpipe.errors import DiskFullError, SplitFailed, StageError
from ocrpipe.folders.fsutil import atomic_write_json, read_json, remove_tree
from ocrpipe.folders.layout import FINAL_PDF, RAW_PDF, TMP_DIR
from ocrpipe.folders.outcome import StageOutcome
from ocrpipe.folders.store import read_state
from ocrpipe.model import Stage, normalise_languages
from ocrpipe.stages.autolang import SIDECAR, Reader, read_in_own_language
from ocrpipe.stages.common import run_stage, tool_env
from ocrpipe.stages.ocr import ocr_whole, publish, verify_output
from ocrpipe.stages.ocrtext import sidecar_pages
from ocrpipe.stages.orientation import (
    merged_range_fields,
    ocrmypdf_options,
    orientation_env,
    save_range_fields,
    turn_reported_pages,
)
from ocrpipe.stages.pagemerge import check_merged, cut_range, graft, split_blocker
from ocrpipe.stages.pdfa import batch_spoiled, optimizer_unused, pdfa_flavours, run_fields
from ocrpipe.stages.rangeplan import balanced_ranges, describe_pages, document_work
from ocrpipe.stages.reading import (
    call_readings,
    merged_range_readings,
    reading_env,
    reading_options,
    save_range_readings,
    save_readings,
)
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.tools.run import run_tool

SPLIT_DIR = "split"
PLAN_FILE = "plan.json"
log = logging.getLogger("ocrpipe.ocr")


def run_ocr_split(settings: Settings, job_dir: Path, *, pages: int, parts: int, jobs: int,
                  attempts: dict[str, int]) -> StageOutcome:
    """Pool entry point: runs in a spawned worker; publishes the merged result itself."""
    return run_stage(settings, Stage.OCR, job_dir, lambda: _split_ocr(settings, job_dir, pages=pages, parts=parts,
                                                                      jobs=jobs),
                     attempts=attempts, finish=lambda outcome: publish(settings, job_dir, outcome))


def _split_ocr(settings: Settings, job_dir: Path, *, pages: int, parts: int, jobs: int, lang: str | None = None,
               sidecar: Path | None = None) -> dict[str, Any]:
    """``lang``: the languages of this reading (OCR_LANG=auto chooses them); ``sidecar``: keep its text
    (in each range's sidecar, or this one when the document is read whole)."""
    record = read_state(job_dir)
    blocker = ("it is signed" if record.get("signed") else
               f"its PDF/A needs Ghostscript ({record['ghostscriptReason']})" if record.get("ghostscriptReason") else
               split_blocker(job_dir / RAW_PDF))
    if blocker:  # found here, in the worker: the scheduler reads no PDF
        log.info("OCRed whole, not split: %s", blocker)
        return ocr_whole(settings, job_dir, pages=pages, jobs=settings.cpu_count, lang=lang, sidecar=sidecar)
    if lang is None and settings.ocr_lang == "auto":
        read = _split_reader(settings, job_dir, pages=pages, parts=parts, jobs=jobs)
        return read_in_own_language(settings, job_dir, pages=pages, jobs=jobs, read=read)
    ranges = plan_ranges(job_dir / RAW_PDF, parts)
    folder = _prepared_folder(job_dir, ranges, lang)
    outputs = _ocr_ranges(settings, folder, ranges, jobs=jobs, lang=lang, text=sidecar is not None)
    return _merge(settings, job_dir, folder, outputs, ranges, pages=pages, predicted=record.get("ghostscriptReason"))


def plan_ranges(raw: Path, parts: int) -> list[list[int]]:
    """The page ranges of ``raw`` (page indices), of about equal estimated work: the same ones on every
    attempt (a restart finds the plan of the ranges it left in ``split/``)."""
    with pikepdf.open(raw) as pdf:
        work = document_work(pdf)
    return balanced_ranges(work, min(parts, len(work)))


def _split_reader(settings: Settings, job_dir: Path, *, pages: int, parts: int, jobs: int) -> Reader:
    """OCR_LANG=auto's readings of a split document: its ranges, each with its text kept."""
    def read(reading: str, text: bool) -> tuple[dict[str, Any], list[str | None] | None]:
        sidecar = job_dir / TMP_DIR / SIDECAR if text else None
        fields = _split_ocr(settings, job_dir, pages=pages, parts=parts, jobs=jobs, lang=reading, sidecar=sidecar)
        if sidecar is None:
            return fields, None
        if not fields.get("splitInto"):  # read whole after all
            return fields, sidecar_pages(sidecar, pages)
        return fields, _range_texts(job_dir / SPLIT_DIR, pages)

    return read


def _range_texts(folder: Path, pages: int) -> list[str | None]:
    """Each page's text, from the sidecars of the ranges that read it."""
    texts: list[str | None] = [None] * pages
    ranges = read_json(folder / PLAN_FILE)["ranges"]
    for n, indices in enumerate(ranges):
        for index, text in zip(indices, sidecar_pages(folder / f"range-{n}.txt", len(indices)), strict=True):
            texts[index] = text
    return texts


def _prepared_folder(job_dir: Path, ranges: list[list[int]], lang: str | None = None) -> Path:
    """``split/`` for these ranges of this raw.pdf (in these languages): kept from a crashed attempt with
    the same plan (its finished ranges are reused), else made afresh."""
    folder, raw = job_dir / SPLIT_DIR, (job_dir / RAW_PDF).stat()
    plan = {"ranges": ranges, "raw": [raw.st_size, raw.st_mtime_ns], **({"lang": lang} if lang else {})}
    try:
        if read_json(folder / PLAN_FILE) == plan:
            return folder
    except (OSError, ValueError):
        pass
    remove_tree(folder)
    folder.mkdir()
    atomic_write_json(folder / PLAN_FILE, plan)
    return folder


def _range_paths(folder: Path, n: int) -> tuple[Path, Path]:
    return folder / f"range-{n}.pdf", folder / f"range-{n}.ocr.pdf"


def _finished(output: Path, pages: int) -> bool:
    try:
        verify_output(output, expected_pages=pages)
        return True
    except StageError:
        return False


def _ocr_ranges(settings: Settings, folder: Path, ranges: list[list[int]], *, jobs: int, lang: str | None = None,
                text: bool = False) -> list[Path]:
    """Each range's OCRed PDF: the ones not finished yet run together; one that fails runs again alone."""
    remove_tree(folder / TMP_DIR)  # what a killed attempt's ocrmypdf calls left behind
    todo = [n for n, pages in enumerate(ranges) if not _finished(_range_paths(folder, n)[1], len(pages))]
    if len(todo) < len(ranges):
        log.info("reusing %d OCRed range(s) of an interrupted attempt", len(ranges) - len(todo))

    def one(n: int, page_workers: int) -> BaseException | None:
        try:
            _ocr_range(settings, folder, n, ranges[n], jobs=page_workers, lang=lang, text=text)
            return None
        except (StageError, OSError) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, len(todo))) as threads:
        # Each thread keeps this one's log context (job key, attempt).
        failed = [(n, exc) for n, exc in zip(todo, threads.map(
            lambda n: contextvars.copy_context().run(one, n, jobs), todo), strict=False) if exc is not None]
    for n, first in failed:
        log.warning("range of pages %s failed (%s); running it again alone", describe_pages(ranges[n]), first)
        again = one(n, settings.cpu_count)
        if isinstance(again, DiskFullError):
            raise again
        if again is not None:
            raise SplitFailed(f"pages {describe_pages(ranges[n])} failed twice ({again}); "
                              "OCRing the document whole")
    return [_range_paths(folder, n)[1] for n in range(len(ranges))]


def _ocr_range(settings: Settings, folder: Path, n: int, pages: list[int], *, jobs: int, lang: str | None = None,
               text: bool = False) -> None:
    source, output = _range_paths(folder, n)
    sidecar = folder / f"range-{n}.partial.txt" if text else None
    partial = folder / f"range-{n}.partial.pdf"  # ocrmypdf does not write its output atomically
    cut = folder / f"range-{n}.cut.pdf"
    cut_range(folder.parent / RAW_PDF, pages, cut)
    os.replace(cut, source)
    count = len(pages)
    argv = build_argv(settings.ocrmypdf, source, partial, lang=lang or normalise_languages(settings.ocr_lang),
                      jobs=jobs, extra_args=settings.ocr_args, max_image_mpixels=settings.max_image_mpixels,
                      pdfa=settings.pdfa, orientation=[*ocrmypdf_options(settings), *reading_options(settings)],
                      sidecar=sidecar)
    env = reading_env(orientation_env(tool_env(settings, folder), settings.rotate_pages, f"orientation-{n}",
                                      documents=[count]), f"readings-{n}")
    result = run_tool(argv, timeout=settings.ocr_timeout_for(count), env=env, log_path=folder / f"range-{n}.log")
    raise_for_exit(result)
    verify_output(partial, expected_pages=count)
    # The range's pages keep their /Rotate through the merge.
    save_range_fields(folder / f"range-{n}.orientation.json", pages, *turn_reported_pages(partial, env))
    if sidecar is not None:
        os.replace(sidecar, folder / f"range-{n}.txt")  # before the output: a finished range has its text
    save_range_readings(folder / f"range-{n}.readings.json", pages, call_readings(env, count))
    os.replace(partial, output)


def _merge(settings: Settings, job_dir: Path, folder: Path, outputs: list[Path], ranges: list[list[int]], *,
           pages: int, predicted: str | None) -> dict[str, Any]:
    logs = [folder / f"range-{n}.log" for n in range(len(outputs))]
    # ocrmypdf decides some things over a whole call; a range must have decided as the whole would.
    for tool_log in logs:
        spoiled = batch_spoiled(tool_log)
        if spoiled:
            raise SplitFailed(f"{spoiled} in one range; OCRing the document whole")
    if len({optimizer_unused(tool_log) for tool_log in logs}) > 1:
        raise SplitFailed("ocrmypdf's optimizer kept its work for some ranges only; OCRing the document whole")
    flavours = pdfa_flavours(outputs)
    if len(flavours) > 1:
        raise SplitFailed("the ranges came out as different kinds of PDF/A; OCRing the document whole")
    flavour = flavours.pop()
    tool_log = job_dir / "ocr.log"
    tool_log.write_text("".join(path.read_text(errors="replace") for path in logs if path.is_file()))
    partial = job_dir / "final.partial.pdf"
    try:
        checked = graft(job_dir / RAW_PDF, outputs, ranges, partial, flavour)
        problem = check_merged(partial, pages=pages, flavour=flavour, pdfa_checked=checked)
    except Exception as exc:  # noqa: BLE001 — the split is only a speed-up: any fault of it, the document runs whole
        log.error("merging the page ranges failed", exc_info=True)
        raise SplitFailed(f"the ranges could not be merged ({type(exc).__name__}: {exc}); "
                          "OCRing the document whole") from None
    if problem:
        partial.unlink(missing_ok=True)
        raise SplitFailed(f"{problem}; OCRing the document whole")
    pdfa = verify_output(partial, expected_pages=pages)
    fields = run_fields(pdfa_setting=settings.pdfa, raw=job_dir / RAW_PDF, output=partial, pdfa=pdfa,
                        tool_log=tool_log, predicted=predicted)
    save_readings(job_dir, merged_range_readings(
        [folder / f"range-{n}.readings.json" for n in range(len(outputs))], pages))
    os.replace(partial, job_dir / FINAL_PDF)
    log.info("OCRed as %d page ranges in concurrent calls, merged and checked", len(ranges))
    turned = merged_range_fields([folder / f"range-{n}.orientation.json" for n in range(len(outputs))])
    return {"pdfa": pdfa, "splitInto": len(ranges), **fields, **turned}
