"""The status page at ``GET /``: one self-contained HTML page (inline CSS and SVG) that refreshes itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from ocrpipe.duplicates.hold import STATUS_FILE
from ocrpipe.engine.snapshot import JobView, Snapshot
from ocrpipe.folders.fsutil import read_json
from ocrpipe.folders.nofollow import is_real_dir
from ocrpipe.web import searchpage
from ocrpipe.web.searchpage import SearchParts

REFRESH_SECONDS = 5
CHART_HOURS = 3
CHART_BUCKET_MINUTES = 5
SHOWN_DUPLICATES = 20
COUNTERS = (("jobs_done", "done"), ("jobs_error", "failed"), ("jobs_running", "running"), ("jobs_queued", "queued"),
            ("pages_done", "pages"), ("duplicates_detected", "duplicates held"), ("retries", "retries"),
            ("timeouts", "timeouts"), ("disk_errors", "disk full"),
            ("conversions_done", "converted"), ("conversions_failed", "conversions failed"))

STYLE = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:64rem;
padding:.75rem;color:#1b1f24;background:#f6f7f9}
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-size:.85rem;color:#fff}
.ok{background:#1a7f37}.failing{background:#cf222e}.muted{color:#57606a;font-size:.85rem}
.counters{display:grid;grid-template-columns:repeat(auto-fill,minmax(7.5rem,1fr));gap:.5rem}
.counter{background:#fff;border:1px solid #d0d7de;border-radius:.4rem;padding:.4rem .6rem}
.counter b{display:block;font-size:1.35rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top}
td.name{overflow-wrap:anywhere;min-width:9rem}th{font-size:.8rem;color:#57606a;font-weight:600}
.reason{color:#cf222e}svg{width:100%;height:auto;background:#fff;border:1px solid #d0d7de;border-radius:.4rem}
"""


@dataclass(frozen=True)
class PageData:
    snapshot: Snapshot | None
    metrics: Mapping[str, Any]
    healthy: bool
    health: Mapping[str, Any]
    errors: Sequence[Mapping[str, Any]]  # index records, newest first
    finishes: Sequence[tuple[str, int]]  # (finishedAt, pages) over the chart's hours
    duplicates: tuple[int, list[dict[str, Any]]]  # how many are held, and the first few's status.json
    now: datetime  # aware, UTC
    tick_age: float = 0.0  # seconds since the snapshot's tick: running times are shown as of now
    hooks: Mapping[str, Any] | None = None  # the hooks' delivery (courier.Courier.view), when hooks are set
    languages: Sequence[Mapping[str, Any]] | None = None  # OCR_LANG=auto: the last documents done, newest first
    finished: SearchParts = SearchParts()  # the search box and its hits, recently finished, read poorly


def pending_duplicates(hold_dir: Path, limit: int = SHOWN_DUPLICATES) -> tuple[int, list[dict[str, Any]]]:
    """How many duplicates wait for a decision, and the status.json of the first ``limit``."""
    try:
        # short names, or full keys (older); a link planted there is not ocrpipe's: neither counted nor read
        folders = sorted(p for p in hold_dir.iterdir() if is_real_dir(p))
    except OSError:
        return 0, []
    shown = []
    for folder in folders[:limit]:
        try:
            shown.append(read_json(folder / STATUS_FILE))
        except (OSError, ValueError):
            shown.append({"jobKey": folder.name, "source": None, "status": "unreadable status.json"})
    return len(folders), shown


