"""The HTTP API's routes: a method and a request target in, a status and a JSON (or HTML) body out."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ocrpipe.config import Settings
from ocrpipe.engine.snapshot import SnapshotHolder
from ocrpipe.errors import OcrpipeError
from ocrpipe.folders.fsutil import read_json
from ocrpipe.folders.layout import find_folder
from ocrpipe.folders.store import STATE_FILE
from ocrpipe.index.history import History, open_history
from ocrpipe.index.metrics import load_metrics
from ocrpipe.index.search import SearchSyntaxError, SearchTooSlow, SearchUnavailable, flagged, search, since_iso
from ocrpipe.model import JobState
from ocrpipe.web.health import check_health, disk_free_bytes
from ocrpipe.web.searchpage import FLAGGED, PAGE_HITS, RECENT, SearchParts
from ocrpipe.web.statuspage import CHART_HOURS, PageData, pending_duplicates, render_page

log = logging.getLogger("ocrpipe.http")

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
JOB_KEY = re.compile(r"[0-9a-f]{64}__[0-9a-f]{64}")  # sha256 of the file, "__", sha256 of the profile
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
RECENT_ERRORS = 10
RECENT_LANGUAGES = 10
READ_METHODS = ("GET", "HEAD")
MAX_INDEX_INT = 2**63 - 1  # SQLite's integers are 64-bit: an offset or cursor beyond is refused, not a fault
SHOWN_PATH_CHARS = 200  # of a request's path quoted back in a 404
SEARCH_SECONDS = 2.0  # one search's time at most: a query matching too much is stopped, not the API
LOW_CONFIDENCE_FLAG = "low-confidence"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    """The request cannot be answered as asked (400)."""


def json_response(status: int, obj: Any, **headers: str) -> Response:
    # No indent: json's C encoder works only without one, and a page of 1000 jobs is 5x quicker so.
    return Response(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), JSON_TYPE, headers)


def error(status: int, message: str, **headers: str) -> Response:
    return json_response(status, {"error": message, "status": status}, **headers)


class Api:
    """Reads the scheduler's published snapshot and the job index; never the scheduler's own objects."""

    def __init__(self, settings: Settings, snapshots: SnapshotHolder, *, tools: Mapping[str, str],
                 disk_free: Callable[[Path], int] = disk_free_bytes,
                 history: Callable[[], AbstractContextManager[History]] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 hooks: Callable[[], dict[str, Any]] | None = None) -> None:
        self.settings = settings
        self.hooks = hooks  # the hooks' delivery loop's view (courier.Courier.view), when hooks are set
        self.snapshots = snapshots
        self.tools = dict(tools)
        self.disk_free = disk_free
        self.history = history or (lambda: open_history(settings.index_dir))
        self.clock = clock
        self.started = clock()

    def handle(self, method: str, target: str) -> Response:
        """Never raises: a fault is a 500 with a JSON error, its traceback goes to the log only."""
        if method not in READ_METHODS:
            return error(405, f"{method} is not allowed: this API is read-only", Allow=", ".join(READ_METHODS))
        try:
            return self._route(target)
        except BadRequest as exc:
            return error(400, str(exc))
        except OcrpipeError as exc:  # the job index is busy or damaged: said plainly, and not the API's fault
            return error(503, str(exc))
        except Exception:  # noqa: BLE001 — a bug must not cost the operator more than this request
            log.exception("HTTP %s %s failed", method, target)
            return error(500, "internal error; the details are in ocrpipe's log")

    def _route(self, target: str) -> Response:
        parts = urlsplit(target)
        path = parts.path if parts.path == "/" else parts.path.rstrip("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        if path == "/":
            return Response(200, render_page(self._page_data(_one(query, "q"))).encode("utf-8"), HTML_TYPE)
        if path == "/metrics":
            return json_response(200, self._metrics())
        if path == "/health":
            healthy, body = self._health()
            return json_response(200 if healthy else 503, body)
        if path == "/jobs":
            return json_response(200, self._jobs(query))
        if path.startswith("/jobs/"):
            return self._job(path[len("/jobs/"):])
        if path == "/search":
            return self._search(query)
        shown = parts.path if len(parts.path) <= SHOWN_PATH_CHARS else parts.path[:SHOWN_PATH_CHARS] + "…"
        return error(404, f"no such resource: {shown}; try /, /metrics, /jobs, /jobs/<jobKey>, /search or /health")

    # ----- routes ---------------------------------------------------------------------------------

    def _metrics(self) -> dict[str, Any]:
        snapshot = self.snapshots.latest()
        if snapshot is None:  # before the first tick: what the last run left
            return load_metrics(self.settings.index_dir)
        return dict(snapshot.metrics)

    def _health(self) -> tuple[bool, dict[str, Any]]:
        try:
            free: int | None = self.disk_free(self.settings.work_dir)
        except OSError:
            free = None
        healthy, body = check_health(self.snapshots.latest(), clock=self.clock(), started=self.started,
                                     stale_seconds=self.settings.health_stale_seconds, free_bytes=free,
                                     min_free_mb=self.settings.min_free_mb, tools=self.tools)
        if self.hooks is not None:  # failing while an event has waited longer than HOOK_BACKLOG_SECONDS
            hooks = self.hooks()
            body["checks"]["hooks"] = {k: hooks[k] for k in ("ok", "pending", "failed", "oldestPendingAt",
                                                             "oldestPendingSeconds", "backlogAfterSeconds")}
            if not hooks["ok"]:
                healthy = False
                body["status"] = "failing"
                body["failing"] = [*body.get("failing", []), "hooks"]
        return healthy, body

    def _jobs(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """In flight (from the snapshot) then finished (from the index), newest first. ``offset`` counts
        over both; ``before`` (a page's ``nextBefore``) continues in the finished ones and stays fast
        however deep one pages."""
        limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT
        offset = _int_param(query, "offset", 0, 0, None) or 0
        before = _int_param(query, "before", None, 1, None)
        state = _one(query, "state")
        if state is not None and state not in JobState.__members__:
            raise BadRequest(f"state={state!r} is not a job state; one of {', '.join(JobState.__members__)}")
        flag = _one(query, "flag")
        if flag is not None:
            return self._flagged(flag, limit=limit, before=before)
        snapshot = self.snapshots.latest()
        in_flight = [] if before is not None else [
            v.as_dict() for v in (snapshot.jobs if snapshot else ()) if state in (None, v.state)]
        items = in_flight[offset:offset + limit]
        more, next_before = len(in_flight) > offset + limit, None
        if len(items) < limit:
            with self.history() as history:
                page = history.page(limit=limit - len(items), offset=max(0, offset - len(in_flight)),
                                    before=before, state=state)
            items += [finished_item(entry) for entry in page.jobs]
            more, next_before = page.next_before is not None, page.next_before
        return {"jobs": items, "limit": limit, "offset": offset, "nextOffset": offset + limit if more else None,
                "nextBefore": next_before, "inFlight": len(in_flight)}

    def _flagged(self, flag: str, *, limit: int, before: int | None) -> dict[str, Any]:
        """Finished jobs with a page read below LOW_CONFIDENCE, newest first (in-flight ones are not read yet)."""
        if flag != LOW_CONFIDENCE_FLAG:
            raise BadRequest(f"flag={flag[:40]!r} is not a flag; the one there is: {LOW_CONFIDENCE_FLAG}")
        try:
            with self.history() as history:
                entries, next_before = flagged(history.index, self.settings.low_confidence, limit=limit,
                                               before=before, seconds=SEARCH_SECONDS)
        except SearchTooSlow as exc:
            raise BadRequest(str(exc)) from None
        items = [{**finished_item(e), "lowConfidencePages": e["lowConfidencePages"],
                  "confidence": e.get("confidence")} for e in entries]
        return {"jobs": items, "limit": limit, "offset": 0, "nextOffset": None, "nextBefore": next_before,
                "inFlight": 0, "flag": flag, "threshold": self.settings.low_confidence}

    def _search(self, query: dict[str, list[str]]) -> Response:
        """Pages whose text matches ``q`` (FTS5 syntax), newest first; paged by ``before`` (a page's ``nextBefore``)."""
        text = _one(query, "q")
        if text is None:
            raise BadRequest("q= is missing: /search?q=invoice+4711 (FTS5 syntax: words, \"a phrase\", a OR b, pre*)")
        limit = _int_param(query, "limit", PAGE_HITS, 1, MAX_LIMIT) or PAGE_HITS
        before = _int_param(query, "before", None, 1, None)
        try:
            since = since_iso(_one(query, "since"), what="since=")
            with self.history() as history:
                found = search(history.index, text, limit=limit, before=before, since=since, seconds=SEARCH_SECONDS)
        except SearchSyntaxError as exc:
            raise BadRequest(str(exc)) from None
        except (SearchTooSlow, SearchUnavailable) as exc:
            return error(503, str(exc))
        return json_response(200, {"query": text, "hits": [h.as_dict() for h in found.hits], "limit": limit,
                                   "nextBefore": found.next_before})

    def _job(self, raw_key: str) -> Response:
        key = unquote(raw_key)
        if not JOB_KEY.fullmatch(key):
            return error(400, "not a job key: expected <sha256 of the file>__<sha256 of the profile>, "
                              "64 lower-case hex digits each")
        snapshot = self.snapshots.latest()
        if snapshot is not None and any(v.jobKey == key for v in snapshot.jobs):
            folder = find_folder(self.settings.work_dir, key, STATE_FILE)  # a short name, or the full key
            try:
                if folder is not None:
                    return json_response(200, read_json(folder / STATE_FILE))
            except (OSError, ValueError):
                pass  # it ended since the snapshot: its folder is gone, its index record is there
        with self.history() as history:
            entry = history.get(key)
        if entry is None:
            return error(404, f"no job {key} in flight or in the index")
        return json_response(200, entry)

    def _page_data(self, query: str | None = None) -> PageData:
        since = (datetime.now(UTC) - timedelta(hours=CHART_HOURS)).isoformat(timespec="milliseconds")
        with self.history() as history:
            errors = history.page(limit=RECENT_ERRORS, state=JobState.ERROR.value).jobs
            finishes = history.finished_since(since)
            # OCR_LANG=auto: the language found in each of the last documents done
            languages = history.page(limit=RECENT_LANGUAGES, state=JobState.DONE.value).jobs \
                if self.settings.ocr_lang == "auto" else None
            finished = self._finished_parts(history, query)
        healthy, health = self._health()
        snapshot = self.snapshots.latest()
        return PageData(snapshot=snapshot, metrics=self._metrics(), healthy=healthy, health=health, errors=errors,
                        finishes=finishes, duplicates=pending_duplicates(self.settings.hold_dir), finished=finished,
                        hooks=self.hooks() if self.hooks is not None else None,
                        now=datetime.now(UTC),
                        tick_age=max(0.0, self.clock() - snapshot.tickMonotonic) if snapshot else 0.0,
                        languages=languages)

    def _finished_parts(self, history: History, query: str | None) -> SearchParts:
        """The status page's search hits, recently finished documents and documents that read poorly."""
        recent = history.page(limit=RECENT, state=JobState.DONE.value).jobs
        try:
            poorly, _ = flagged(history.index, self.settings.low_confidence, limit=FLAGGED, seconds=SEARCH_SECONDS)
        except SearchTooSlow:
            poorly = []
        parts = SearchParts(query=query.strip() if query else None, recent=recent, flagged=poorly,
                            threshold=self.settings.low_confidence, searchable=self.settings.search_index,
                            out_dir=self.settings.out_dir)
        if not parts.query:
            return parts
        try:
            found = search(history.index, parts.query, limit=PAGE_HITS, seconds=SEARCH_SECONDS)
        except (SearchSyntaxError, SearchTooSlow, SearchUnavailable) as exc:
            return replace(parts, problem=str(exc))
        return replace(parts, hits=found.hits, more_hits=found.next_before is not None)


def finished_item(entry: dict[str, Any]) -> dict[str, Any]:
    """An index record as a /jobs item: the stage it ended in is the last one it attempted."""
    attempts = entry.get("attempts") or {}
    stage = "OCR" if attempts.get("OCR") else "PREP" if attempts.get("PREP") or "CONVERT" not in attempts else "CONVERT"
    return {"jobKey": entry.get("jobKey"), "state": entry.get("state"), "stage": stage,
            "attempt": attempts.get(stage, 0), "fileName": entry.get("source"), "updatedAt": entry.get("finishedAt"),
            "output": entry.get("output"), "reason": entry.get("reason")}


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int_param(query: dict[str, list[str]], name: str, default: int | None, low: int,
               high: int | None) -> int | None:
    """A whole number in plain ASCII digits, within [low, high]; anything else (a sign, a space, an
    underscore, other scripts' digits, more than SQLite's 64 bits hold) is a BadRequest."""
    raw = _one(query, name)
    if raw is None:
        return default
    top = MAX_INDEX_INT if high is None else high
    value = int(raw) if re.fullmatch(r"[0-9]{1,19}", raw) else -1
    if not low <= value <= top:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise BadRequest(f"{name}={shown!r} is not valid: expected a whole number from {low} to {top}")
    return value
