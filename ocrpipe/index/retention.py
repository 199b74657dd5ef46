"""Retention in the job index: which finished runs are old (by when they finished), their removals
recorded, and old rows thinned to what duplicate detection needs (key, run, state, dates).

Thinning removes, in the same transaction, what the search index keeps of each thinned run (its pages'
text and readings): a thinned row no longer names an output, so its text must not be found either."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ocrpipe.index.db import INSERT_NEW, to_row
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.search import forget_pages

# Marks in a row's extra fields: when its archived original or its error/ folder went, and when it was thinned.
ARCHIVE_REMOVED, ERROR_REMOVED, THINNED, TRASHED = "archiveRemovedAt", "errorRemovedAt", "thinnedAt", "trashedTo"
PLAN_DIR = "retention"  # in INDEX_DIR: the plan of an apply under way, the log of removals, the lock
REMOVED_LOG = "removed.jsonl"  # every removal, appended: what a rebuild of a damaged index reads back
LAST_APPLIED = "retention:lastApplied"  # meta: when retention last ran to its end
READ_BATCH = 1000  # rows read at a time: the scheduler's own writes are never held up for long
THIN_BATCH = 500
AGE_INDEX = "CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished_at)"



def cutoff(now: datetime, days: int) -> str:
    """The finish time before which a run is older than ``days``, written as ocrpipe writes times."""
    return (now - timedelta(days=days)).isoformat(timespec="milliseconds")


def _not_marked(mark: str) -> str:
    return f"(extra IS NULL OR json_extract(extra, '$.{mark}') IS NULL)"


OLD_ARCHIVES = ("SELECT id, job_key, run_id, state, archived, finished_at FROM jobs WHERE id > ? AND finished_at < ? "
                f"AND state = 'DONE' AND archived IS NOT NULL AND {_not_marked(ARCHIVE_REMOVED)} ORDER BY id LIMIT ?")
OLD_ERRORS = ("SELECT id, job_key, run_id, state, error_dir, finished_at FROM jobs WHERE id > ? AND finished_at < ? "
              f"AND state = 'ERROR' AND error_dir IS NOT NULL AND {_not_marked(ERROR_REMOVED)} ORDER BY id LIMIT ?")


def ensure_age_index(index: JobIndex) -> None:
    """Old runs found through an index of finish times, not a walk through the whole history."""
    index.write(lambda conn: conn.execute(AGE_INDEX))


def old_runs(index: JobIndex, kind: str, before: str) -> Iterator[dict[str, Any]]:
    """Runs that finished before ``before`` and still have their archived original (``archive``) or their
    error/ folder (``error``), oldest recorded first, read in short batches."""
    query = OLD_ARCHIVES if kind == "archive" else OLD_ERRORS
    last = 0
    while True:
        def batch(c: sqlite3.Connection, after: int = last) -> list[Any]:
            return c.execute(query, (after, before, READ_BATCH)).fetchall()

        rows: list[Any] = index.read(batch, [])
        for row_id, key, run, state, path, finished in rows:
            yield {"jobKey": key, "runId": run, "state": state, "path": path, "finishedAt": finished}
            last = row_id
        if len(rows) < READ_BATCH:
            return


def mark_removed(index: JobIndex, items: Iterable[dict[str, Any]]) -> None:
    """Record in one transaction that these items' files are gone (each: kind, jobKey, path, removedAt,
    trashedTo). Matched by key and path, not row id: a rebuilt index numbers its rows anew. Safe to repeat."""
    def work(conn: sqlite3.Connection) -> None:
        for item in items:
            if item.get("jobKey") is None:
                continue  # a file refused at intake: no row in the index
            mark, column = (ARCHIVE_REMOVED, "archived") if item["kind"] == "archive" else (ERROR_REMOVED, "error_dir")
            conn.execute(f"UPDATE jobs SET extra = json_set(coalesce(extra, '{{}}'), '$.{mark}', ?, '$.{TRASHED}', ?) "
                         f"WHERE job_key = ? AND {column} = ? AND {_not_marked(mark)}",
                         (item.get("removedAt"), item.get("trashedTo"), item["jobKey"], item["path"]))

    index.write(work)


def _thin_where(*, archive: str | None, error: str | None, planned: bool = False) -> str:
    """Old enough and not thinned yet. While retention (``archive``/``error``: its cutoff; None: off) still has
    a file of the row to remove, the row keeps the path to it: it is thinned once that file went. ``planned``
    counts the files this pass is about to remove as gone (a dry run's figure)."""
    where = f"finished_at < ? AND {_not_marked(THINNED)}"
    for cut, column, mark in ((archive, "archived", ARCHIVE_REMOVED), (error, "error_dir", ERROR_REMOVED)):
        if cut is None:
            continue
        soon = f" OR finished_at < '{cut}'" if planned else ""
        where += f" AND ({column} IS NULL OR NOT {_not_marked(mark)}{soon})"
    return where


def count_to_thin(index: JobIndex, before: str, *, archive: str | None, error: str | None, planned: bool) -> int:
    sql = f"SELECT count(*) FROM jobs WHERE {_thin_where(archive=archive, error=error, planned=planned)}"
    return int(index.read(lambda c: c.execute(sql, (before,)).fetchone()[0], 0))


def thin(index: JobIndex, before: str, at: str, *, archive: str | None, error: str | None,
         stop: Callable[[], bool] = lambda: False) -> int:
    """Thin the rows of runs that finished before ``before``: only key, run, state and dates stay (and
    when their files went). Returns how many; batches of THIN_BATCH, each its own transaction."""
    where = _thin_where(archive=archive, error=error)
    select = f"SELECT id, job_key, run_id FROM jobs WHERE {where} ORDER BY id LIMIT ?"
    update = ("UPDATE jobs SET source = NULL, output = NULL, archived = NULL, error_dir = NULL, pages = NULL, "
              "kind = NULL, pdfa = NULL, attempts = NULL, timings = NULL, reason = NULL, code = NULL, decision = NULL, "
              f"extra = json_patch('{{}}', json_object('{THINNED}', ?, "
              f"'{ARCHIVE_REMOVED}', json_extract(extra, '$.{ARCHIVE_REMOVED}'), "
              f"'{ERROR_REMOVED}', json_extract(extra, '$.{ERROR_REMOVED}'))) WHERE id = ?")
    total = 0

    def batch(conn: sqlite3.Connection) -> int:
        rows = conn.execute(select, (before, THIN_BATCH)).fetchall()
        forget_pages(conn, [row_id for row_id, _, _ in rows])
        conn.executemany(update, [(at, row_id) for row_id, _, _ in rows])
        return len(rows)

    while not stop():
        done = index.write(batch) or 0
        total += done
        if done < THIN_BATCH:
            break
    return total


def last_applied(index: JobIndex) -> str | None:
    row = index.read(lambda c: c.execute("SELECT value FROM meta WHERE name = ?", (LAST_APPLIED,)).fetchone(), None)
    return row[0] if row else None


def note_applied(index: JobIndex, at: str) -> None:
    index.write(lambda c: c.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (LAST_APPLIED, at)))


