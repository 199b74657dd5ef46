"""The status page in a real headless browser (Chromium), while a job runs and after one failed."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from conftest import drive, make_pdf
from ocrpipe.web.api import Api
from ocrpipe.config import Settings
from ocrpipe.web.server import serve
from ocrpipe.engine.scheduler import Scheduler

pytestmark = pytest.mark.integration
ARTIFACTS = Path(os.environ.get("OCRPIPE_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "test-artifacts")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome", "msedge")
WINDOWS_BROWSERS = (r"Google\Chrome\Application\chrome.exe", r"Microsoft\Edge\Application\msedge.exe")


def find_browser() -> str:
    """``$OCRPIPE_BROWSER``, else Chromium (or Chrome, Edge) on PATH or in its Windows install folder."""
    override = os.environ.get("OCRPIPE_BROWSER")
    if override:
        return override
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if sys.platform == "win32":
        for root in filter(None, (os.environ.get(v) for v in ("ProgramFiles", "ProgramFiles(x86)"))):
            for relative in WINDOWS_BROWSERS:
                if (Path(root) / relative).is_file():
                    return str(Path(root) / relative)
    pytest.fail("no headless browser for the status page test: run scripts/setup.sh (it installs Debian's "
                "chromium), or point OCRPIPE_BROWSER at Chromium, Chrome or Edge")


def headless(browser: str, profile: Path, *args: str) -> str:
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def section(dom: str, title: str) -> str:
    """The page's text from the heading ``title`` to the next heading."""
    start = dom.index(f"<h2>{title}")
    end = dom.find("<h2>", start + 4)
    return dom[start:end if end >= 0 else len(dom)]


def test_status_page_in_chromium_shows_the_running_job_and_the_failed_one(
        tmp_path: Path, data_dir: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[..., Scheduler]) -> None:
    browser = find_browser()
    gate = tmp_path / "release-ocr"
    settings = make_settings(OCR_CONCURRENCY="1", FAKE_OCR_WAIT_FOR=str(gate))
    (settings.in_dir / "May").mkdir(parents=True)
    (settings.in_dir / "May" / "invoice-0042.pdf").write_bytes(make_pdf(3))
    (settings.in_dir / "notes.txt").write_text("not a scan", encoding="utf-8")
    scheduler = scheduler_for(settings)

    def running_and_failed() -> bool:
        snapshot = scheduler.snapshot.latest()
        return (snapshot is not None and snapshot.metrics["jobs_error"] == 1
                and any(j.stage == "OCR" and j.startedAt for j in snapshot.jobs))

    drive(scheduler, until=running_and_failed)
    now = datetime.now(timezone.utc)
    for n in range(60):  # the last hours' history, for the chart
        finished = (now - timedelta(minutes=170 - n * 2.5 - (n % 7))).isoformat(timespec="milliseconds")
        scheduler.index.record({"jobKey": f"{n:064x}__{'e' * 64}", "runId": f"r{n}", "state": "DONE",
                                "source": f"archive/scan{n}.pdf", "pages": 3 + n % 9, "finishedAt": finished})
    api = Api(settings, scheduler.snapshot, tools={"ocrmypdf": "99.1.0"}, disk_free=lambda path: 10**12)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot, phone = ARTIFACTS / "status-page.png", ARTIFACTS / "status-page-phone.png"
    for old in (screenshot, phone):
        old.unlink(missing_ok=True)
    try:
        with serve(api, "127.0.0.1", 0) as service:
            dom = headless(browser, tmp_path / "profile", "--dump-dom", service.url)
            headless(browser, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1100,1150",
                     service.url)
            headless(browser, tmp_path / "profile", f"--screenshot={phone}", "--window-size=390,1400", service.url)
    finally:
        gate.touch()
    running = section(dom, "Running")
    assert "May/invoice-0042.pdf" in running and "OCR" in running
    errors = section(dom, "Last errors")
    assert "notes.txt" in errors and "unsupported file type" in errors
    assert 'id="jobs_error"><b>1</b>' in dom
    assert section(dom, "Pages per minute").count("<rect") >= 30
    assert png_size(screenshot) == (1100, 1150) and png_size(phone) == (390, 1400)

    drive(scheduler)
    assert scheduler.snapshot.latest().metrics["jobs_done"] == 1  # type: ignore[union-attr]
    assert (settings.out_dir / "May" / "invoice-0042.pdf").is_file()
