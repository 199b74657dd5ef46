"""An e-mail as pages: a first page with From, To, Cc, Date and Subject (and the attachments left out, by
name and size), the body (HTML rendered, or the plain text), then each attachment ocrpipe takes (PDF, image,
Office document, archive, a forwarded message) in the message's order. Headers and bodies are decoded
from their own character sets; nothing is fetched from outside the message (tools/htmlpdf.py)."""

from __future__ import annotations

import html
import json
import re
import sys
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from ocrpipe.config import Settings
from ocrpipe.errors import Code, PermanentError
from ocrpipe.folders.layout import TMP_DIR
from ocrpipe.stages.common import tool_env
from ocrpipe.stages.doctype import detect, looks_like_email
from ocrpipe.stages.office import CONVERT_DIR, Deadline, office_pdf, tidy_pdf
from ocrpipe.stages.sniff import Kind, sniff_bytes
from ocrpipe.tools.htmlpdf import raise_for_exit, render_argv
from ocrpipe.tools.run import run_tool

HEADERS = ("From", "To", "Cc", "Date", "Subject")
MAX_NESTED = 3  # forwarded messages inside forwarded messages, rendered this deep
MAX_NAME = 200
_EXTENSIONS = {Kind.PDF: "pdf", Kind.IMAGE: "img", Kind.ARCHIVE: "archive"}
_PAGE_CSS = """
@page { size: A4; margin: 18mm; }
body { font-family: "Liberation Sans", "Carlito", "DejaVu Sans", sans-serif; font-size: 11pt; }
table.headers { border-collapse: collapse; width: 100%; }
table.headers th { text-align: left; vertical-align: top; padding: 2pt 8pt 2pt 0; width: 5em; }
table.headers td { padding: 2pt 0; word-break: break-word; }
h2 { font-size: 12pt; margin-top: 14pt; }
pre { white-space: pre-wrap; word-break: break-word; font-family: "Liberation Mono", "DejaVu Sans Mono", monospace;
      font-size: 10pt; }
"""


@dataclass
class Plan:
    """What one message becomes: the pages to render, the parts in order, and what was left out."""

    out: Path
    pages: list[dict[str, str]] = field(default_factory=list)
    cids: dict[str, dict[str, str]] = field(default_factory=dict)
    parts: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0

    def next_path(self, ext: str) -> Path:
        self.count += 1
        return self.out / f"{self.count:04d}.{ext}"

    def add_part(self, path: Path, name: str) -> None:
        self.parts.append({"path": f"{CONVERT_DIR}/{path.name}", "name": name})


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def header(message: Message, name: str) -> str:
    """A header as people read it: encoded words (=?UTF-8?B?…?=) decoded, folded lines joined."""
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001 — a malformed header is shown raw, never fails the message
        value = message.get_all(name, [""])[0] if hasattr(message, "get_all") else ""
    return " ".join(str(value or "").split())


