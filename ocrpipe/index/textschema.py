"""The job index's tables of page text and reading confidence, and how a page is keyed in them.

A page's key is its run's row in ``jobs`` and its page number: ``(jobs.id << PAGE_BITS) | page``. So the
pages of a run are one range of keys (found, replaced or removed at once), and full-text hits come out
newest run first by walking FTS5's rowids backwards, which stops as soon as a page of hits is found."""

from __future__ import annotations

import sqlite3

PAGE_BITS = 20  # pages 1 … 1,048,575 of a document
MAX_PAGE = (1 << PAGE_BITS) - 1
TEXT_TABLE = "page_text"
META_TABLE = "page_meta"
# Folds case and accents (numero finds numéro, strasse does not find straße: ß is a letter of its own).
TOKENIZE = "unicode61 remove_diacritics 2"

_META = f"""
CREATE TABLE IF NOT EXISTS {META_TABLE} (
    id INTEGER PRIMARY KEY,  -- (jobs.id << {PAGE_BITS}) | page
    chars INTEGER NOT NULL,  -- characters in the words Tesseract read
    confidence REAL NOT NULL  -- their word confidence, weighted by characters, 0-100
);
CREATE INDEX IF NOT EXISTS {META_TABLE}_by_confidence ON {META_TABLE} (confidence);
"""
_TEXT = f"CREATE VIRTUAL TABLE IF NOT EXISTS {TEXT_TABLE} USING fts5(text, tokenize = '{TOKENIZE}')"


def run_range(job_id: int) -> tuple[int, int]:
    """The first and last page key of a run's row."""
    return job_id << PAGE_BITS, (job_id << PAGE_BITS) | MAX_PAGE


def _forget_trigger(with_text: bool) -> str:
    """A run's row removed from ``jobs`` (retention, an import's duplicate) takes its pages with it."""
    text = (f"DELETE FROM {TEXT_TABLE} WHERE rowid BETWEEN old.id << {PAGE_BITS} "
            f"AND (old.id << {PAGE_BITS}) | {MAX_PAGE};") if with_text else ""
    return (f"CREATE TRIGGER IF NOT EXISTS jobs_forget_pages AFTER DELETE ON jobs BEGIN "
            f"DELETE FROM {META_TABLE} WHERE id BETWEEN old.id << {PAGE_BITS} AND (old.id << {PAGE_BITS}) | {MAX_PAGE};"
            f"{text} END")


def create_text_tables(conn: sqlite3.Connection) -> None:
    """The tables, in a file of any age (an index made before them gets them at its next writer's start).
    Without FTS5 in this Python's SQLite, the confidences are kept and the text is not."""
    conn.executescript(_META)
    with_text = has_fts5(conn)
    if with_text:
        conn.execute(_TEXT)
    exists = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'jobs_forget_pages'"
                          ).fetchone()
    if exists is not None and with_text and TEXT_TABLE not in exists[0]:
        conn.execute("DROP TRIGGER jobs_forget_pages")  # made where FTS5 was missing: now it takes the text too
    conn.execute(_forget_trigger(with_text))


def has_fts5(conn: sqlite3.Connection) -> bool:
    """The text table exists already, or FTS5 is compiled in (asked of SQLite itself)."""
    if has_table(conn, TEXT_TABLE):
        return True
    return bool(conn.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()[0])


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None
