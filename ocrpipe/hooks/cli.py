"""``ocrpipe hooks``: what waits in hooks/pending/ and what was given up in hooks/failed/; ``ocrpipe hooks
retry`` puts failed events back (same ids: a receiver that got one before can tell)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from ocrpipe.config import Settings
from ocrpipe.errors import ConfigError
from ocrpipe.folders.outbox import EVENT_ID, failed_dir
from ocrpipe.hooks.events import backlog, failed_events, put_back


def hooks_summary(settings: Settings) -> dict[str, Any]:
    counts = backlog(settings)
    return {**counts, "enabled": settings.hooks.enabled, "failedEvents": failed_events(settings)}


def print_hooks(settings: Settings, *, as_json: bool, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up at the call: it may have been replaced since the import
    summary = hooks_summary(settings)
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False), file=out)
        return
    if not summary["enabled"]:
        print("No hook is set (HOOK_COMMAND, WEBHOOK_URL): no events are written.", file=out)
    print(f"Pending: {summary['pending']}   failed: {summary['failed']}", file=out)
    for event in summary["failedEvents"]:
        what = event.get("problem") or f"{event['type']} {event['source']}"
        print(f"  {event['id']}  {what}  ({event['attempts']} attempts: {event.get('lastError') or '?'})", file=out)
    if summary["failedEvents"]:
        print("ocrpipe hooks retry puts them all back (or name some by id).", file=out)


def retry(settings: Settings, ids: list[str], *, out: TextIO | None = None) -> int:
    """Put the named failed events (all when none is named) back into pending/; how many went back."""
    out = out or sys.stdout  # looked up at the call: it may have been replaced since the import
    for ident in ids:
        if not EVENT_ID.fullmatch(ident):
            raise ConfigError(f"{ident!r} is not an event id (evt_ and 32 hex digits, as ocrpipe hooks lists them)")
    chosen = ids or [e["id"] for e in failed_events(settings)]
    moved = [ident for ident in chosen if put_back(settings, ident)]
    missing = sorted(set(chosen) - set(moved))
    if missing:
        raise ConfigError(f"not in {failed_dir(settings)}: {', '.join(missing)}")
    print(f"ocrpipe: {len(moved)} event(s) put back; ocrpipe run delivers them (run --once: before it exits)",
          file=out)
    return len(moved)
