"""The job index's SQLite file: connection settings, schema, and a finished job as a row and back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ocrpipe.errors import ExitCode, OcrpipeError
from ocrpipe.index.textschema import create_text_tables

DB_FILE = "ocrpipe.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 10.0

# (entry field, column): the fields a job entry has today. Others (added by later code) go to ``extra``.
FIELDS = (
    ("jobKey", "job_key"), ("runId", "run_id"), ("state", "state"), ("source", "source"),
    ("output", "output"), ("archived", "archived"), ("errorDir", "error_dir"), ("pages", "pages"),
    ("kind", "kind"), ("pdfa", "pdfa"), ("attempts", "attempts"), ("timings", "timings"),
    ("reason", "reason"), ("code", "code"), ("createdAt", "created_at"), ("finishedAt", "finished_at"),
    ("decision", "decision"),
)
JSON_FIELDS = frozenset({"attempts", "timings", "decision"})
KNOWN = frozenset(name for name, _ in FIELDS)
COLUMNS = [column for _, column in FIELDS] + ["extra"]
INSERT = (f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
          f"ON CONFLICT (job_key, run_id) DO UPDATE SET "
          + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("job_key", "run_id")))
INSERT_NEW = INSERT.split(" ON CONFLICT")[0] + " ON CONFLICT (job_key, run_id) DO NOTHING"
SELECT = f"SELECT id, {', '.join(COLUMNS)} FROM jobs"


def _from_json(name: str) -> str:
    value = f"json_extract(?1, '$.{name}')"
    return f"NULLIF(json_quote({value}), 'null')" if name in JSON_FIELDS else value


# One JSON line (parameter 1) as a row, taken apart by SQLite itself: an import of a million lines
# spends its time in C, not in Python. Lines that are not whole objects with a jobKey and a state
# (a torn last line) insert nothing.
INSERT_JSON = (
    f"INSERT INTO jobs ({', '.join(COLUMNS)}) SELECT * FROM (SELECT "
    + ", ".join(f"{_from_json(name)} AS {column}" for name, column in FIELDS)
    + f", NULLIF(json_remove(?1, {', '.join(repr('$.' + name) for name, _ in FIELDS)}), '{{}}') "
    "WHERE json_valid(?1)) WHERE typeof(job_key) = 'text' AND typeof(state) = 'text'"
)

# The rowid orders jobs as they finished: "newest" needs no index of its own. Rows without a runId
# (written by old versions) are never merged: NULLs are distinct in a UNIQUE index.
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    job_key TEXT NOT NULL,
    run_id TEXT,
    state TEXT NOT NULL,
    source TEXT, output TEXT, archived TEXT, error_dir TEXT,
    pages INTEGER, kind TEXT, pdfa TEXT,
    attempts TEXT, timings TEXT,
    reason TEXT, code INTEGER,
    created_at TEXT, finished_at TEXT,
    decision TEXT,
    extra TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_key ON jobs (job_key, run_id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
"""
INDEXES = ("jobs_by_key", "jobs_by_state")
# One encoder for all rows: json.dumps(…, ensure_ascii=False) builds a new one at every call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


class JobIndexError(OcrpipeError):
    """Base of the job index's errors."""

    exit_code = ExitCode.JOBS_FAILED


class IndexBusyError(JobIndexError):
    """Another program kept the job index locked for longer than we wait."""


class IndexDamagedError(JobIndexError):
    """The job index file is damaged (and this process does not rebuild it)."""


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """A damaged file, as opposed to a busy one or a bug in a query."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_io_failure(exc: sqlite3.DatabaseError) -> bool:
    """The file cannot be opened, read or written (permissions, a full disk, a disk error)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
                    sqlite3.SQLITE_FULL, sqlite3.SQLITE_AUTH)


def is_busy(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """One connection, shared by the threads of a process (the caller serialises them).

    A reader is opened only on a file that exists, and sets ``query_only``. A plain path, not a
    ``file:`` URI: SQLite refuses URIs of Windows network paths (``\\\\server\\share``). Autocommit
    mode: every write is an explicit, short transaction (``BEGIN IMMEDIATE`` … ``COMMIT``)."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        if readonly:
            conn.execute("PRAGMA query_only = ON")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: the WAL is fsynced at every commit, so a recorded job survives a power cut
            # (the work folder is removed only after this).
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA journal_size_limit = 67108864")  # the WAL shrinks back after a big import
            conn.executescript(SCHEMA)
            create_text_tables(conn)  # the pages' text and confidence: added to an older file here
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # garbage is found here, not later
    except BaseException:
        conn.close()
        raise
    return conn


def to_row(entry: dict[str, Any]) -> tuple[Any, ...]:
    """A job entry (the dict the scheduler records) as the column values of INSERT."""
    values = []
    for name, _ in FIELDS:
        value = entry.get(name)
        if name in JSON_FIELDS and value is not None:
            value = _encode(value)
        values.append(value)
    extra = {k: v for k, v in entry.items() if k not in KNOWN}
    values.append(_encode(extra) if extra else None)
    return tuple(values)


def from_row(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    """A row of SELECT (id first) as the job entry that was recorded, unknown fields included."""
    entry: dict[str, Any] = {}
    for (name, _), value in zip(FIELDS, row[1:], strict=False):
        entry[name] = json.loads(value) if name in JSON_FIELDS and value is not None else value
    extra = row[-1]
    if extra:
        entry.update(json.loads(extra))
    return entry
