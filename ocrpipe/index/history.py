"""Finished jobs for the HTTP API, newest first and paged: the one place it reads the job index."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocrpipe.index.db import FIELDS
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.model import JobState

CHART_PAGE = 1000  # index rows read at a time while walking back through the last hours
_COLUMN = dict(FIELDS)
_FINISHES = f"SELECT id, {_COLUMN['finishedAt']}, {_COLUMN['pages']}, {_COLUMN['state']} FROM jobs"


@dataclass(frozen=True)
class HistoryPage:
    """Newest first; ``next_before`` continues after the last of them (None: there is no more)."""

    jobs: list[dict[str, Any]]
    next_before: int | None


class History:
    """The job index as the API reads it: through its own read-only connection, for one request."""

    def __init__(self, index: JobIndex) -> None:
        self.index = index

    def page(self, *, limit: int, offset: int = 0, before: int | None = None,
             state: str | None = None) -> HistoryPage:
        """Finished runs, newest first, of one state or all; ``before`` is a cursor from an earlier page."""
        found = self.index.page(limit, offset=offset, before=before, state=state)
        return HistoryPage(found.jobs, found.next_before)

    def get(self, job_key: str) -> dict[str, Any] | None:
        """The latest run of ``job_key``, with the earlier ones (a file processed again) under ``earlierRuns``."""
        runs = self.index.get(job_key)
        if not runs:
            return None
        return {**runs[-1], "earlierRuns": runs[:-1]} if len(runs) > 1 else runs[-1]

    def finished_since(self, since_iso: str) -> list[tuple[str, int]]:
        """(finishedAt, pages) of the runs that ended DONE at or after ``since_iso``: the pages of a job that
        failed were never made searchable. The index keeps runs in the order they finished, so this walks
        back from the newest, a few columns at a time, and stops at the first older one, whatever its state."""
        found: list[tuple[str, int]] = []
        before: int | None = None
        while True:
            args: tuple[int, ...]
            if before is None:
                query, args = f"{_FINISHES} ORDER BY id DESC LIMIT ?", (CHART_PAGE,)
            else:
                query, args = f"{_FINISHES} WHERE id < ? ORDER BY id DESC LIMIT ?", (before, CHART_PAGE)

            def finishes(c: sqlite3.Connection, q: str = query, a: tuple[int, ...] = args) -> list[Any]:
                return c.execute(q, a).fetchall()

            rows: list[Any] = self.index.read(finishes, [])
            for _, finished, pages, state in rows:
                if isinstance(finished, str) and finished < since_iso:
                    return found
                if isinstance(finished, str) and state == JobState.DONE.value:
                    found.append((finished, int(pages or 0)))
            if len(rows) < CHART_PAGE:
                return found
            before = rows[-1][0]


@contextlib.contextmanager
def open_history(index_dir: Path) -> Iterator[History]:
    """A read-only index for one request: each HTTP thread has its own SQLite connection."""
    with JobIndex(index_dir, readonly=True) as index:
        yield History(index)