def removed_log(index_dir: Path) -> Path:
    return index_dir / PLAN_DIR / REMOVED_LOG


def restore_removals(index: JobIndex, log_file: Path) -> int:
    """After a rebuild of a damaged index: the runs whose files retention removed come back as thinned rows
    (so the same bytes dropped again are still a duplicate), and rows that came back from an older history
    are marked as removed (so they are not listed again). Returns the lines read."""
    if not log_file.is_file():
        return 0
    entries: list[dict[str, Any]] = []
    with open(log_file, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if (isinstance(item, dict) and isinstance(item.get("jobKey"), str)
                    and item.get("kind") in ("archive", "error")):
                entries.append(item)

    def work(conn: sqlite3.Connection) -> None:
        for item in entries:
            mark = ARCHIVE_REMOVED if item["kind"] == "archive" else ERROR_REMOVED
            known = conn.execute("SELECT 1 FROM jobs WHERE job_key = ? AND run_id IS ?",
                                 (item["jobKey"], item.get("runId"))).fetchone()
            if not known and isinstance(item.get("state"), str):
                conn.execute(INSERT_NEW, to_row({"jobKey": item["jobKey"], "runId": item.get("runId"),
                                                 "state": item["state"], "finishedAt": item.get("finishedAt"),
                                                 mark: item.get("removedAt"), THINNED: item.get("removedAt"),
                                                 "rebuiltFrom": "retention"}))
    index.write(work)
    mark_removed(index, entries)
    return len(entries)
