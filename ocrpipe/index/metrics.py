"""``index/metrics.json``: integer counters plus ``updatedAt``, rewritten atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocrpipe.errors import Code
from ocrpipe.folders.fsutil import atomic_write_json, read_json
from ocrpipe.folders.store import utc_now

METRICS_FILE = "metrics.json"
# Jobs that ended in error/, one counter per family of reason codes (errors.Code: ARCHIVE_BOMB → archive).
ERROR_FAMILY_COUNTERS = tuple(sorted({f"errors_{code.family.lower()}" for code in Code}))
# Hook events delivered, given up (moved to hooks/failed/), and waiting in hooks/pending/ (a gauge).
HOOK_COUNTERS = ("hooks_delivered", "hooks_failed", "hooks_pending")
# What retention removed (files of archive/ and error/, their bytes) and the index rows it thinned.
RETENTION_COUNTERS = ("retention_files_removed", "retention_bytes_removed", "retention_rows_thinned")
COUNTERS = (
    "jobs_done", "jobs_error", "jobs_running", "jobs_queued", "pages_done", "duplicates_detected",
    "duplicates_pending", "duplicates_used_existing", "duplicates_discarded", "duplicates_reprocessed", "retries",
    "timeouts", "disk_errors", *ERROR_FAMILY_COUNTERS, *HOOK_COUNTERS,
    *RETENTION_COUNTERS,
    # Office documents and e-mails converted to PDF (the CONVERT stage), and those that failed for good there.
    "conversions_done", "conversions_failed",
)
# Gauges describe the present and are set each tick; the rest only ever grow.
GAUGES = frozenset({"jobs_running", "jobs_queued", "duplicates_pending", "hooks_pending"})
RENAMED = {"duplicates_held": "duplicates_detected"}  # older metrics.json files carry on


def make_empty_metrics() -> dict[str, Any]:
    """The valid keys, all zero: the one definition of what metrics.json holds."""
    metrics: dict[str, Any] = {name: 0 for name in COUNTERS}
    metrics["updatedAt"] = None
    return metrics


def update_metrics(metrics: dict[str, Any], event: str, amount: int = 1) -> dict[str, Any]:
    """Add ``amount`` to the counter named ``event``; unknown events are ignored."""
    if event in COUNTERS:
        metrics[event] += int(amount)
    return metrics


def set_gauge(metrics: dict[str, Any], name: str, value: int) -> None:
    if name in GAUGES:
        metrics[name] = int(value)


def write_metrics(metrics: dict[str, Any], index_dir: Path | str) -> Path:
    index_dir = Path(index_dir)  # a plain string too, as scripts pass it
    index_dir.mkdir(parents=True, exist_ok=True)
    metrics["updatedAt"] = utc_now()
    path = index_dir / METRICS_FILE
    atomic_write_json(path, metrics, durable=False, pretty=True)  # rewritten every tick; a lost update is harmless
    return path


def load_metrics(index_dir: Path) -> dict[str, Any]:
    """Counters carry on across restarts; anything unreadable starts again from zero."""
    metrics = make_empty_metrics()
    try:
        saved = read_json(index_dir / METRICS_FILE)
    except (OSError, ValueError):
        return metrics
    for old, new in RENAMED.items():
        if old in saved and new not in saved:
            saved[new] = saved[old]
    for name in COUNTERS:
        if name not in GAUGES and isinstance(saved.get(name), int):
            metrics[name] = saved[name]
    return metrics


def error_counter(code: str | None) -> str:
    """The counter of a reason code's family; an unknown code counts as a tool failure."""
    try:
        return f"errors_{Code(code).family.lower()}"
    except ValueError:
        return f"errors_{Code.TOOL_FAILED.family.lower()}"