def render_page(data: PageData) -> str:
    snapshot = data.snapshot
    failing = ", ".join(data.health.get("failing", []))
    badge = ('<span class="badge ok">healthy</span>' if data.healthy
             else f'<span class="badge failing">failing: {escape(failing)}</span>')
    tick = f"last tick {_clock(snapshot.tickAt)}" if snapshot else "the scheduler has not ticked yet"
    waiting = snapshot.waitingInInbox if snapshot else 0
    held_total, held = data.duplicates
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        searchpage.refresh_tags(REFRESH_SECONDS, data.finished.query),
        f"<title>ocrpipe: {data.metrics.get('jobs_running', 0)} running</title>"
        f"<style>{STYLE}{searchpage.STYLE}</style></head><body>",
        f"<h1>ocrpipe {badge}</h1>",
        f'<p class="muted">{escape(tick)} · page made {data.now:%H:%M:%S} UTC · refreshes every {REFRESH_SECONDS} s'
        f"{'' if not snapshot or snapshot.admitting else ' · stopping: no new work taken'}</p>",
        _counters(data.metrics),
        searchpage.search_form(data.finished), searchpage.hits_section(data.finished, _clock),
        _section("Running", _jobs_table(snapshot.running if snapshot else (), running=True, age=data.tick_age),
                 "nothing runs"),
        _section(f"Queue ({len(snapshot.queued) if snapshot else 0} jobs, {waiting} files waiting in in/)",
                 _jobs_table(snapshot.queued if snapshot else (), running=False), "nothing is queued"),
        searchpage.recent_section(data.finished, _clock),
        _section("Last errors", _errors_table(data.errors), "no errors"),
        searchpage.flagged_section(data.finished, _clock),
        _section(f"Duplicates waiting for a decision ({held_total})", _duplicates_table(held), "none"),
        _hooks(data.hooks, data.metrics),
        *([_section("Languages read (OCR_LANG=auto), last documents done", _languages_table(data.languages),
                    "none done yet")] if data.languages is not None else []),
        f"<h2>Pages per minute, last {CHART_HOURS} hours</h2>", pages_chart(data.finishes, data.now),
        "</body></html>",
    ])


def _hooks(hooks: Mapping[str, Any] | None, metrics: Mapping[str, Any]) -> str:
    """The hook events: delivered, waiting (since when), given up, and the last error."""
    if hooks is None:
        return ""
    since = f" (oldest since {_clock(hooks.get('oldestPendingAt'))})" if hooks.get("oldestPendingAt") else ""
    line = (f"{int(metrics.get('hooks_delivered') or 0)} delivered · {hooks.get('pending', 0)} waiting{since} · "
            f"{hooks.get('failed', 0)} failed (in hooks/failed/; ocrpipe hooks retry puts them back)")
    error = (f'<p class="reason">last error: {escape(str(hooks["lastError"]))}</p>'
             if hooks.get("lastError") and hooks.get("pending") else "")
    to = ", ".join(str(t) for t in hooks.get("targets") or [])
    return (f'<h2>Hooks ({escape(to)})</h2><p id="hooks" class="{"" if hooks.get("ok", True) else "reason"}">'
            f"{escape(line)}</p>{error}")


def _clock(iso: str | None) -> str:
    """``2026-12-01T14:03:22.123+00:00`` as ``14:03:22 UTC`` (the full time stays in the page's title)."""
    return f"{iso[11:19]} UTC" if iso and len(iso) >= 19 else "?"


def _section(title: str, table: str, empty: str) -> str:
    return f"<h2>{escape(title)}</h2>" + (table or f'<p class="muted">{escape(empty)}</p>')


def _counters(metrics: Mapping[str, Any]) -> str:
    cells = "".join(f'<div class="counter" id="{name}"><b>{int(metrics.get(name) or 0)}</b>{escape(label)}</div>'
                    for name, label in COUNTERS)
    return f'<div class="counters">{cells}</div>'


