"""A damaged job index is rebuilt from what is on disk: error/<key>/error.json, archive/ and out/.

Jobs still in work/ need nothing here: the scheduler records each of them when it finishes."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import read_json, sha256_file
from ocrpipe.folders.publish import ERROR_FILE, INTAKE_STAGE, output_relpath
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.retention import removed_log, restore_removals
from ocrpipe.model import make_job_key

log = logging.getLogger("ocrpipe.index")
BATCH = 1000
TEMP_SUFFIX = ".ocrpipe-tmp"


def open_run_index(settings: Settings, profile: dict[str, Any]) -> JobIndex:
    """The index as ``ocrpipe run`` opens it: imports a leftover jobs.jsonl, rebuilds a damaged file."""
    return JobIndex(settings.index_dir, rebuild=DiskHistory(settings, profile))


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="milliseconds")


class DiskHistory:
    """Finished jobs as far as out/, archive/ and error/ tell them.

    An archived original gives a DONE job whose key is its hash under the *current* settings (the
    settings it was processed with are not on disk), its source and archived paths, and its output
    when out/ has a file of the expected name. error.json gives almost everything of an ERROR job."""

    def __init__(self, settings: Settings, profile: dict[str, Any]) -> None:
        self.settings = settings
        self.profile = profile

    def __call__(self, index: JobIndex) -> None:
        index.record_many(self.errors(), replace=False)
        # Originals already known (from jobs.jsonl.imported) are not hashed again.
        index.write(lambda c: c.execute("CREATE INDEX IF NOT EXISTS rebuild_by_archived ON jobs (archived)"))
        try:
            batch: list[dict[str, Any]] = []
            for entry in self.archived(index):
                batch.append(entry)
                if len(batch) >= BATCH:
                    index.record_many(batch, replace=False)
                    batch.clear()
            index.record_many(batch, replace=False)
        finally:
            index.write(lambda c: c.execute("DROP INDEX IF EXISTS rebuild_by_archived"))
        # Runs whose files retention removed: no file on disk tells of them any more, its log does.
        restore_removals(index, removed_log(self.settings.index_dir))

    def errors(self) -> Iterator[dict[str, Any]]:
        folder = self.settings.error_dir
        for error_file in sorted(folder.glob(f"*/{ERROR_FILE}")) if folder.is_dir() else []:
            try:
                error = read_json(error_file)
                if isinstance(error, dict) and error.get("stage") == INTAKE_STAGE:
                    continue  # a file refused at intake: no job was made, nothing to index
                key = error["jobKey"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("rebuilding the job index: %s is unreadable (%s); skipped", error_file, exc)
                continue
            yield {"jobKey": key, "runId": error.get("runId"), "state": "ERROR", "source": error.get("source"),
                   "errorDir": str(error_file.parent), "attempts": error.get("attempts"),
                   "reason": error.get("reason"), "code": error.get("exitCode"), "stage": error.get("stage"),
                   "finishedAt": error.get("failedAt"), "rebuiltFrom": "error"}

    def archived(self, index: JobIndex) -> Iterator[dict[str, Any]]:
        root = self.settings.archive_dir
        seen = 0
        rebuilt_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        for path in root.rglob("*") if root.is_dir() else []:
            if not path.is_file() or path.name.endswith(TEMP_SUFFIX) or self._known(index, path):
                continue
            try:
                _, key = make_job_key(sha256_file(path), self.profile)
                modified = _mtime(path)
            except OSError as exc:
                log.warning("rebuilding the job index: cannot read %s (%s); skipped", path, exc)
                continue
            rel = path.relative_to(root).as_posix()
            output = self.settings.out_dir / output_relpath(rel)
            seen += 1
            if seen % 10_000 == 0:
                log.info("rebuilding the job index: %d archived originals hashed", seen)
            yield {"jobKey": key, "runId": None, "state": "DONE", "source": rel, "archived": str(path),
                   "output": str(output) if output.is_file() else None,
                   # When it finished is not on disk: the file's time is the scanner's, not ours (a scan from
                   # 2001 dropped today). Counted from the rebuild, retention never removes it early.
                   "finishedAt": rebuilt_at, "fileModifiedAt": modified, "rebuiltFrom": "archive"}

    @staticmethod
    def _known(index: JobIndex, path: Path) -> bool:
        def ask(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM jobs WHERE archived = ?", (str(path),)).fetchone() is not None

        return index.read(ask, False)
