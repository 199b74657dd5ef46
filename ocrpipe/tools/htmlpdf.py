"""HTML to PDF with WeasyPrint, in a child process of its own (``python -m ocrpipe.tools.htmlpdf PLAN``) so a
hostile e-mail body that makes it run for ever is stopped by the stage's time limit and tree kill, as any tool.

Nothing is fetched from outside the message: ``cid:`` URLs are served from the files the plan names (the
message's own parts), ``data:`` URLs are read in place, every other URL (http, https, file…) is refused,
so a tracking pixel never calls out and a body cannot pull a local file into the PDF.

The plan is a JSON file: ``{"pages": [{"html": "<path>", "pdf": "<path>"}, …],
"cids": {"<content-id>": {"path": "<path>", "type": "image/png"}, …}}``.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from ocrpipe.errors import Code, DiskFullError, PermanentError, TransientError
from ocrpipe.tools.run import ToolResult, disk_full

MAX_DATA_URL_BYTES = 20 * 2**20
INSTALL = ("sudo apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 fonts-liberation, then pip install weasyprint "
           "(in ocrpipe's virtualenv)",
           "pip install weasyprint (in ocrpipe's virtualenv), and Pango through MSYS2: see "
           "https://doc.courtbouillon.org/weasyprint/stable/first_steps.html#windows")
RENDER_FAILED_EXIT = 3  # the child's exit code for "this HTML cannot be rendered" (permanent)
NO_WEASYPRINT_EXIT = 4  # WeasyPrint does not run on this machine (Pango missing): no retry helps


def weasyprint_version() -> str | None:
    """The installed WeasyPrint's version, from its metadata (importing it costs 0.5 s), or None."""
    try:
        return importlib.metadata.version("weasyprint")
    except importlib.metadata.PackageNotFoundError:
        return None


def weasyprint_works() -> str | None:
    """Why WeasyPrint cannot render here (it needs Pango, a system library), or None when it can."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def render_argv(python: str, plan: Path) -> list[str]:
    return [python, "-m", "ocrpipe.tools.htmlpdf", str(plan)]


def resolve(url: str, cids: Mapping[str, Mapping[str, str]]) -> tuple[bytes, str]:
    """(bytes, media type) of a URL the message itself holds; ValueError for anything else."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "cid":
        cid = unquote(url[4:]).strip().strip("<>")
        entry = cids.get(cid)
        if entry is None:
            raise ValueError(f"no part of the message has Content-ID {cid[:80]!r}")
        return Path(entry["path"]).read_bytes(), entry.get("type") or "application/octet-stream"
    if scheme == "data":
        header, _, payload = url[5:].partition(",")
        if len(payload) > MAX_DATA_URL_BYTES * 2:
            raise ValueError("data: URL too large")
        media = header.split(";")[0] or "text/plain"
        data = base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
        return data, media
    raise ValueError(f"blocked: ocrpipe fetches nothing from outside the message ({url[:80]})")


def _fetcher(cids: Mapping[str, Mapping[str, str]]) -> Any:
    """A WeasyPrint URL fetcher that only answers what ``resolve`` answers."""
    from weasyprint import urls

    if hasattr(urls, "URLFetcher"):  # WeasyPrint 66 and later: a class with a fetch method
        class MessageOnly(urls.URLFetcher):
            def fetch(self, url: str, headers: Any = None) -> Any:
                data, media = resolve(url, cids)
                return urls.URLFetcherResponse(url, data, {"Content-Type": media})

        return MessageOnly()

    def fetch(url: str, timeout: float = 10, ssl_context: Any = None) -> dict[str, Any]:
        data, media = resolve(url, cids)
        return {"string": data, "mime_type": media}

    return fetch


def render(plan: Mapping[str, Any]) -> None:
    from weasyprint import HTML

    fetcher = _fetcher(plan.get("cids") or {})
    for page in plan["pages"]:
        html = Path(page["html"]).read_text(encoding="utf-8")
        HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(page["pdf"])


def raise_for_exit(result: ToolResult, shown: str) -> None:
    """The child's exit as a domain error: exit 3 means the HTML itself could not be rendered."""
    if result.returncode == 0:
        return
    if disk_full(result):
        raise DiskFullError("the disk is full (rendering the e-mail)", result.returncode, result.stderr_tail)
    if result.returncode == NO_WEASYPRINT_EXIT:
        raise PermanentError("this machine cannot render e-mail: WeasyPrint does not run (see 'ocrpipe doctor'); "
                             "drop the message again once it does", result.returncode, result.stderr_tail,
                             code=Code.EMAIL_UNAVAILABLE)
    if result.returncode == RENDER_FAILED_EXIT:
        raise PermanentError(f"the e-mail {shown} could not be rendered to PDF", result.returncode,
                             result.stderr_tail, code=Code.EMAIL_DAMAGED)
    raise TransientError(f"rendering the e-mail failed (exit code {result.returncode})", result.returncode,
                         result.stderr_tail)


def main(argv: Sequence[str]) -> int:
    # WeasyPrint says what it skipped (the blocked fetches) as warnings: to stderr, the stage's tool log.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    plan = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    problem = weasyprint_works()
    if problem:
        print(f"WeasyPrint cannot run: {problem}", file=sys.stderr)
        return NO_WEASYPRINT_EXIT
    try:
        render(plan)
    except OSError as exc:  # a disk full, say: the caller reads the words
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 — the HTML's fault: reported as such, one line
        print(f"cannot render: {type(exc).__name__}: {exc}", file=sys.stderr)
        return RENDER_FAILED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
