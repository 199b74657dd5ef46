"""Finished jobs for the HTTP API, newest first and paged: the one place it reads the job index."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Protocol

from ocrpipe.jobindex import iter_index


class History(Protocol):
    """What the API needs of the job index; opened for one request, on that request's thread."""

    def page(self, *, limit: int, offset: int = 0, state: str | None = None) -> list[dict[str, Any]]:
        """Finished jobs' index records, newest first, optionally of one state."""

    def get(self, job_key: str) -> dict[str, Any] | None:
        """The latest index record of ``job_key``, or None."""

    def finished_since(self, since_iso: str) -> list[tuple[str, int]]:
        """(finishedAt, pages) of the jobs finished at or after ``since_iso`` (ISO 8601 UTC)."""


class JsonlHistory:
    """Over ``index/jobs.jsonl``, read whole at each call: an interim until the index is SQLite."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir

    def _newest_first(self) -> list[dict[str, Any]]:
        latest = {entry["jobKey"]: entry for entry in iter_index(self.index_dir)}
        return list(reversed(latest.values()))

    def page(self, *, limit: int, offset: int = 0, state: str | None = None) -> list[dict[str, Any]]:
        entries = [e for e in self._newest_first() if state is None or e.get("state") == state]
        return entries[offset:offset + limit]

    def get(self, job_key: str) -> dict[str, Any] | None:
        found = None
        for entry in iter_index(self.index_dir):
            if entry["jobKey"] == job_key:
                found = entry
        return found

    def finished_since(self, since_iso: str) -> list[tuple[str, int]]:
        return [(e["finishedAt"], int(e.get("pages") or 0)) for e in iter_index(self.index_dir)
                if isinstance(e.get("finishedAt"), str) and e["finishedAt"] >= since_iso]


@contextlib.contextmanager
def open_history(index_dir: Path) -> Iterator[History]:
    yield JsonlHistory(index_dir)
