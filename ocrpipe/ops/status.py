"""``ocrpipe status``: counts by state, running jobs and recent errors, read from files only."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ocrpipe.config import Settings
from ocrpipe.folders.fsutil import read_json
from ocrpipe.folders.intake import walk_inbox
from ocrpipe.folders.nofollow import is_real_dir
from ocrpipe.folders.store import STATE_FILE
from ocrpipe.hooks.events import backlog
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.metrics import METRICS_FILE
from ocrpipe.index.search import SearchTooSlow, flagged
from ocrpipe.model import RUNNING_STATES, JobState

RECENT_ERRORS = 5
ERRORS_BY_CODE_WINDOW = 100  # "recent": the last this many failed jobs, grouped by reason code
RECENT_FLAGGED = 10  # documents with a page read below LOW_CONFIDENCE, newest first


def collect_status(settings: Settings) -> dict[str, Any]:
    """Safe while ``ocrpipe run`` works: every file read is written atomically, and the job index is
    read in WAL mode (aggregate queries only: nothing loads the history)."""
    with JobIndex(settings.index_dir, readonly=True) as index:
        counts: Counter[str] = Counter(index.counts())
        running = []
        work = settings.work_dir
        for state_file in sorted(work.glob(f"*/{STATE_FILE}")) if work.is_dir() else []:
            try:
                record = read_json(state_file)
            except (OSError, ValueError):
                continue
            if index.is_recorded(record.get("jobKey", ""), record.get("runId", "")):
                continue  # finished and recorded; its folder is being removed
            counts[record["state"]] += 1
            if JobState(record["state"]) in RUNNING_STATES:
                running.append({"jobKey": record["jobKey"], "state": record["state"],
                                "source": record["source"]["relpath"], "since": record["history"][-1]["at"]})
        window = index.page(ERRORS_BY_CODE_WINDOW, state="ERROR").jobs
        errors = window[:RECENT_ERRORS][::-1]  # oldest of them first
        by_code = Counter(e.get("reasonCode") or "UNKNOWN" for e in window)
        try:
            poorly, _ = flagged(index, settings.low_confidence, limit=RECENT_FLAGGED)
        except SearchTooSlow:
            poorly = []
    waiting = sum(1 for _ in walk_inbox(settings.in_dir, settings.intake_max_depth)) if settings.in_dir.is_dir() else 0
    held = sum(1 for p in settings.hold_dir.iterdir() if is_real_dir(p)) if settings.hold_dir.is_dir() else 0
    try:
        metrics = read_json(settings.index_dir / METRICS_FILE)
    except (OSError, ValueError):
        metrics = None
    return {"counts": dict(sorted(counts.items())), "running": running, "waitingInInbox": waiting,
            "heldDuplicates": held, "recentErrors": [
                {"jobKey": e["jobKey"], "source": e.get("source"), "reason": e.get("reason"),
                 "code": e.get("reasonCode")} for e in errors],
            "recentErrorsByCode": dict(by_code.most_common()),
            "readPoorly": [{"jobKey": e["jobKey"], "source": e.get("source"), "output": e.get("output"),
                            "pages": e["lowConfidencePages"], "confidence": e.get("confidence")} for e in poorly],
            "lowConfidence": settings.low_confidence,
            "metricsUpdatedAt": (metrics or {}).get("updatedAt"), "hooks": hook_status(settings, metrics),
            # Office documents and e-mails converted to PDF (the CONVERT stage), and those that failed there.
            "conversions": {"done": int((metrics or {}).get("conversions_done") or 0),
                            "failed": int((metrics or {}).get("conversions_failed") or 0)}}


def hook_status(settings: Settings, metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The outbox: events waiting, given up (hooks/failed/), and delivered so far (metrics.json)."""
    counts = backlog(settings)
    oldest = counts.pop("oldestPendingAt")
    delivered = (metrics or {}).get("hooks_delivered")
    return {"enabled": settings.hooks.enabled, **counts, "delivered": delivered if isinstance(delivered, int) else 0,
            "oldestPendingAt": datetime.fromtimestamp(oldest, UTC).isoformat(timespec="seconds") if oldest else None}


def print_status(settings: Settings, *, as_json: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up at the call: it may have been replaced since the import
    status = collect_status(settings)
    if as_json:
        print(json.dumps(status, indent=2, ensure_ascii=False), file=out)
        return
    print(f"Data folder: {settings.data_dir}", file=out)
    print(f"Waiting in {Path(settings.in_dir).name}/: {status['waitingInInbox']}   "
          f"held duplicates: {status['heldDuplicates']}", file=out)
    print("Jobs by state:" if status["counts"] else "Jobs by state: none yet", file=out)
    for state, n in status["counts"].items():
        print(f"  {state:<16} {n}", file=out)
    if status["running"]:
        print("Running:", file=out)
        for job in status["running"]:
            print(f"  {job['state']:<12} {job['source']}  (since {job['since']}, job {job['jobKey'][:12]})", file=out)
    if status["recentErrors"]:
        print(f"Recent errors by code (the last {ERRORS_BY_CODE_WINDOW} at most):", file=out)
        for code, n in status["recentErrorsByCode"].items():
            print(f"  {code:<24} {n}", file=out)
        print("Recent errors:", file=out)
        for err in status["recentErrors"]:
            print(f"  {err['source']}: {err['reason']} [{err['code'] or 'UNKNOWN'}]", file=out)
    hooks = status["hooks"]
    if hooks["enabled"] or hooks["pending"] or hooks["failed"]:
        since = f" (oldest since {hooks['oldestPendingAt']})" if hooks["oldestPendingAt"] else ""
        print(f"Hook events: {hooks['delivered']} delivered, {hooks['pending']} pending{since}, "
              f"{hooks['failed']} failed" + ("; see ocrpipe hooks" if hooks["failed"] else ""), file=out)
    if any(status["conversions"].values()):
        print(f"Conversions (Office, e-mail): {status['conversions']['done']} done, "
              f"{status['conversions']['failed']} failed", file=out)
    if status["readPoorly"]:
        print(f"Read poorly (a page below LOW_CONFIDENCE={status['lowConfidence']:g}; newest first, "
              f"the last {RECENT_FLAGGED} at most):", file=out)
        for doc in status["readPoorly"]:
            pages = ", ".join(map(str, doc["pages"]))
            print(f"  {doc['output'] or doc['source']}  page(s) {pages}", file=out)
    if status["metricsUpdatedAt"]:
        print(f"Last scheduler tick: {status['metricsUpdatedAt']}", file=out)
