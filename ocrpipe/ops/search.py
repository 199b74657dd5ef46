"""``ocrpipe search``: find the pages that said something, and ``--reindex`` the outputs of jobs done before
search existed. Both work while ``ocrpipe run`` runs: searching only reads; the reindex writes one job at a
time in a short transaction of its own."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import psutil

from ocrpipe.config import Settings
from ocrpipe.errors import ConfigError
from ocrpipe.folders.nofollow import is_regular, link_on_the_way, open_regular
from ocrpipe.index.db import DB_FILE, IndexBusyError, JobIndexError, connect, is_busy
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.search import HitPage, forget_pages, search, since_iso, store_texts
from ocrpipe.index.textschema import MAX_PAGE, PAGE_BITS, TEXT_TABLE, has_table
from ocrpipe.stages.pagetext import page_texts

log = logging.getLogger("ocrpipe.search")
REINDEX_BATCH = 200  # jobs looked up at a time
CLI_SECONDS = 30.0  # a person at a terminal can wait longer than a web page


def print_search(settings: Settings, query: str, *, as_json: bool, limit: int, since: str | None,
                 out: TextIO | None = None) -> None:
    out = out or sys.stdout
    with JobIndex(settings.index_dir, readonly=True) as index:
        found = search(index, query, limit=limit, since=since_iso(since, what='--since'), seconds=CLI_SECONDS)
    if as_json:
        print(json.dumps({"query": query, "hits": [h.as_dict() for h in found.hits],
                          "more": found.next_before is not None}, indent=2, ensure_ascii=False), file=out)
        return
    print(_text(found, limit), file=out)


def _text(found: HitPage, limit: int) -> str:
    if not found.hits:
        return "No page matches."
    lines = []
    for hit in found.hits:
        when = (hit.finishedAt or "")[:16].replace("T", " ")
        flag = f"  (read at {hit.confidence:.0f} %)" if hit.confidence is not None and hit.confidence < 50 else ""
        lines.append(f"{when}  {hit.output or hit.source}  page {hit.page}{flag}")
        lines.append("    " + " ".join(hit.as_dict()["snippet"].split()))
    more = f"; more match: --limit {min(limit * 5, 1000)} shows more" if found.next_before is not None else ""
    lines.append(f"{len(found.hits)} page(s), newest first{more}")
    return "\n".join(lines)


# ----- reindex -----------------------------------------------------------------------------------------


def _runs(conn: sqlite3.Connection, after: int, *, with_text: bool) -> list[Any]:
    """(id, output) of the next done runs after row ``after`` that have text (or have none, and an output)."""
    has = (f"EXISTS (SELECT 1 FROM {TEXT_TABLE} t WHERE t.rowid BETWEEN (j.id << {PAGE_BITS}) "
           f"AND ((j.id << {PAGE_BITS}) | {MAX_PAGE}))")
    which = has if with_text else f"output IS NOT NULL AND NOT {has}"
    return conn.execute(f"SELECT id, output FROM jobs j WHERE id > ? AND state = 'DONE' AND {which} "
                        "ORDER BY id LIMIT ?", (after, REINDEX_BATCH)).fetchall()


def _be_background() -> None:
    """A lower priority, so that a reindex beside ``ocrpipe run`` takes only the CPU the run leaves."""
    try:
        process = psutil.Process()
        process.nice(psutil.BELOW_NORMAL_PRIORITY_CLASS if sys.platform == "win32" else 10)
    except (OSError, psutil.Error, AttributeError):
        pass


def reindex(settings: Settings, out: TextIO | None = None) -> int:
    """Fill the text of done runs that have none from their outputs in out/; returns the runs filled."""
    out = out or sys.stdout
    path = settings.index_dir / DB_FILE
    if not path.is_file():
        print("No job index yet: nothing to reindex.", file=out)
        return 0
    _be_background()
    try:
        conn = connect(path)  # creates the text tables in an index that predates them
    except sqlite3.DatabaseError as exc:
        raise JobIndexError(f"cannot open the job index {path}: {exc}") from None
    started, filled, pages, gone, after = time.monotonic(), 0, 0, 0, 0
    try:
        if not has_table(conn, TEXT_TABLE):
            raise ConfigError("this Python's SQLite has no FTS5: there is nowhere to put the text "
                              "(see docs/search.md)")
        while True:
            batch = _runs(conn, after, with_text=False)  # no transaction is kept open while outputs are read
            if not batch:
                break
            for job_id, output in batch:
                after = job_id
                texts = _read_output(settings, output)
                if texts is None:
                    gone += 1
                    continue
                if _store(conn, job_id, output, texts):
                    filled, pages = filled + 1, pages + len(texts)
                if filled and filled % 500 == 0:
                    print(f"  {filled} jobs so far ({pages} pages)", file=out, flush=True)
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise IndexBusyError(f"the job index {path} stayed locked; run the reindex again later") from None
        raise
    finally:
        conn.close()
    skipped = f"; skipped {gone} whose output is no longer in {settings.out_dir}" if gone else ""
    print(f"Reindexed {filled} job(s), {pages} page(s), in {time.monotonic() - started:.1f} s{skipped}.", file=out)
    return filled


def forget_gone(settings: Settings, out: TextIO | None = None) -> int:
    """Forget the text and readings of done runs whose output is no longer in out/ (deleted or moved away
    by hand); returns the runs forgotten. Never automatic: a folder drained by another program is not a
    reason to lose what was read."""
    out = out or sys.stdout
    path = settings.index_dir / DB_FILE
    if not path.is_file():
        print("No job index yet: nothing to forget.", file=out)
        return 0
    conn = connect(path)
    forgotten, after = 0, 0
    try:
        while True:
            batch = _runs(conn, after, with_text=True)
            if not batch:
                break
            after = batch[-1][0]
            gone = [job_id for job_id, output in batch if not output or not _in_out(settings, Path(output))]
            if gone:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    forget_pages(conn, gone)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.rollback()
                    raise
                forgotten += len(gone)
    finally:
        conn.close()
    print(f"Forgot the text of {forgotten} job(s) whose output is no longer in {settings.out_dir}.", file=out)
    return forgotten


def _in_out(settings: Settings, target: Path) -> bool:
    """The output is still where it was placed, a regular file in out/ reached without a link."""
    out_dir = settings.out_dir
    if out_dir not in target.parents or link_on_the_way(out_dir, target):
        return False
    try:
        return is_regular(os.lstat(target))
    except OSError:
        return False


def _read_output(settings: Settings, output: str) -> list[str] | None:
    """The output's pages' text, or None when it is gone, moved out of out/, or a link (never followed)."""
    target = Path(output)
    if not _in_out(settings, target):
        return None
    try:
        with open_regular(target) as handle:
            return page_texts(handle)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 — one unreadable output (damaged, replaced) costs only its own text
        log.warning("%s: its text could not be read (%s); skipped", target, exc)
        return None


def _store(conn: sqlite3.Connection, job_id: int, output: str, texts: list[str]) -> bool:
    """One job's text in one short transaction, if the run is still what was read (``ocrpipe run`` may
    have changed the index meanwhile)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT 1 FROM jobs WHERE id = ? AND state = 'DONE' AND output = ?",
                           (job_id, output)).fetchone()
        if row is not None:
            store_texts(conn, job_id, texts)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return row is not None