def text_of(part: Message) -> str:
    """A text part's content in its declared charset; an unknown or lying charset falls back to UTF-8,
    then Latin-1, with replacement characters rather than a failure."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, KeyError, ValueError, AssertionError):
        pass
    raw = part.get_payload(decode=True)
    data = raw if isinstance(raw, bytes) else b""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1", errors="replace")


def safe_name(name: str | None, fallback: str) -> str:
    """An attachment's name for display only (never a path): no control characters, no folders, short."""
    text = re.sub(r"[\x00-\x1f\x7f]", "", name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return (text or fallback)[:MAX_NAME]


def size_text(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} kB" if n >= 1024 else f"{n} bytes"


def _body_and_attachments(message: EmailMessage) -> tuple[Message | None, list[Message]]:
    """The body part (HTML first, else plain text) and the other leaf parts in order; a forwarded
    message (message/rfc822) is one attachment, not walked into."""
    body = message.get_body(preferencelist=("html", "plain"))
    alternatives: set[int] = set()
    if body is not None:
        for part in message.walk():
            if part.get_content_type() == "multipart/alternative" and any(p is body for p in part.walk()):
                alternatives |= {id(p) for p in part.walk()}
    attachments: list[Message] = []

    def visit(part: Message) -> None:
        if part.get_content_type() == "message/rfc822" and part is not message:
            attachments.append(part)
            return
        if part.is_multipart():
            for sub in part.iter_parts():  # type: ignore[attr-defined]
                visit(sub)
            return
        if part is body or id(part) in alternatives:
            return
        attachments.append(part)

    visit(message)
    return body, attachments


def _leaves(message: Message) -> list[Message]:
    """The message's leaf parts, a forwarded message's own parts left out (they are its)."""
    found: list[Message] = []

    def visit(part: Message) -> None:
        if part.get_content_type() == "message/rfc822" and part is not message:
            return
        if part.is_multipart():
            for sub in part.iter_parts():  # type: ignore[attr-defined]
                visit(sub)
            return
        found.append(part)

    visit(message)
    return found


def _payload(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return bytes(inner[0].as_bytes(policy=policy.default))
        return b""
    raw = part.get_payload(decode=True)
    return raw if isinstance(raw, bytes) else b""


def _content_id(part: Message) -> str | None:
    cid = part.get("Content-ID")
    return str(cid).strip().strip("<>") if cid else None


def plan_message(settings: Settings, job_dir: Path, data: bytes, plan: Plan, *, deadline: Deadline, shown: str,
                 office: bool, depth: int = 0) -> None:
    """Add one message's pages and parts to ``plan`` (forwarded messages within it too, depth first)."""
    message = parse(data)
    body, attachments = _body_and_attachments(message)
    html_body = body is not None and body.get_content_type() == "text/html"
    used_cids: set[str] = set()
    if html_body and body is not None:
        body_text = text_of(body)
        used_cids = {unquote_cid(c) for c in re.findall(r"cid:([^\"'\s)>]+)", body_text, re.IGNORECASE)}
    # Images the HTML shows (multipart/related, often inside the body's multipart/alternative): served
    # to the renderer by Content-ID, and not attachments of their own.
    shown_inline: set[int] = set()
    for part in _leaves(message):
        cid = _content_id(part)
        if cid and cid in used_cids and cid not in plan.cids:
            path = plan.next_path("cid")
            path.write_bytes(_payload(part))
            plan.cids[cid] = {"path": str(path), "type": part.get_content_type()}
            shown_inline.add(id(part))
    taken: list[tuple[Message, str, bytes, str]] = []  # (part, name, data, what)
    skipped: list[dict[str, Any]] = []
    for n, part in enumerate(attachments, start=1):
        if id(part) in shown_inline:
            continue
        name = safe_name(part.get_filename(), f"attachment {n}")
        payload = _payload(part)
        what = _classify(part, payload, office=office, depth=depth, work=job_dir / TMP_DIR)
        if what.startswith("skip:"):
            if not payload and not part.get_filename():
                continue  # an empty part with no name (a stray text/plain of a multipart): nothing to list
            skipped.append({"name": name, "size": len(payload), "why": what[5:]})
        else:
            taken.append((part, name, payload, what))
    header_page = plan.next_path("pdf")
    _page(plan, header_page, _header_html(message, taken, skipped, depth=depth))
    plan.add_part(header_page, f"{shown} (headers)")
    if body is not None:
        body_page = plan.next_path("pdf")
        content = text_of(body)
        _page(plan, body_page, content if html_body else _text_html(content))
        plan.add_part(body_page, f"{shown} (message)")
    plan.skipped += skipped
    for _part, name, payload, what in taken:
        if what == "email":
            plan_message(settings, job_dir, payload, plan, deadline=deadline, shown=name, office=office,
                         depth=depth + 1)
            continue
        path = plan.next_path(what)
        path.write_bytes(payload)
        if what == "office":
            found = detect(path)
            assert found is not None
            pdf = office_pdf(settings, job_dir, path, found, plan.next_path("pdf"), deadline=deadline, shown=name)
            path.unlink()
            path = pdf
        plan.add_part(path, name)


def unquote_cid(cid: str) -> str:
    from urllib.parse import unquote

    return unquote(cid).strip().strip("<>")


def _classify(part: Message, payload: bytes, *, office: bool, depth: int, work: Path) -> str:
    """What ocrpipe makes of an attachment: ``pdf``, ``img``, ``archive``, ``office``, ``email``, or
    ``skip:<why>`` for what it leaves out (listed on the header page)."""
    if not payload:
        return "skip:empty"
    if part.get_content_type() == "message/rfc822" or looks_like_email(payload[:8192]):
        return "email" if depth + 1 <= MAX_NESTED else f"skip:a message forwarded more than {MAX_NESTED} levels deep"
    work.mkdir(parents=True, exist_ok=True)
    probe = work / "attachment.probe"
    probe.write_bytes(payload)
    try:
        found = detect(probe)
    finally:
        probe.unlink()
    if found is not None and found.kind == "office":
        if found.encrypted:
            return "skip:password-protected Office document"
        return "office" if office else "skip:Office document (LibreOffice is off or not installed)"
    if found is not None and found.kind == "msg":
        return "skip:Outlook message (.msg): no converter"
    kind = sniff_bytes(payload[:1024])
    if kind is None:
        return f"skip:{part.get_content_type()} is not a document ocrpipe takes"
    return _EXTENSIONS[kind]


def _page(plan: Plan, pdf: Path, markup: str) -> None:
    source = pdf.with_suffix(".html")
    source.write_text(markup, encoding="utf-8")
    plan.pages.append({"html": str(source), "pdf": str(pdf)})


def _header_html(message: Message, taken: list[tuple[Message, str, bytes, str]], skipped: list[dict[str, Any]],
                 *, depth: int) -> str:
    rows = "".join(f"<tr><th>{name}:</th><td>{html.escape(header(message, name))}</td></tr>"
                   for name in HEADERS if header(message, name))
    title = "Forwarded message" if depth else "E-mail"
    parts = [f"<h1 style='font-size:14pt'>{title}</h1><table class='headers'>{rows}</table>"]
    if taken:
        items = "".join(f"<li>{html.escape(name)} ({size_text(len(data))})</li>" for _p, name, data, _w in taken)
        parts.append(f"<h2>Attachments, on the pages that follow</h2><ul>{items}</ul>")
    if skipped:
        items = "".join(f"<li>{html.escape(s['name'])} ({size_text(s['size'])}): {html.escape(s['why'])}</li>"
                        for s in skipped)
        parts.append(f"<h2>Attachments not included</h2><ul>{items}</ul>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{_PAGE_CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>")


def _text_html(text: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{_PAGE_CSS}</style></head>"
            f"<body><pre>{html.escape(text)}</pre></body></html>")


def render_message(settings: Settings, job_dir: Path, source: Path, out: Path, *, deadline: Deadline, shown: str,
                   office: bool) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The message's parts in order (``convert/NNNN.pdf``…, each with the name people know it by) and
    the attachments left out; its HTML pages rendered in one child process (tools/htmlpdf.py)."""
    plan = Plan(out)
    try:
        plan_message(settings, job_dir, source.read_bytes(), plan, deadline=deadline, shown=shown, office=office)
    except (ValueError, TypeError, LookupError, IndexError, AttributeError) as exc:
        raise PermanentError(f"the e-mail {shown} cannot be read: {type(exc).__name__}: {exc}",
                             code=Code.EMAIL_DAMAGED) from None
    plan_file = out / "render.json"
    plan_file.write_text(json.dumps({"pages": plan.pages, "cids": plan.cids}), encoding="utf-8")
    result = run_tool(render_argv(sys.executable, plan_file), timeout=deadline.left(f"rendering {shown}"),
                      env=tool_env(settings, job_dir), log_path=job_dir / "render.log")
    raise_for_exit(result, shown)
    for page in plan.pages:
        if not Path(page["pdf"]).is_file():
            raise PermanentError(f"the e-mail {shown}: a page was not rendered", code=Code.EMAIL_DAMAGED)
        tidy_pdf(Path(page["pdf"]))
        Path(page["html"]).unlink()
    for entry in plan.cids.values():
        Path(entry["path"]).unlink(missing_ok=True)
    plan_file.unlink()
    return plan.parts, plan.skipped
