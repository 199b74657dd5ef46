"""The status page in headless Chromium: a document that just finished is listed, linked to its job, and a
search typed into the page's box shows its hit with the match marked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import drive
from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.engine.snapshot import SnapshotHolder
from ocrpipe.web.api import Api
from ocrpipe.web.server import serve
from test_search import scan_pdf
from test_status_page_browser import ARTIFACTS, find_browser, headless, section

pytestmark = pytest.mark.integration


def test_the_page_lists_a_just_finished_document_and_shows_a_search_hit(
        tmp_path: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler]) -> None:
    browser = find_browser()
    settings = make_settings(FAKE_OCR_READS="1")  # the fake ocrmypdf "reads" each page's FAKE-TEXT
    scan_pdf(settings.in_dir / "May" / "invoice-4711.pdf", ["Invoice 4711 for Müller", "Delivery note: walrus"])
    scheduler = scheduler_for(settings)
    drive(scheduler)
    api = Api(settings, SnapshotHolder(), tools={"ocrmypdf": "99.1.0"}, disk_free=lambda path: 10**12)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "status-page-search.png"
    screenshot.unlink(missing_ok=True)
    with serve(api, "127.0.0.1", 0) as service:
        dom = headless(browser, tmp_path / "profile", "--dump-dom", service.url)
        # What the form sends when "walrus" is typed in the box and Search pressed.
        searched = headless(browser, tmp_path / "profile", "--dump-dom", f"{service.url}?q={quote('walrus')}")
        headless(browser, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1100,900",
                 f"{service.url}?q={quote('muller')}")
    recent = section(dom, "Recently finished")
    [key] = [j["jobKey"] for j in scheduler.index]
    assert "May/invoice-4711.pdf" in recent and f'href="/jobs/{key}"' in recent
    assert '<form class="search"' in dom and 'name="q"' in dom
    hits = section(searched, "Search: walrus")
    assert "invoice-4711.pdf" in hits and "<mark>walrus</mark>" in hits and f'href="/jobs/{key}"' in hits
    assert 'value="walrus"' in searched  # the box keeps what was searched
    assert screenshot.is_file()
