"""ROTATE_PAGES=auto, ocrpipe's side: where the ocrmypdf plugin reports, and the /Rotate of the pages it turned."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pikepdf

from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.tools.ocrmypdf import orientation_args

log = logging.getLogger("ocrpipe.ocr")

PLUGIN = Path(__file__).resolve().parent.parent / "tools" / "ocrpipe_orientation_plugin.py"
# The plugin's own constant (it imports nothing of ocrpipe); not imported from it, since importing the
# plugin imports ocrmypdf, which costs every PREP and OCR worker about 0.3 s of CPU at its start.
ORIENTATION_DIR_ENV = "OCRPIPE_ORIENTATION_DIR"
DOCUMENTS_ENV = "OCRPIPE_ORIENTATION_DOCUMENTS"  # the plugin's too: the first page of each document in the call
REPORTS = "orientation"  # inside the call's tmp/ folder: a killed attempt's reports go with it


def orientation_env(env: dict[str, str], rotate_pages: str, reports: str = REPORTS, *,
                    documents: Sequence[int] = ()) -> dict[str, str]:
    """The tool environment, with the folder the plugin reports into (made empty) under auto;
    ``reports`` names it, one per ocrmypdf call running at the same time. ``documents``: the page count of
    each document in the call, in order, so a page may be judged by what its document's other pages showed
    (a poorly printed document's pages found upright); without it, each page stands alone."""
    if rotate_pages != "auto":
        return env
    folder = Path(env["TMPDIR"]) / reports
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    firsts = [1 + before for before in itertools.accumulate(documents[:-1], initial=0)] if documents else []
    return {**env, ORIENTATION_DIR_ENV: str(folder),
            **({DOCUMENTS_ENV: ",".join(map(str, firsts))} if firsts else {})}


def read_reports(env: dict[str, str]) -> list[dict[str, Any]] | None:
    """The plugin's report on each page it checked, by page number (1-based, in the call's input);
    None when the plugin did not run (ROTATE_PAGES is not auto)."""
    folder = env.get(ORIENTATION_DIR_ENV)
    if not folder:
        return None
    return sorted((json.loads(path.read_text()) for path in Path(folder).glob("page-*.json")),
                  key=lambda report: report["page"])


def ocrmypdf_options(settings: Settings) -> list[str]:
    """ROTATE_PAGES and DESKEW as ocrmypdf options, the plugin named by its file here."""
    return orientation_args(settings.rotate_pages, settings.deskew, PLUGIN)


def turn_reported_pages(output: Path, env: dict[str, str]) -> tuple[list[dict[str, Any]] | None, dict[int, int]]:
    """After ocrmypdf: the plugin's reports (None without it), and the pages of ``output`` turned by them."""
    reports = read_reports(env)
    failed = [str(r["page"]) for r in reports or [] if r.get("failed")]
    if failed:
        log.warning("Tesseract's orientation detection failed on page(s) %s, left as read: is its 'osd' data "
                    "installed? 'ocrpipe doctor' says how to install it", ", ".join(failed))
    return reports, apply_turns(output, reports or [])


def apply_turns(pdf_path: Path, reports: list[dict[str, Any]]) -> dict[int, int]:
    """Turn the pages the plugin read turned (their /Rotate, clockwise, as ocrmypdf's own
    --rotate-pages does), in place; returns {page: degrees} of the pages turned."""
    turns = {int(r["page"]): int(r["turned"]) for r in reports if r.get("turned")}
    if not turns:
        return turns
    turned = pdf_path.with_name(pdf_path.stem + ".turned.pdf")
    with pikepdf.open(pdf_path) as pdf:
        for page_number, degrees in turns.items():
            page = pdf.pages[page_number - 1]
            page.obj.Rotate = (int(page.obj.get("/Rotate", 0)) + degrees) % 360
        pdf.save(turned)
    os.replace(turned, pdf_path)
    return turns


def orientation_fields(reports: list[dict[str, Any]] | None, turns: dict[int, int], first: int = 1,
                       pages: int | None = None) -> dict[str, Any]:
    """What a document's record keeps: pages checked and pages turned (numbered in the document),
    of the reports on its pages ``first`` … ``first + pages - 1`` of the call; nothing without the plugin."""
    if reports is None:
        return {}
    last = first + pages - 1 if pages is not None else None
    mine = [r for r in reports if r["page"] >= first and (last is None or r["page"] <= last)]
    # A page the plugin found upright by its strokes is reported too, as not checked.
    return {"orientationChecked": sum(1 for r in mine if r.get("checked", True)),
            "pagesTurned": {str(page - first + 1): degrees for page, degrees in sorted(turns.items())
                            if page >= first and (last is None or page <= last)}}


def save_range_fields(path: Path, pages: list[int], reports: list[dict[str, Any]] | None,
                      turns: dict[int, int]) -> None:
    """A split document's range (the document's page indices ``pages``): its pages checked and turned,
    kept beside its output, which a later attempt may reuse."""
    if reports is not None:
        atomic_write_json(path, {"pages": pages, **orientation_fields(reports, turns)})


def merged_range_fields(paths: list[Path]) -> dict[str, Any]:
    """The ranges' pages checked and turned, numbered in the whole document; nothing without the plugin."""
    saved = [read_json(path) for path in paths if path.is_file()]
    if not saved:
        return {}
    return {"orientationChecked": sum(s["orientationChecked"] for s in saved),
            "pagesTurned": {str(number): degrees for number, degrees in sorted(
                (s["pages"][int(page) - 1] + 1, degrees) for s in saved for page, degrees in s["pagesTurned"].items())}}
