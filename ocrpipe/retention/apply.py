"""Applying retention: the plan written first, then its items removed one by one and recorded in the job
index and in ``removed.jsonl`` (what a rebuild of the index reads back), then old rows thinned.

A crash at any instant leaves the plan: the next apply finishes it before it plans anew. An item is
removed only if it is in the plan and, checked again just before, still a plain file of ocrpipe's where
the plan says; one already gone counts as done. Two applies never run at once (``retention.lock``)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ocrpipe.config import Settings
from ocrpipe.errors import AlreadyRunningError
from ocrpipe.folders.retire import remove_item
from ocrpipe.folders.store import utc_now
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.retention import PLAN_DIR, ensure_age_index, mark_removed, note_applied, removed_log, thin
from ocrpipe.retention.plan import Cutoffs, Summary, plan_path, read_plan, write_plan

log = logging.getLogger("ocrpipe.retention")
LOCK_FILE = "retention.lock"
RECORD_EVERY = 200  # removals recorded per transaction (and fsync of the log): one per file would take minutes


class _Recorder:
    """Removals noted in memory, then written as a batch: to the log (fsynced), then to the index."""

    def __init__(self, settings: Settings, index: JobIndex) -> None:
        self.settings = settings
        self.index = index
        self.pending: list[dict[str, Any]] = []

    def note(self, item: dict[str, Any], trashed: str | None) -> None:
        self.pending.append({"kind": item["kind"], "jobKey": item.get("jobKey"), "runId": item.get("runId"),
                             "state": item.get("state"), "finishedAt": item.get("finishedAt"), "path": item["path"],
                             "removedAt": utc_now(), "trashedTo": trashed})
        if len(self.pending) >= RECORD_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        path = removed_log(self.settings.index_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", newline="\n") as handle:
            handle.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.pending if e["jobKey"]))
            handle.flush()
            os.fsync(handle.fileno())
        mark_removed(self.index, self.pending)
        self.pending = []


def _execute(settings: Settings, index: JobIndex, path: Path, summary: Summary, *, stop: Callable[[], bool],
             after_item: Callable[[dict[str, Any]], None]) -> bool:
    """The plan's items, then its thinning; True when it ran to its end (the plan file is then removed)."""
    cuts, items = read_plan(path)
    recorder = _Recorder(settings, index)
    try:
        for item in items:
            if stop():
                return False
            try:
                files, size, trashed = remove_item(settings, item)
            except OSError as exc:
                summary.failed.append(f"{item['path']}: {exc.strerror or exc}")
                log.warning("retention: could not remove %s (%s); tried again at the next pass", item["path"], exc)
                continue
            if files:
                summary.tally(item["kind"]).add(item, files, size)
            recorder.note(item, trashed)
            after_item(item)
    finally:
        recorder.flush()
    if cuts.index is not None:
        summary.rows_thinned += thin(index, cuts.index, utc_now(), archive=cuts.archive, error=cuts.error, stop=stop)
    if stop():
        return False
    path.unlink()
    return True


def apply_retention(settings: Settings, index: JobIndex, now: datetime | None = None, *,
                    stop: Callable[[], bool] = lambda: False,
                    after_item: Callable[[dict[str, Any]], None] = lambda item: None) -> Summary:
    """Finish an interrupted plan, then plan and apply the retention settings as of ``now``. ``stop`` is
    asked between items (ocrpipe run stopping): what is left stays planned for the next pass."""
    now = now or datetime.now(UTC)
    summary = Summary(applied=True, cutoffs=Cutoffs.of(settings, now),
                      trash=str(settings.retain_trash_dir) if settings.retain_trash_dir else None)
    folder = settings.index_dir / PLAN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise AlreadyRunningError("retention is being applied right now by another ocrpipe (the daily pass of "
                                  "'ocrpipe run', or another 'ocrpipe clean --apply'); try again when it is done"
                                  ) from None
    try:
        path = plan_path(settings)
        if path.exists():
            before = summary.archive.items + summary.error.items
            log.info("retention: finishing the removals an interrupted pass had planned (%s)", path)
            if not _execute(settings, index, path, summary, stop=stop, after_item=after_item):
                return summary
            summary.resumed = summary.archive.items + summary.error.items - before
        if not settings.retention_on:
            return summary
        ensure_age_index(index)
        if _execute(settings, index, write_plan(settings, index, now), summary, stop=stop, after_item=after_item):
            note_applied(index, now.isoformat(timespec="milliseconds"))
        return summary
    finally:
        lock.release()


def pending_plan(settings: Settings) -> bool:
    """An apply was interrupted: its plan waits to be finished."""
    return plan_path(settings).exists()
