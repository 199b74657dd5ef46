"""``index/jobs.jsonl``: one line per finished job, so finished jobs need no folder in work/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

INDEX_FILE = "jobs.jsonl"


def iter_index(index_dir: Path) -> Iterator[dict[str, Any]]:
    """Every finished-job line; a torn last line (crash mid-append) is skipped."""
    try:
        handle = open(index_dir / INDEX_FILE, encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "jobKey" in entry:
                yield entry


class JobIndex:
    """Finished jobs by key: the scheduler's memory of what it has already done."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        index_dir.mkdir(parents=True, exist_ok=True)
        self.finished: dict[str, dict[str, Any]] = {entry["jobKey"]: entry for entry in iter_index(index_dir)}

    def record(self, entry: dict[str, Any]) -> None:
        # Not fsynced: the job's own state, outputs and original are already on disk; a line lost to
        # a power cut only means a later duplicate of this file is processed instead of held.
        with open(self.index_dir / INDEX_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.finished[entry["jobKey"]] = entry

    def is_done(self, job_key: str) -> bool:
        entry = self.finished.get(job_key)
        return entry is not None and entry.get("state") == "DONE"
