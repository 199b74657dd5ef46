"""Full-text search over the pages ocrpipe has read, and the documents that read poorly: stored with each
finished run in the job index (index/textschema.py), asked newest first and bounded in time."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocrpipe.errors import ConfigError
from ocrpipe.folders.nofollow import open_regular
from ocrpipe.index.db import FIELDS, SELECT, from_row
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.textschema import MAX_PAGE, META_TABLE, PAGE_BITS, TEXT_TABLE, has_table, run_range

# Snippets mark a match with these (never in a page's text: pagetext removes control characters); each
# surface shows them its own way: [brackets] in the CLI and JSON, <mark> on the status page.
MARK_START, MARK_END = "\x02", "\x03"
SNIPPET_TOKENS = 12
MAX_QUERY_CHARS = 1000
DEFAULT_SECONDS = 2.0  # one query's time at most before it is stopped
PROGRESS_STEPS = 2000  # SQLite virtual-machine steps between two looks at the clock
# A page with fewer characters than this read (a logo, a stamp, a photo's caption) says too little about
# how well the document read to flag it.
MIN_FLAG_CHARS = 20
_COLUMN = dict(FIELDS)
MAX_PAGES_FILE_BYTES = 256 * 2**20  # pages.json of a 100,000-page document is about a third of this
log = logging.getLogger("ocrpipe.index")


class SearchSyntaxError(ConfigError):
    """The query is not one FTS5 understands (exit 2 in the CLI, 400 in the API)."""


class SearchTooSlow(ConfigError):
    """The query ran past its time limit: it matched too much to sort out in time."""


class SearchUnavailable(ConfigError):
    """This index has no text table (SQLite without FTS5)."""


# ----- storing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRecord:
    """What a worker read of a finished document (pages.json, checked): each page's text (None: not
    indexed) and reading (None: Tesseract did not read that page)."""

    texts: list[str] | None
    readings: list[dict[str, Any] | None]

    @property
    def pages(self) -> int:
        return len(self.texts) if self.texts is not None else len(self.readings)


def checked_page_record(raw: object, *, max_chars: int) -> PageRecord | None:
    """pages.json as a worker writes it, or None: it comes from a job folder anyone may write."""
    if not isinstance(raw, dict):
        return None
    texts, readings = raw.get("texts"), raw.get("readings")
    if texts is not None and not (isinstance(texts, list) and all(isinstance(t, str) for t in texts)):
        return None
    if not isinstance(readings, list):
        return None
    if texts is not None and len(texts) > MAX_PAGE:
        return None
    checked = [_reading(r) for r in readings[:len(texts) if texts is not None else MAX_PAGE]]
    if texts is not None:
        checked += [None] * (len(texts) - len(checked))
        texts = [t[:max_chars] for t in texts]
    return PageRecord(texts, checked)


def load_page_record(path: Path, *, max_chars: int) -> PageRecord | None:
    """A finished job's pages.json, or None (none written, or not as ocrpipe writes it: said in the log)."""
    try:
        with open_regular(path) as handle:
            data = handle.read(MAX_PAGES_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s cannot be read (%s): the job's text is not indexed", path, exc)
        return None
    try:
        record = checked_page_record(json.loads(data), max_chars=max_chars) if len(
            data) <= MAX_PAGES_FILE_BYTES else None
    except ValueError:
        record = None
    if record is None:
        log.warning("%s is not as ocrpipe writes it: the job's text is not indexed", path)
    return record


def _reading(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    chars, confidence = value.get("chars"), value.get("confidence")
    if (isinstance(chars, int) and not isinstance(chars, bool) and chars >= 0
            and isinstance(confidence, (int, float)) and not isinstance(confidence, bool)
            and math.isfinite(confidence) and 0 <= confidence <= 100):
        return {"chars": chars, "confidence": float(confidence)}
    return None


def store_pages(conn: sqlite3.Connection, job_id: int, record: PageRecord) -> None:
    """A run's pages, replacing what it had (a run recorded again after a crash), in the caller's transaction."""
    forget_pages(conn, [job_id])
    first, _ = run_range(job_id)
    conn.executemany(f"INSERT INTO {META_TABLE} (id, chars, confidence) VALUES (?, ?, ?)",
                     [(first | page, r["chars"], r["confidence"])
                      for page, r in enumerate(record.readings, start=1) if r is not None])
    if record.texts is not None:
        store_texts(conn, job_id, record.texts)


def store_texts(conn: sqlite3.Connection, job_id: int, texts: Sequence[str]) -> None:
    """A run's pages' text only (its readings stay), replacing what it had; nothing without FTS5."""
    if not has_table(conn, TEXT_TABLE):
        return
    first, last = run_range(job_id)
    conn.execute(f"DELETE FROM {TEXT_TABLE} WHERE rowid BETWEEN ? AND ?", (first, last))
    conn.executemany(f"INSERT INTO {TEXT_TABLE} (rowid, text) VALUES (?, ?)",
                     [(first | page, text) for page, text in enumerate(texts[:MAX_PAGE], start=1)])


def forget_pages(conn: sqlite3.Connection, job_ids: Sequence[int]) -> None:
    """The text and readings of these runs' rows go (their output is gone; retention thinned them)."""
    text = has_table(conn, TEXT_TABLE)
    for job_id in job_ids:
        first, last = run_range(job_id)
        conn.execute(f"DELETE FROM {META_TABLE} WHERE id BETWEEN ? AND ?", (first, last))
        if text:
            conn.execute(f"DELETE FROM {TEXT_TABLE} WHERE rowid BETWEEN ? AND ?", (first, last))


def run_row(conn: sqlite3.Connection, job_key: str, run_id: str | None) -> int | None:
    """The row id of one run (the latest of the key when it has no run id)."""
    if run_id is None:
        row = conn.execute("SELECT max(id) FROM jobs WHERE job_key = ?", (job_key,)).fetchone()
    else:
        row = conn.execute("SELECT id FROM jobs WHERE job_key = ? AND run_id = ?", (job_key, run_id)).fetchone()
    return row[0] if row else None


def has_text(conn: sqlite3.Connection, job_id: int) -> bool:
    first, last = run_range(job_id)
    return conn.execute(f"SELECT 1 FROM {TEXT_TABLE} WHERE rowid BETWEEN ? AND ? LIMIT 1",
                        (first, last)).fetchone() is not None


def summary(record: PageRecord, threshold: float) -> dict[str, Any]:
    """What the run's index row (and so /jobs/{key} and the hook event) says of how it read."""
    read = [(n, r) for n, r in enumerate(record.readings, start=1) if r is not None and r["chars"] > 0]
    if not read:
        return {}
    chars = sum(r["chars"] for _, r in read)
    low = [n for n, r in read if is_low(r, threshold)]
    return {"confidence": round(sum(r["confidence"] * r["chars"] for _, r in read) / chars, 1),
            "lowConfidencePages": low, "lowConfidence": bool(low)}


def is_low(reading: dict[str, Any], threshold: float) -> bool:
    return bool(reading["chars"] >= MIN_FLAG_CHARS and reading["confidence"] < threshold)


# ----- asking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    jobKey: str
    runId: str | None
    source: str | None
    output: str | None
    finishedAt: str | None
    page: int
    snippet: str  # the match between MARK_START and MARK_END
    confidence: float | None

    def as_dict(self, *, marks: tuple[str, str] = ("[", "]")) -> dict[str, Any]:
        return {"jobKey": self.jobKey, "runId": self.runId, "source": self.source, "output": self.output,
                "finishedAt": self.finishedAt, "page": self.page, "snippet": marked(self.snippet, *marks),
                "confidence": self.confidence}


def marked(snippet: str, start: str, end: str) -> str:
    return snippet.replace(MARK_START, start).replace(MARK_END, end)


@dataclass(frozen=True)
class HitPage:
    """Newest run first (a run's pages in order); ``next_before`` continues after the last (None: no more)."""

    hits: list[Hit]
    next_before: int | None


def since_iso(raw: str | None, *, what: str = "since") -> str | None:
    """``2026-05-01`` or ``2026-05-01T14:00`` (local time unless it names its zone) as the index's UTC form."""
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise SearchSyntaxError(f"{what} {raw[:40]!r} is not valid: expected a date (2026-05-01) or a date and "
                                "time (2026-05-01T14:00)") from None
    if when.tzinfo is None:
        when = when.astimezone()  # the person's own clock
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def check_query(query: str) -> str:
    query = query.strip()
    if not query:
        raise SearchSyntaxError("nothing to search for: give a word, a \"phrase\", a prefix* or an OR of them")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchSyntaxError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    return query


def _syntax_problem(exc: sqlite3.OperationalError) -> str | None:
    """FTS5's complaint about a query, or None when the error is something else."""
    message = str(exc)
    if message.startswith(("fts5:", "unknown special query", "no such column", "unterminated string")) \
            or "malformed MATCH" in message:
        return message
    return None


def search(index: JobIndex, query: str, *, limit: int = 20, before: int | None = None, since: str | None = None,
           seconds: float = DEFAULT_SECONDS) -> HitPage:
    """Pages whose text matches ``query`` (FTS5 syntax), newest run first, runs finished at or after
    ``since`` (an ISO time) only. Stopped after ``seconds`` (SearchTooSlow)."""
    query = check_query(query)
    where = [f"{TEXT_TABLE} MATCH ?"]
    args: list[Any] = [query]
    if before is not None:
        where.append(f"{TEXT_TABLE}.rowid < ?")
        args.append(before)
    if since is not None:
        where.append(f"j.{_COLUMN['finishedAt']} >= ?")
        args.append(since)
    sql = (f"SELECT {TEXT_TABLE}.rowid, j.job_key, j.run_id, j.source, j.output, j.finished_at, "
           f"snippet({TEXT_TABLE}, 0, '{MARK_START}', '{MARK_END}', '…', {SNIPPET_TOKENS}), m.confidence "
           f"FROM {TEXT_TABLE} JOIN jobs j ON j.id = ({TEXT_TABLE}.rowid >> {PAGE_BITS}) "
           f"LEFT JOIN {META_TABLE} m ON m.id = {TEXT_TABLE}.rowid "
           f"WHERE {' AND '.join(where)} ORDER BY {TEXT_TABLE}.rowid DESC LIMIT ?")
    args.append(limit + 1)

    def ask(conn: sqlite3.Connection) -> list[Any]:
        if not has_table(conn, TEXT_TABLE):
            raise SearchUnavailable("this job index holds no page text: SQLite here has no FTS5, or no "
                                    "'ocrpipe run' has opened it since search came (see docs/search.md)")
        return _bounded(conn, sql, args, seconds)

    rows: list[Any] = index.read(ask, [])
    more = len(rows) > limit
    rows = rows[:limit]
    hits = [Hit(jobKey=r[1], runId=r[2], source=r[3], output=r[4], finishedAt=r[5], page=r[0] & (MAX_PAGE),
                snippet=r[6] or "", confidence=r[7]) for r in rows]
    return HitPage(hits, rows[-1][0] if more and rows else None)


def _bounded(conn: sqlite3.Connection, sql: str, args: Sequence[Any], seconds: float) -> list[Any]:
    """One query, interrupted once it has run ``seconds``; FTS5's syntax errors as SearchSyntaxError."""
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        problem = _syntax_problem(exc)
        if problem:
            raise SearchSyntaxError(f"the search query is not valid: {problem} (see docs/search.md for the "
                                    "syntax; put a word with - or : in \"double quotes\")") from None
        if "interrupted" in str(exc):
            raise SearchTooSlow(f"the search took longer than {seconds:g} s and was stopped: make it narrower "
                                "(more words, a phrase, --since)") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


def flagged(index: JobIndex, threshold: float, *, limit: int = 20, before: int | None = None,
            seconds: float = DEFAULT_SECONDS) -> tuple[list[dict[str, Any]], int | None]:
    """Runs with a page read below ``threshold``, newest first, as index entries (with ``lowConfidencePages``);
    and the cursor for the next page (None: no more)."""
    if threshold <= 0:
        return [], None
    bound = f"AND id < {int(before) << PAGE_BITS}" if before is not None else ""
    sql = (f"WITH low AS (SELECT id >> {PAGE_BITS} AS job, group_concat(id & {MAX_PAGE}) AS pages "
           f"FROM {META_TABLE} WHERE confidence < ? AND chars >= ? {bound} GROUP BY job "
           f"ORDER BY job DESC LIMIT ?) "
           f"SELECT low.pages, j.* FROM low JOIN ({SELECT}) j ON j.id = low.job ORDER BY low.job DESC")

    def ask(conn: sqlite3.Connection) -> list[Any]:
        return _bounded(conn, sql, (threshold, MIN_FLAG_CHARS, limit + 1), seconds)

    rows: list[Any] = index.read(ask, [])
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [{**from_row(tuple(r[1:])), "lowConfidencePages": sorted(int(p) for p in str(r[0]).split(","))}
               for r in rows]
    return entries, rows[-1][1] if more and rows else None
