"""The job index (``index/ocrpipe.sqlite``): finished jobs, asked per key or page by page, never loaded whole."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ocrpipe.folders.fsutil import candidate_names
from ocrpipe.index.db import (
    DB_FILE,
    INSERT,
    INSERT_NEW,
    SELECT,
    IndexBusyError,
    IndexDamagedError,
    JobIndexError,
    connect,
    from_row,
    is_busy,
    is_damage,
    is_io_failure,
    to_row,
)
from ocrpipe.index.migrate import import_into_new_file, import_jsonl, import_leftover_jsonl

log = logging.getLogger("ocrpipe.index")
T = TypeVar("T")
Rebuild = Callable[["JobIndex"], None]
EXPORT_BATCH = 1000


@dataclass(frozen=True)
class JobPage:
    """Newest first; pass ``next_before`` as ``before`` for the next page (None: this was the last)."""

    jobs: list[dict[str, Any]]
    next_before: int | None


def _close_all(holder: list[sqlite3.Connection | None]) -> None:
    if holder[0] is not None:
        holder[0].close()
        holder[0] = None


class JobIndex:
    """Finished jobs in SQLite. One per process; its methods may be called from several threads.

    The writer (``ocrpipe run``) creates the file, imports a leftover ``jobs.jsonl`` once, and moves a
    damaged file aside and rebuilds it (``rebuild`` fills the new index from what is on disk). A
    ``readonly`` index (status, export) never creates or changes anything; with no file it is empty."""

    def __init__(self, index_dir: Path, *, readonly: bool = False, rebuild: Rebuild | None = None) -> None:
        self.index_dir = index_dir
        self.path = index_dir / DB_FILE
        self.readonly = readonly
        self._rebuild = rebuild
        self._lock = threading.RLock()
        self._holder: list[sqlite3.Connection | None] = [None]
        # A scheduler dropped without close() (a test's simulated crash) still closes its connection.
        self._finalizer = weakref.finalize(self, _close_all, self._holder)
        if readonly:
            self._holder[0] = self._open_reader()
            return
        index_dir.mkdir(parents=True, exist_ok=True)
        try:
            import_into_new_file(self.path)
            self._holder[0] = connect(self.path)
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            self._recover(exc)
        import_leftover_jsonl(self)

    def _open_reader(self) -> sqlite3.Connection | None:
        if not self.path.exists():
            return None
        try:
            conn = connect(self.path, readonly=True)
        except sqlite3.DatabaseError as exc:
            self._failed(exc)
            raise
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is None:
            conn.close()  # ocrpipe run is creating it this very moment: nothing recorded yet
            return None
        return conn

    # ----- the transaction discipline -----------------------------------------------------------

    def _failed(self, exc: sqlite3.DatabaseError) -> None:
        """Raises what a person can act on as a clear error; returns only for damage the writer rebuilds."""
        if is_busy(exc):
            raise IndexBusyError(f"the job index {self.path} stayed locked by another program "
                                 f"(a sqlite3 shell with an open transaction?); try again when it is closed") from exc
        if is_io_failure(exc):
            raise JobIndexError(f"cannot use the job index {self.path}: {exc} (check its folder's permissions "
                                "and free space; nothing is lost: unrecorded jobs stay in work/)") from exc
        if is_damage(exc) and self.readonly:
            raise IndexDamagedError(f"the job index {self.path} is damaged ({exc}); the next 'ocrpipe run' "
                                    "moves it aside and rebuilds it") from exc
        if not is_damage(exc):
            raise exc

    def read(self, work: Callable[[sqlite3.Connection], T], default: T) -> T:
        """``work`` on the connection (``default`` when there is no index file yet); a damaged file is
        rebuilt (writer) or named in a clear error (reader), a busy one waited on, then named."""
        with self._lock:
            conn = self._holder[0]
            if conn is None:
                return default
            try:
                return work(conn)
            except sqlite3.DatabaseError as exc:
                with contextlib.suppress(sqlite3.Error):  # a damaged file may refuse even this
                    if conn.in_transaction:
                        conn.rollback()
                self._failed(exc)
                self._recover(exc)
                recovered = self._holder[0]
                assert recovered is not None  # _recover connected a new file or raised
                return work(recovered)

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T | None:
        """``work`` in one transaction, taken at once (BEGIN IMMEDIATE waits up to the busy timeout).
        None, and ``work`` not run, once the index is closed."""
        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
            return result

        if self.readonly:
            raise RuntimeError("a read-only job index cannot be written")  # a bug, not a user's error
        return self.read(transaction, None)

    # ----- damage -----------------------------------------------------------------------------

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Move the damaged file aside (never deleted) and rebuild a new one from what is on disk."""
        _close_all(self._holder)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = next(self.index_dir / n for n in candidate_names(f"{DB_FILE}.damaged-{stamp}")
                     if not (self.index_dir / n).exists())
        try:
            for suffix in ("", "-wal", "-shm"):  # a stale WAL must not meet the new file
                part = self.path.with_name(self.path.name + suffix)
                if part.exists():
                    part.replace(aside.with_name(aside.name + suffix))
        except OSError as move:  # Windows: another program (a sqlite3 shell, a backup) holds it open
            raise JobIndexError(f"the job index {self.path} is damaged ({exc}) and could not be moved aside "
                                f"({move}); close the program that holds it and start again") from None
        log.error("the job index %s is damaged (%s); moved it aside to %s and rebuilding it from "
                  "index/, out/, archive/ and error/", self.path, exc, aside.name)
        self._holder[0] = connect(self.path)
        for imported in sorted(self.index_dir.glob("jobs.jsonl*.imported")):
            import_jsonl(self, imported)  # the history from before the migration, complete
        if self._rebuild is not None:
            self._rebuild(self)
        log.warning("job index rebuilt: %d finished jobs", sum(self.counts().values()))

    # ----- writing ----------------------------------------------------------------------------

    def record(self, entry: dict[str, Any], *, then: Callable[[sqlite3.Connection, int], None] | None = None) -> None:
        """Record a finished job, durably (committed and fsynced before this returns). Recording the
        same run (jobKey, runId) again — a restart after a crash — updates its row. ``then`` gets the
        run's row id in the same transaction (its pages' text goes in with it)."""
        row = to_row(entry)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(INSERT, row)
            if then is not None:
                found = conn.execute("SELECT id FROM jobs WHERE job_key = ? AND run_id IS ? ORDER BY id DESC LIMIT 1",
                                     (entry["jobKey"], entry.get("runId"))).fetchone()
                then(conn, found[0])

        self.write(work)

    def record_many(self, entries: Iterable[dict[str, Any]], *, replace: bool = True) -> None:
        """Many jobs in one transaction. ``replace=False`` keeps a run already recorded as it is (a
        rebuild: what the index had is more complete than what is found on disk)."""
        self.write(lambda conn: conn.executemany(INSERT if replace else INSERT_NEW, map(to_row, entries)))

    def add_decision(self, job_key: str, decision: dict[str, Any]) -> bool:
        """Append a person's decision about a held duplicate to the latest run of its key. Safe to
        repeat after a crash: a decision already there (same file, same action) is not added twice.
        False when the key has no run recorded."""
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT id, decision FROM jobs WHERE job_key = ? ORDER BY id DESC LIMIT 1",
                               (job_key,)).fetchone()
            if row is None:
                return False
            decisions = json.loads(row[1]) if row[1] else []
            decisions = decisions if isinstance(decisions, list) else [decisions]
            if not any(d.get("file") == decision.get("file") and d.get("action") == decision.get("action")
                       for d in decisions):
                decisions.append(decision)
                conn.execute("UPDATE jobs SET decision = ? WHERE id = ?",
                             (json.dumps(decisions, ensure_ascii=False), row[0]))
            return True

        return bool(self.write(work))

    # ----- reading ----------------------------------------------------------------------------

    def is_done(self, job_key: str) -> bool:
        """Did the latest run of this key end DONE? (One lookup in the key index.)"""
        row = self.read(lambda c: c.execute("SELECT state FROM jobs WHERE job_key = ? ORDER BY id DESC LIMIT 1",
                                            (job_key,)).fetchone(), None)
        return row is not None and row[0] == "DONE"

    def is_recorded(self, job_key: str, run_id: str) -> bool:
        row = self.read(lambda c: c.execute("SELECT 1 FROM jobs WHERE job_key = ? AND run_id = ?",
                                            (job_key, run_id)).fetchone(), None)
        return row is not None

    def get(self, job_key: str) -> list[dict[str, Any]]:
        """Every run of this key, oldest first."""
        rows: list[Any] = self.read(
            lambda c: c.execute(f"{SELECT} WHERE job_key = ? ORDER BY id", (job_key,)).fetchall(), [])
        return [from_row(r) for r in rows]

    def page(self, limit: int = 50, *, offset: int = 0, before: int | None = None,
             state: str | None = None) -> JobPage:
        """Newest jobs first, optionally of one state. ``before`` (from the previous page) is a cursor
        that stays cheap however deep one pages; ``offset`` is for small jumps."""
        where: list[str] = []
        args: list[object] = []
        if before is not None:
            where.append("id < ?")
            args.append(before)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        sql = f"{SELECT}{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id DESC LIMIT ? OFFSET ?"
        rows: list[Any] = self.read(lambda c: c.execute(sql, (*args, limit + 1, max(0, offset))).fetchall(), [])
        more = len(rows) > limit
        rows = rows[:limit]
        return JobPage([from_row(r) for r in rows], rows[-1][0] if more and rows else None)

    def counts(self) -> dict[str, int]:
        """Jobs by state (each run counts), from the state index alone."""
        rows: list[Any] = self.read(
            lambda c: c.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall(), [])
        return dict(rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Every job, oldest first, read in short batches (a writer is never held up for long)."""
        last = 0
        while True:
            def batch(c: sqlite3.Connection, after: int = last) -> list[Any]:
                return c.execute(f"{SELECT} WHERE id > ? ORDER BY id LIMIT ?", (after, EXPORT_BATCH)).fetchall()

            rows: list[Any] = self.read(batch, [])
            if not rows:
                return
            last = rows[-1][0]
            yield from map(from_row, rows)

    # ----- life -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            _close_all(self._holder)

    def __enter__(self) -> JobIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
