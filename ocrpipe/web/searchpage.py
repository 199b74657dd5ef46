"""The status page's parts about documents that came out: the search box and its hits, the recently
finished ones, and the ones that read poorly. Each row links to its job (``/jobs/{key}``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from ocrpipe.index.search import MARK_END, MARK_START, Hit

RECENT = 20  # documents in "Recently finished"
FLAGGED = 10  # documents in "Read poorly"
PAGE_HITS = 20

STYLE = """
form.search{display:flex;gap:.4rem;margin:.8rem 0}form.search input{flex:1;font:inherit;padding:.3rem .5rem;
border:1px solid #d0d7de;border-radius:.4rem}form.search button{font:inherit;padding:.3rem .8rem}
mark{background:#fff3b0;padding:0 .1rem}td.snippet{color:#3d444d}.low{color:#9a6700}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
"""
# Reloads the page every few seconds like the meta refresh it replaces, except while someone types a search.
REFRESH_SCRIPT = ("<script>setInterval(function(){var q=document.getElementById('q');"
                  "if(!q||(document.activeElement!==q&&!q.value))location.reload();},{ms});</script>")


@dataclass(frozen=True)
class SearchParts:
    """What the page shows of finished documents; empty when the index has none."""

    query: str | None = None
    hits: Sequence[Hit] = ()
    more_hits: bool = False
    problem: str | None = None  # a query FTS5 refused, or one that took too long
    recent: Sequence[Mapping[str, Any]] = ()  # index records, newest first
    flagged: Sequence[Mapping[str, Any]] = ()
    threshold: float = 0.0
    searchable: bool = True
    out_dir: Path | None = None  # outputs under it are shown as out/…, in full on hover


def shown_output(path: str | None, out_dir: Path | None) -> str:
    if path and out_dir is not None:
        try:
            return "out/" + PurePath(path).relative_to(out_dir).as_posix()
        except ValueError:
            pass
    return path or ""


def refresh_tags(refresh_seconds: int, query: str | None) -> str:
    """No reload under search results (they would be lost); otherwise a reload that spares a search being typed."""
    if query:
        return ""
    return (f'<noscript><meta http-equiv="refresh" content="{refresh_seconds}"></noscript>'
            + REFRESH_SCRIPT.replace("{ms}", str(refresh_seconds * 1000)))


def job_link(key: object, text: str) -> str:
    return f'<a href="/jobs/{quote(str(key), safe="")}">{escape(text)}</a>'


def search_form(parts: SearchParts) -> str:
    if not parts.searchable:
        return '<p class="muted">Search is off (SEARCH_INDEX=off, or SQLite here has no FTS5).</p>'
    value = escape(parts.query or "", quote=True)
    return ('<form class="search" method="get" action="/" role="search">'
            f'<input id="q" name="q" type="search" value="{value}" placeholder="Search the documents: '
            'invoice 4711, &quot;delivery note&quot;, inv*" aria-label="search the documents">'
            '<button type="submit">Search</button></form>')


def hits_section(parts: SearchParts, clock: Any) -> str:
    if not parts.query:
        return ""
    title = f"<h2>Search: {escape(parts.query)}</h2>"
    if parts.problem:
        return title + f'<p class="reason">{escape(parts.problem)}</p>'
    if not parts.hits:
        return title + '<p class="muted">no page matches</p>'
    rows = [f'<tr><td class="name" title="{escape(h.output or "")}">'
            f'{job_link(h.jobKey, shown_output(h.output, parts.out_dir) or h.source or h.jobKey)}</td><td>{h.page}</td>'
            f'<td class="snippet">{snippet_html(h.snippet)}</td>'
            f'<td title="{escape(str(h.finishedAt))}">{escape(clock(h.finishedAt))}</td></tr>' for h in parts.hits]
    more = (f"the newest {len(parts.hits)} pages are shown; /search?q=… pages through all; " if parts.more_hits
            else "")
    return (title + _table(["document", "page", "text", "finished"], rows)
            + f'<p class="muted">{more}this page does not refresh while it shows a search</p>')


def snippet_html(snippet: str) -> str:
    """The snippet escaped, its matches in <mark>: the marks are put in after escaping, never from the text."""
    return escape(" ".join(snippet.split())).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def recent_section(parts: SearchParts, clock: Any) -> str:
    rows = []
    for e in parts.recent:
        timings = e.get("timings") or {}
        seconds = sum(v for v in timings.values() if isinstance(v, (int, float))) if isinstance(timings, dict) else 0
        rows.append(f'<tr><td class="name">{job_link(e.get("jobKey"), str(e.get("source")))}</td>'
                    f'<td>{escape(str(e.get("pages") or "?"))}</td><td>{seconds:.1f}</td>'
                    f'<td title="{escape(str(e.get("finishedAt")))}">{escape(clock(e.get("finishedAt")))}</td></tr>')
    body = _table(["file", "pages", "seconds", "finished"], rows) or '<p class="muted">nothing finished yet</p>'
    return f"<h2>Recently finished (last {RECENT})</h2>" + body


def flagged_section(parts: SearchParts, clock: Any) -> str:
    if not parts.flagged:
        return ""
    rows = [f'<tr><td class="name">{job_link(e.get("jobKey"), str(e.get("source")))}</td>'
            f'<td class="low">{escape(", ".join(map(str, e.get("lowConfidencePages") or [])))}</td>'
            f'<td title="{escape(str(e.get("output") or ""))}">'
            f'{escape(shown_output(e.get("output"), parts.out_dir))}</td>'
            f'<td title="{escape(str(e.get("finishedAt")))}">{escape(clock(e.get("finishedAt")))}</td></tr>'
            for e in parts.flagged]
    return (f"<h2>Read poorly (a page below {parts.threshold:g} % confidence)</h2>"
            + _table(["file", "pages read poorly", "output", "finished"], rows))


def _table(headers: Sequence[str], rows: list[str]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'