def _table(headers: Sequence[str], rows: list[str]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def _jobs_table(jobs: Sequence[JobView], *, running: bool, age: float = 0.0) -> str:
    rows = []
    for job in jobs:
        batch = f" (batch of {job.batchSize})" if job.batchSize > 1 else ""
        last = _elapsed((job.elapsedSeconds or 0.0) + age) if running else _clock(job.updatedAt)
        rows.append(f'<tr><td class="name" title="{escape(job.jobKey)}">{escape(job.fileName or job.jobKey[:12])}</td>'
                    f"<td>{escape(job.stage or '')}{batch}</td><td>{escape(job.state)}</td><td>{job.attempt}</td>"
                    f"<td>{escape(last)}</td></tr>")
    return _table(["file", "stage", "state", "attempt", "elapsed" if running else "since"], rows)


def _errors_table(errors: Sequence[Mapping[str, Any]]) -> str:
    rows = [f'<tr><td class="name" title="{escape(str(e.get("jobKey")))}">{escape(str(e.get("source")))}</td>'
            f'<td class="reason">{escape(str(e.get("reason") or "?"))}</td>'
            f'<td title="{escape(str(e.get("finishedAt")))}">{escape(_clock(e.get("finishedAt")))}</td></tr>'
            for e in errors]
    return _table(["file", "reason", "failed at"], rows)


def _languages_table(done: Sequence[Mapping[str, Any]]) -> str:
    """Each document's language(s) found, how sure, and whether it was read a second time (in what)."""
    rows = []
    for d in done:
        found = d.get("languages")
        langs = ", ".join(str(x) for x in found) if isinstance(found, list) and found else "unknown (too little text)"
        probability = d.get("languageProbability")
        sure = f"{probability:.2f}" if isinstance(probability, (int, float)) and found else ""
        second = f"yes: {d.get('ocrLang')}" if d.get("secondReading") else "no"
        rows.append(f'<tr><td class="name" title="{escape(str(d.get("jobKey")))}">{escape(str(d.get("source")))}</td>'
                    f"<td>{escape(langs)}</td><td>{escape(sure)}</td><td>{escape(second)}</td></tr>")
    return _table(["file", "language", "probability", "second reading"], rows)


def _duplicates_table(held: Sequence[Mapping[str, Any]]) -> str:
    """One row per held job key (status.json): its held files, its state, when the first arrived."""
    rows = []
    for d in held:
        files = [f for f in d.get("files") or [] if isinstance(f, dict)]
        names = ", ".join(str(f.get("source")) for f in files) or str(d.get("source"))
        rows.append(f'<tr><td class="name" title="{escape(str(d.get("jobKey")))}">{escape(names)}</td>'
                    f'<td>{escape(str(d.get("state") or d.get("status")))}</td>'
                    f'<td>{escape(_clock(files[0].get("detectedAt") if files else d.get("heldAt")))}</td></tr>')
    return _table(["file", "status", "held at"], rows)


def pages_chart(finishes: Sequence[tuple[str, int]], now: datetime) -> str:
    """Bars of pages per minute in 5-minute buckets, from the index's finish times; inline SVG."""
    buckets = CHART_HOURS * 60 // CHART_BUCKET_MINUTES
    start = now - timedelta(hours=CHART_HOURS)
    pages = [0] * buckets
    for finished_at, count in finishes:
        try:
            when = datetime.fromisoformat(finished_at)
        except (TypeError, ValueError):
            continue
        slot = int((when - start).total_seconds() // (CHART_BUCKET_MINUTES * 60))
        if 0 <= slot < buckets:
            pages[slot] += count
    rates = [p / CHART_BUCKET_MINUTES for p in pages]
    top = max(rates) or 1.0
    width, height, left, bottom = 720, 160, 40, 20
    bar = (width - left) / buckets
    bars = "".join(
        f'<rect x="{left + i * bar + 1:.1f}" y="{height - bottom - r / top * (height - bottom - 10):.1f}" '
        f'width="{bar - 2:.1f}" height="{r / top * (height - bottom - 10):.1f}" fill="#0969da">'
        f"<title>{r:.1f} pages/min</title></rect>"
        for i, r in enumerate(rates) if r > 0)
    ticks = "".join(
        f'<text x="{left + h * 60 / CHART_BUCKET_MINUTES * bar:.1f}" y="{height - 5}" font-size="11" '
        f'text-anchor="{"end" if h == CHART_HOURS else "middle"}" fill="#57606a">'
        f'{"now" if h == CHART_HOURS else f"-{CHART_HOURS - h}h"}</text>'
        for h in range(CHART_HOURS + 1))
    return (f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="pages per minute, last {CHART_HOURS} hours">'
            f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#d0d7de"/>'
            f'<text x="{left - 4}" y="16" font-size="11" text-anchor="end" fill="#57606a">{top:.3g}</text>'
            f'<text x="{left - 4}" y="{height - bottom}" font-size="11" text-anchor="end" fill="#57606a">0</text>'
            f"{bars}{ticks}</svg>")
