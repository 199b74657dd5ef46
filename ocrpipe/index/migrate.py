"""Migration from ``index/jobs.jsonl`` (one line per finished job) to the SQLite job index, and back."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from ocrpipe.errors import ConfigError
from ocrpipe.folders.fsutil import candidate_names
from ocrpipe.index.db import INDEXES, INSERT_JSON, SCHEMA

T = TypeVar("T")


class JobIndex(Protocol):
    """What the migration needs of the job index (the index imports this module, so not the class)."""

    index_dir: Path
    path: Path

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T | None: ...

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

log = logging.getLogger("ocrpipe.index")
JSONL_FILE = "jobs.jsonl"
PROGRESS_EVERY = 100_000


def _marker(path: Path) -> tuple[str, str]:
    stat = path.stat()
    return f"imported:{path.name}", f"{stat.st_size}:{stat.st_mtime_ns}"


def create_indexes(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if "CREATE" in statement and "INDEX" in statement:
            conn.execute(statement)


def _import(conn: sqlite3.Connection, path: Path) -> int:
    """All of ``path`` into the open transaction of ``conn``; returns the jobs added.

    The key indexes are dropped and built again after the rows are in: building an index from sorted
    keys is far quicker than a million inserts at random places in it. The same run recorded twice
    (a crash between recording and removing its folder) keeps its last line. Bad lines (a torn last
    line) are skipped, as the JSONL-era ocrpipe skipped them."""
    started = time.monotonic()
    name, value = _marker(path)
    log.info("importing %s (%.0f MB) into the job index…", path, path.stat().st_size / 2**20)
    lines = 0

    def rows(handle: TextIO) -> Iterator[tuple[str]]:
        nonlocal lines
        for line in handle:
            if line.strip():
                lines += 1
                if lines % PROGRESS_EVERY == 0:
                    log.info("importing %s: %d lines so far (%.0f s)", path.name, lines, time.monotonic() - started)
                yield (line,)

    before = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
    for index_name in INDEXES:
        conn.execute(f"DROP INDEX {index_name}")
    with open(path, encoding="utf-8", errors="replace") as handle:
        inserted = conn.executemany(INSERT_JSON, rows(handle)).rowcount
    try:
        create_indexes(conn)
    except sqlite3.IntegrityError:  # the same run twice: rare, so only then the cost of finding them
        conn.execute("DELETE FROM jobs WHERE run_id IS NOT NULL AND id NOT IN "
                     "(SELECT max(id) FROM jobs WHERE run_id IS NOT NULL GROUP BY job_key, run_id)")
        create_indexes(conn)
    conn.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
    if inserted < lines:
        log.warning("%s: skipped %d line(s) that are not a whole finished job (a torn last line?)",
                    path.name, lines - inserted)
    added = conn.execute("SELECT count(*) FROM jobs").fetchone()[0] - before
    log.info("imported %d finished jobs from %s in %.1f s", added, path.name, time.monotonic() - started)
    return added


def import_jsonl(index: JobIndex, path: Path) -> int | None:
    """All of ``path`` in one transaction: a crash half-way imports nothing, so it is simply done again.
    The number of jobs added (None when the index is closed)."""
    return index.write(lambda conn: _import(conn, path))


def import_into_new_file(db_path: Path) -> None:
    """The first start after the JSONL era (no database yet): the database is built beside its final
    name without a journal, fsynced, then renamed into place, a quarter quicker than through the WAL.
    A crash meanwhile leaves only the ``.importing`` file, which the next start deletes and builds again."""
    path = db_path.parent / JSONL_FILE
    if db_path.exists() or not path.is_file():
        return
    building = db_path.with_name(f"{db_path.name}.importing")
    building.unlink(missing_ok=True)
    conn = sqlite3.connect(str(building), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # nothing to roll back to: the file is thrown away instead
        conn.execute("PRAGMA synchronous = OFF")  # one fsync at the end does
        conn.executescript(SCHEMA)
        conn.execute("BEGIN")
        _import(conn, path)
        conn.execute("COMMIT")
    finally:
        conn.close()
    with open(building, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(building, db_path)


def import_leftover_jsonl(index: JobIndex) -> None:
    """At start: an ``index/jobs.jsonl`` (written by ocrpipe before the SQLite index) is imported once,
    then renamed ``jobs.jsonl.imported``. The marker in the database says it was imported even when
    the rename failed (Windows: another program holds the file), so it is never imported twice."""
    path = index.index_dir / JSONL_FILE
    if not path.is_file():
        return
    name, value = _marker(path)
    done = index.write(lambda c: c.execute("SELECT 1 FROM meta WHERE name = ? AND value = ?", (name, value)).fetchone())
    if not done:
        import_jsonl(index, path)
    target = next(index.index_dir / n for n in candidate_names(f"{JSONL_FILE}.imported")
                  if not (index.index_dir / n).exists())
    try:
        os.replace(path, target)
    except OSError as exc:
        log.warning("imported %s but could not rename it (%s); it is renamed at the next start", path, exc)
        return
    log.info("renamed %s to %s (the job index is now %s)", path.name, target.name, index.path.name)


def export_jsonl(index: JobIndex, out: TextIO) -> int:
    """Every job, oldest first, one JSON object per line (the format of the old ``jobs.jsonl``)."""
    count = 0
    for entry in index:
        out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        count += 1
    return count


def export_to(index: JobIndex, target: str) -> int:
    """``-`` is stdout; a file is written beside its final name and renamed, so it is never half there."""
    if target == "-":
        return export_jsonl(index, sys.stdout)
    final = Path(target)
    tmp = final.with_name(f".{final.name}.ocrpipe-tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            count = export_jsonl(index, handle)
        os.replace(tmp, final)
    except OSError as exc:
        raise ConfigError(f"cannot write --out {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return count
