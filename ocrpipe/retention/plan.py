"""What retention would remove now: found in the job index (archive/, error/ of jobs) and in error.json
(files refused at intake), summed up as files, bytes and the oldest; written as a plan file to apply."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.folders.retire import archive_item, error_item, intake_error_items
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.retention import PLAN_DIR, count_to_thin, cutoff, old_runs

PLAN_FILE = "plan.jsonl"
PLAN_VERSION = 1


@dataclass
class Cutoffs:
    """Finish times before which a run's archived original, error/ folder, full index row go (None: kept)."""

    archive: str | None
    error: str | None
    index: str | None

    @classmethod
    def of(cls, settings: Settings, now: datetime) -> Cutoffs:
        def cut(days: int | None) -> str | None:
            return None if days is None else cutoff(now, days)

        return cls(cut(settings.retain_archive_days), cut(settings.retain_error_days),
                   cut(settings.retain_index_days))


@dataclass
class Tally:
    """Files of one kind (archive/ or error/): how many, their bytes, the oldest finish time."""

    items: int = 0
    files: int = 0
    bytes: int = 0
    oldest: str | None = None

    def add(self, item: dict[str, Any], files: int | None = None, size: int | None = None) -> None:
        self.items += 1
        self.files += len(item["files"]) if files is None else files
        self.bytes += item["bytes"] if size is None else size
        finished = item.get("finishedAt")
        if isinstance(finished, str) and (self.oldest is None or finished < self.oldest):
            self.oldest = finished

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "files": self.files, "bytes": self.bytes, "oldestFinishedAt": self.oldest}


@dataclass
class Summary:
    """A dry run's "would go", or an apply's "went"."""

    applied: bool
    cutoffs: Cutoffs
    archive: Tally = field(default_factory=Tally)
    error: Tally = field(default_factory=Tally)
    rows_thinned: int = 0
    failed: list[str] = field(default_factory=list)  # "path: reason" of files that could not be removed
    resumed: int = 0  # items of an interrupted apply finished first
    trash: str | None = None

    def tally(self, kind: str) -> Tally:
        return self.archive if kind == "archive" else self.error

    def as_json(self) -> dict[str, Any]:
        c = self.cutoffs
        return {"applied": self.applied, "finishedBefore": {"archive": c.archive, "error": c.error, "index": c.index},
                "archive": self.archive.as_json(), "error": self.error.as_json(),
                "indexRowsThinned" if self.applied else "indexRowsToThin": self.rows_thinned,
                "files": self.archive.files + self.error.files, "bytes": self.archive.bytes + self.error.bytes,
                "failed": self.failed, "resumedItems": self.resumed, "trashDir": self.trash}


def planned_items(settings: Settings, index: JobIndex, cuts: Cutoffs) -> Iterator[dict[str, Any]]:
    """Each archived original, error/ folder of a job, and error/ folder of a refused file that is old enough
    and still there, oldest recorded first. Nothing in out/, in/, hold/ or work/ is ever among them."""
    if cuts.archive is not None:
        for run in old_runs(index, "archive", cuts.archive):
            item = archive_item(settings, run)
            if item is not None:
                yield item
    if cuts.error is not None:
        for run in old_runs(index, "error", cuts.error):
            item = error_item(settings, run)
            if item is not None:
                yield item
        yield from intake_error_items(settings, cuts.error)


def survey(settings: Settings, index: JobIndex, now: datetime,
           on_item: Callable[[dict[str, Any]], None] = lambda item: None) -> Summary:
    """The dry run: what would go now, and how many index rows would be thinned. Reads only."""
    cuts = Cutoffs.of(settings, now)
    summary = Summary(applied=False, cutoffs=cuts, trash=str(settings.retain_trash_dir or "") or None)
    for item in planned_items(settings, index, cuts):
        summary.tally(item["kind"]).add(item)
        on_item(item)
    if cuts.index is not None:
        summary.rows_thinned = count_to_thin(index, cuts.index, archive=cuts.archive, error=cuts.error, planned=True)
    return summary


def plan_path(settings: Settings) -> Path:
    return settings.index_dir / PLAN_DIR / PLAN_FILE


def write_plan(settings: Settings, index: JobIndex, now: datetime) -> Path:
    """The plan, complete and fsynced before anything is removed: a header, then one item per line."""
    cuts = Cutoffs.of(settings, now)
    final = plan_path(settings)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.ocrpipe-tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(json.dumps({"version": PLAN_VERSION, "createdAt": now.isoformat(timespec="milliseconds"),
                                 "cutoffs": vars(cuts)}) + "\n")
        for item in planned_items(settings, index, cuts):
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    return final


def read_plan(path: Path) -> tuple[Cutoffs, Iterator[dict[str, Any]]]:
    """The plan's cutoffs and its items, streamed (a torn line is skipped: the plan is complete before its rename)."""
    handle = open(path, encoding="utf-8", errors="replace")
    try:
        header = json.loads(handle.readline())
        cuts = Cutoffs(**{k: header["cutoffs"].get(k) for k in ("archive", "error", "index")})
    except (ValueError, KeyError, TypeError, AttributeError):
        handle.close()
        raise ValueError(f"{path} is not a retention plan") from None

    def items() -> Iterator[dict[str, Any]]:
        with handle:
            for line in handle:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if (isinstance(item, dict) and item.get("kind") in ("archive", "error")
                        and isinstance(item.get("files"), list) and isinstance(item.get("path"), str)):
                    yield item

    return cuts, items()
