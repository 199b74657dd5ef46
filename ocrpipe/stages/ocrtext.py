"""The text OCR read on each page, from ocrmypdf's ``--sidecar`` file: it costs nothing to write
(Tesseract's own text output, kept), where reading the text layer back out of the PDF with pdfminer
costs about 10 ms a page. Pages ocrmypdf did not OCR (they had text: ``--skip-text``) have no entry."""

from __future__ import annotations

import re
from pathlib import Path

# ocrmypdf writes this in place of a page's text when it left the page as it was.
_SKIPPED = re.compile(r"^\s*\[OCR skipped on page", re.I)


def sidecar_pages(sidecar: Path, pages: int) -> list[str | None]:
    """One entry per page: its text, or None when OCR skipped it or the sidecar lacks it. Pages are
    separated by form feeds; a missing or unreadable file gives no text at all."""
    try:
        text = sidecar.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return [None] * pages
    parts = text.split("\f")
    if len(parts) > pages and not "".join(parts[pages:]).strip():
        parts = parts[:pages]  # the form feed after the last page
    if len(parts) != pages:
        return [None] * pages  # not this document's pages: better no text than another page's
    return [None if _SKIPPED.match(part) else part for part in parts]
