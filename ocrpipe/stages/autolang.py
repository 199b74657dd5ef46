"""OCR_LANG=auto, the readings: the first in OCR_LANG_DEFAULT with its text kept (ocrmypdf's sidecar),
the language decided (stages/language.py), then, for a document in another candidate, a second reading
in ``<detected>+<default>`` kept in place of the first: of the whole document, or of only the pages in
another language, grafted into the first reading as a split document's ranges are."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pikepdf

from ocrpipe.config import Settings
from ocrpipe.errors import RedoAlone, StageError
from ocrpipe.folders.fsutil import remove_tree
from ocrpipe.folders.layout import FINAL_PDF, RAW_PDF, TMP_DIR
from ocrpipe.folders.store import read_state
from ocrpipe.stages.common import tool_env
from ocrpipe.stages.language import Plan, chars_of, describe, identify, load_plan, needs_script_check, save_plan
from ocrpipe.stages.ocrtext import sidecar_pages
from ocrpipe.stages.orientation import ocrmypdf_options, orientation_env, turn_reported_pages
from ocrpipe.stages.pagemerge import check_merged, cut_range, graft, split_blocker
from ocrpipe.stages.pdfa import batch_spoiled, optimizer_unused, pdfa_flavours
from ocrpipe.tools.check import lang_candidates, tesseract_languages
from ocrpipe.tools.ocrmypdf import build_argv, raise_for_exit
from ocrpipe.tools.run import run_tool
from ocrpipe.tools.tesseract import detect_script

log = logging.getLogger("ocrpipe.ocr")

SIDECAR = "sidecar.txt"  # inside the call's tmp/ folder
SCRIPT_DPI = 150  # enough for Tesseract's script detection, at a quarter of the pixels of a 300 dpi page

# A reading: its languages ("eng", "eng+fra") and whether its text is wanted -> its fields and the text
# of each page (None: not wanted, or not read).
Reader = Callable[[str, bool], tuple[dict[str, Any], list[str | None] | None]]


@functools.lru_cache(maxsize=4)
def candidates(settings: Settings) -> list[str]:
    """The candidates: as ``ocrpipe run`` resolved them (tools/check.with_candidates), or, should a
    worker get settings without (OCR_LANG_CANDIDATES unset), the languages Tesseract has here."""
    installed = None if settings.ocr_lang_candidates else tesseract_languages(settings)
    return lang_candidates(settings, installed)


def decide(settings: Settings, texts: Sequence[str | None], raw: Path, env: Mapping[str, str], scratch: Path,
           first: int = 0) -> Plan:
    """The plan for the document whose pages read ``texts``; its pages are ``raw``'s from index ``first``."""
    langs = candidates(settings)
    scripts = {}
    if needs_script_check(langs, settings.ocr_lang_default):
        scripts = page_scripts(settings, raw, [n for n, t in enumerate(texts) if chars_of(t)], env, scratch, first)
    return identify(texts, langs, settings.ocr_lang_default, scripts)


def page_scripts(settings: Settings, pdf: Path, pages: Sequence[int], env: Mapping[str, str], scratch: Path,
                 first: int = 0) -> dict[int, tuple[str, float]]:
    """The script Tesseract's orientation data names on each of ``pages`` that has text, where it can tell."""
    import pypdfium2

    found: dict[int, tuple[str, float]] = {}
    scratch.mkdir(parents=True, exist_ok=True)
    document = pypdfium2.PdfDocument(str(pdf))
    try:
        for n in pages:
            image = scratch / f"script-{n}.png"
            document[first + n].render(scale=SCRIPT_DPI / 72, grayscale=True).to_pil().save(image)
            script = detect_script(settings.tesseract, image, env=env)
            image.unlink(missing_ok=True)
            if script:
                found[n] = script
    finally:
        document.close()
    return found


def read_in_own_language(settings: Settings, job_dir: Path, *, pages: int, jobs: int, read: Reader) -> dict[str, Any]:
    """The document read in its own language: the fields of the reading kept, and what was found."""
    raw = job_dir / RAW_PDF
    planned = load_plan(job_dir, raw, candidates(settings))
    if planned:  # a batch found its language: one reading, alone, in it
        reading, found = planned
        fields, _ = read(reading, False)
        log.info("read alone in %s, as its batch found", reading)
        return {**fields, **found}
    first, texts = read(settings.ocr_lang_default, True)
    plan = decide(settings, texts or [None] * pages, raw, tool_env(settings, job_dir), job_dir / TMP_DIR)
    if not plan.reread:
        return {**first, **plan.fields(second=False)}
    log.info("its text reads as %s: reading it again", describe(plan))
    if not plan.whole:
        done = reread_pages(settings, job_dir, plan, first, pages=pages, jobs=jobs)
        if done is not None:
            return {**done, **plan.fields(second=True)}
    reading = plan.whole_reading()
    second, _ = read(reading, False)
    return {**second, **plan.fields(second=True, reading=reading)}


def member_language(settings: Settings, job_dir: Path, texts: list[str | None]) -> dict[str, Any]:
    """A batch member's language, from its pages' text in the batch's reading: the fields to record;
    or, when it is in another candidate, RedoAlone, its finding kept for its own reading alone."""
    plan = decide(settings, texts, job_dir / RAW_PDF, tool_env(settings, job_dir), job_dir / TMP_DIR)
    if not plan.reread:
        return plan.fields(second=False)
    save_plan(job_dir, plan, job_dir / RAW_PDF)
    raise RedoAlone(f"its text reads as {describe(plan)}; OCRing it alone in {plan.whole_reading()}")


def whole_reader(settings: Settings, job_dir: Path, *, pages: int,
                 ocr: Callable[..., dict[str, Any]]) -> Reader:
    """A reading of the whole document by ``ocr`` (stages/ocr.ocr_whole, given ``lang`` and ``sidecar``)."""
    def read(reading: str, text: bool) -> tuple[dict[str, Any], list[str | None] | None]:
        sidecar = job_dir / TMP_DIR / SIDECAR if text else None
        if sidecar is not None:
            sidecar.unlink(missing_ok=True)
        fields = ocr(lang=reading, sidecar=sidecar)
        return fields, sidecar_pages(sidecar, pages) if sidecar is not None else None

    return read


def reread_pages(settings: Settings, job_dir: Path, plan: Plan, first: dict[str, Any], *, pages: int,
                 jobs: int) -> dict[str, Any] | None:
    """The pages in another language read again (per language), grafted into final.pdf; the first
    reading's fields, with the pages turned updated. None when the pages cannot be read apart (the
    document must not be cut, or the calls did not decide as one would): then it is read whole."""
    record, raw = read_state(job_dir), job_dir / RAW_PDF
    blocker = ("it is signed" if record.get("signed") else
               "its PDF/A needs Ghostscript" if record.get("ghostscriptReason") else split_blocker(raw))
    if blocker:
        log.info("its pages are read again together, not apart: %s", blocker)
        return None
    folder = job_dir / TMP_DIR / "reread"
    remove_tree(folder)
    folder.mkdir(parents=True)
    again = {n for idx in plan.reread.values() for n in idx}
    kept = [n for n in range(pages) if n not in again]
    outputs, ranges, logs = [], [], [job_dir / "ocr.log"]
    if kept:
        cut_range(job_dir / FINAL_PDF, kept, folder / "kept.pdf")
        outputs.append(folder / "kept.pdf")
        ranges.append(kept)
    turned = dict(first.get("pagesTurned") or {})
    try:
        for n, (reading, idx) in enumerate(sorted(plan.reread.items())):
            outputs.append(_read_pages(settings, folder, n, reading, idx, jobs=jobs, turned=turned))
            ranges.append(idx)
            logs.append(folder / f"range-reread-{n}.log")
        return _graft(job_dir, folder, outputs, ranges, logs, pages=pages,
                      fields={**first, **({"pagesTurned": turned} if "pagesTurned" in first else {})})
    except StageError as exc:
        log.warning("reading the pages again apart failed (%s); reading the document again whole", exc)
        return None


def _read_pages(settings: Settings, folder: Path, n: int, reading: str, idx: list[int], *, jobs: int,
                turned: dict[str, int]) -> Path:
    source, output = folder / f"range-reread-{n}.pdf", folder / f"range-reread-{n}.ocr.pdf"
    cut_range(folder.parent.parent / RAW_PDF, idx, source)
    argv = build_argv(settings.ocrmypdf, source, output, lang=reading, jobs=jobs, extra_args=settings.ocr_args,
                      max_image_mpixels=settings.max_image_mpixels, pdfa=settings.pdfa,
                      orientation=ocrmypdf_options(settings))
    env = orientation_env(tool_env(settings, folder), settings.rotate_pages, f"orientation-reread-{n}")
    result = run_tool(argv, timeout=settings.ocr_timeout_for(len(idx)), env=env,
                      log_path=folder / f"range-reread-{n}.log")
    raise_for_exit(result)
    with pikepdf.open(output) as pdf:
        if len(pdf.pages) != len(idx):
            raise StageError(f"ocrmypdf's output has {len(pdf.pages)} pages instead of {len(idx)}")
    _, turns = turn_reported_pages(output, env)
    for i, page in enumerate(idx, start=1):  # this reading's turns replace the first's, on its pages
        turned.pop(str(page + 1), None)
        if i in turns:
            turned[str(page + 1)] = turns[i]
    return output


def _graft(job_dir: Path, folder: Path, outputs: list[Path], ranges: list[list[int]], logs: list[Path], *,
           pages: int, fields: dict[str, Any]) -> dict[str, Any] | None:
    # ocrmypdf decides some things over a whole call: each call must have decided as the first did.
    if any(batch_spoiled(tool_log) for tool_log in logs) or len({optimizer_unused(p) for p in logs}) > 1:
        log.info("the calls did not decide alike (PDF/A or the optimizer); reading the document again whole")
        return None
    flavours = pdfa_flavours(outputs)
    if len(flavours) > 1:
        return None
    flavour = flavours.pop()
    partial = job_dir / "final.language.pdf"
    try:
        checked = graft(job_dir / RAW_PDF, outputs, ranges, partial, flavour)
        problem = check_merged(partial, pages=pages, flavour=flavour, pdfa_checked=checked)
    except Exception as exc:  # noqa: BLE001 — reading apart is a saving only: any fault of it, the document is read whole
        log.warning("grafting the pages read again failed (%s: %s)", type(exc).__name__, exc)
        problem = str(exc) or type(exc).__name__
    if problem:
        partial.unlink(missing_ok=True)
        log.info("the pages read again could not be grafted (%s); reading the document again whole", problem)
        return None
    os.replace(partial, job_dir / FINAL_PDF)
    remove_tree(folder)
    return fields
