"""E-mail through the CONVERT stage, rendered for real by WeasyPrint (in its own child process) with a
stand-in LibreOffice and OCR: one PDF per message — the header page (decoded names and subject, the
attachments left out listed by name and size), the body, then the attachments in order — and not one
request to the outside world, whatever the HTML asks for."""

from __future__ import annotations

import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import inputs
import officeinputs as oi
import pikepdf
import pytest
from conftest import TEST_PROFILE, drive, fake_command, finished_jobs
from PIL import Image

from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.errors import Code
from ocrpipe.index.metrics import load_metrics
from ocrpipe.stages.pagetext import page_texts as read_page_texts

EMAIL_PROFILE = {**TEST_PROFILE, "tool_versions": {"fake": "1", "soffice": "99.2.0.1", "weasyprint": "70.0"}}


class CountingListener:
    """An HTTP server on loopback that counts every request it gets (it must get none)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                listener.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_CONNECT = do_OPTIONS = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    server = CountingListener()
    yield server
    server.close()


def page_texts(pdf: Path) -> list[str]:
    """Each page's words, read as ocrpipe's search reads them (PDFium): pdfminer sometimes gave an
    attachment's unembedded Helvetica as "(cid:65) (cid:97)…" in a whole-suite run, never alone."""
    return [" ".join(text.split()) for text in read_page_texts(pdf)]


def run_mail(data_dir: Path, settings: Settings, scheduler_for: Callable[..., Scheduler]) -> None:
    scheduler = scheduler_for(settings)
    scheduler.profile = EMAIL_PROFILE
    drive(scheduler, timeout=120)


@pytest.fixture
def mail_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(SOFFICE=fake_command("soffice"), OFFICE_INPUT="on")


def test_one_pdf_per_message_headers_body_then_attachments_in_order_with_nothing_fetched(
        data_dir: Path, tmp_path: Path, mail_settings: Settings, scheduler_for: Callable[..., Scheduler],
        listener: CountingListener) -> None:
    build = tmp_path / "build"
    build.mkdir()
    first = inputs.text_pdf(build / "first.pdf", ["Aardvark attachment one"])
    third = inputs.text_pdf(build / "third.pdf", ["Capybara attachment three"])
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(third, "third.pdf")
    logo = build / "logo.png"
    Image.new("L", (60, 20), 0).save(logo)
    html = (f'<html><head><link rel="stylesheet" href="{listener.url}/style.css">'
            f'<style>@import url("{listener.url}/import.css"); body {{ background: url("{listener.url}/bg.png") }}'
            f'</style></head><body><p>Pelican body words</p>'
            f'<img src="{listener.url}/tracking.gif?u=42" width="1" height="1">'
            f'<img src="cid:logo@mail"><img src="file:///etc/hostname"></body></html>')
    (data_dir / "in").mkdir(parents=True)
    oi.eml(data_dir / "in" / "Besprechung.eml", subject="Réunion über Café – Größe ☕",
           sender=("Zoë Müller", "zoe@example.com"), to=[("Jürgen Weiß", "j@example.com")],
           cc=[("Åsa Ørsted", "asa@example.com")], text="plain alternative", html=html,
           inline=[("logo@mail", logo.read_bytes(), "png")],
           attachments=[("first.pdf", first.read_bytes(), "application/pdf"),
                        ("Bericht ä.rtf", oi.rtf(build / "b.rtf", ["Bison attachment two"]).read_bytes(),
                         "application/rtf"),
                        ("more.zip", zipped.getvalue(), "application/zip"),
                        ("setup.exe", b"MZ" + bytes(2046), "application/octet-stream")])
    run_mail(data_dir, mail_settings, scheduler_for)
    assert listener.requests == [], "the message called out"
    [job] = finished_jobs(data_dir)
    assert (job["state"], job["kind"]) == ("DONE", "email")
    pages = page_texts(data_dir / "out" / "Besprechung.pdf")
    header, body, *attachments = pages
    for text in ("Zoë Müller", "Jürgen Weiß", "Åsa Ørsted", "Réunion über Café – Größe ☕", "03 Dec 2024"):
        assert text in header, (text, header)
    assert "setup.exe (2 kB)" in header and "Attachments not included" in header
    assert "Bericht ä.rtf" in header and "first.pdf" in header
    assert "Pelican body words" in body and "plain alternative" not in body
    assert len(attachments) == 3
    assert "Aardvark" in attachments[0] and "Bison" in attachments[1] and "Capybara" in attachments[2]
    with pikepdf.open(data_dir / "out" / "Besprechung.pdf") as pdf:
        body_images = list(pdf.pages[1].get_images().values())
    assert len(body_images) == 1, "the cid: image is drawn, from the message itself"
    assert load_metrics(data_dir / "index")["conversions_done"] == 1


def test_charsets_and_plain_text_bodies(data_dir: Path, mail_settings: Settings,
                                        scheduler_for: Callable[..., Scheduler]) -> None:
    (data_dir / "in").mkdir(parents=True)
    oi.eml(data_dir / "in" / "latin.eml", subject="Grüße aus Köln", sender=("René Lefèvre", "r@example.com"),
           to=[("Renée", "x@example.com")], text="Très cher ami, ça va? Straße", charset="iso-8859-1")
    raw = (b"From: =?KOI8-R?B?8NLJ18XU?= <p@example.com>\r\nTo: a@example.com\r\n"
           b"Subject: =?utf-8?Q?Fr=C3=BChst=C3=BCck?=\r\nDate: Tue, 03 Dec 2024 10:15:00 +0100\r\n"
           b"Message-ID: <x@y>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\nplain caf\xc3\xa9 body\r\n")
    (data_dir / "in" / "odd.eml").write_bytes(raw)
    run_mail(data_dir, mail_settings, scheduler_for)
    latin_header, latin_body = page_texts(data_dir / "out" / "latin.pdf")
    assert "Grüße aus Köln" in latin_header and "René Lefèvre" in latin_header
    assert "Très cher ami, ça va? Straße" in latin_body
    odd_header, odd_body = page_texts(data_dir / "out" / "odd.pdf")
    assert "Привет" in odd_header and "Frühstück" in odd_header
    assert "plain café body" in odd_body, "an unknown charset falls back to UTF-8"


def test_a_forwarded_message_follows_with_its_own_pages(data_dir: Path, tmp_path: Path, mail_settings: Settings,
                                                        scheduler_for: Callable[..., Scheduler]) -> None:
    inner = oi.eml(tmp_path / "inner.eml", subject="Original question", sender=("Ana", "ana@example.com"),
                   to=[("Bo", "bo@example.com")], text="Otter inner words")
    (data_dir / "in").mkdir(parents=True)
    oi.eml(data_dir / "in" / "fwd.eml", subject="Fwd: Original question", sender=("Bo", "bo@example.com"),
           to=[("Cy", "cy@example.com")], text="see below", attachments=[("q.eml", inner.read_bytes(),
                                                                           "message/rfc822")])
    run_mail(data_dir, mail_settings, scheduler_for)
    pages = page_texts(data_dir / "out" / "fwd.pdf")
    assert len(pages) == 4
    assert "Fwd: Original question" in pages[0] and "see below" in pages[1]
    assert "Forwarded message" in pages[2] and "Ana" in pages[2] and "Otter inner words" in pages[3]


def test_office_attachments_are_listed_not_converted_without_libreoffice(
        data_dir: Path, tmp_path: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[..., Scheduler]) -> None:
    (data_dir / "in").mkdir(parents=True)
    oi.eml(data_dir / "in" / "m.eml", subject="Report", sender=("A", "a@example.com"), to=[("B", "b@example.com")],
           text="attached", attachments=[("report.docx", oi.docx(tmp_path / "r.docx", ["x"]).read_bytes(),
                                          "application/octet-stream"),
                                         ("locked.odt", oi.odt(tmp_path / "l.odt", ["x"], encrypted=True).read_bytes(),
                                          "application/octet-stream")])
    scheduler = scheduler_for(make_settings(OFFICE_INPUT="off"))
    scheduler.profile = {**TEST_PROFILE, "tool_versions": {"fake": "1", "weasyprint": "70.0"}}
    drive(scheduler, timeout=120)
    header, body = page_texts(data_dir / "out" / "m.pdf")
    assert "report.docx" in header and "LibreOffice is off or not installed" in header
    assert "locked.odt" in header and "password-protected" in header


def test_a_body_that_keeps_the_renderer_busy_is_stopped_at_the_limit(
        data_dir: Path, make_settings: Callable[..., Settings], scheduler_for: Callable[..., Scheduler]) -> None:
    """WeasyPrint runs in a child process of its own: a hostile body is killed with it at the stage's limit."""
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "heavy.eml").write_bytes(
        b"From: a@example.com\nTo: b@example.com\nMessage-ID: <1@x>\nSubject: s\n"
        b"Content-Type: text/html; charset=utf-8\n\n" + b"<table><tr><td>" * 20_000)
    scheduler = scheduler_for(make_settings(CONVERT_TIMEOUT_SECONDS="2", MAX_ATTEMPTS_CONVERT="1",
                                            OFFICE_INPUT="off"))
    scheduler.profile = EMAIL_PROFILE
    drive(scheduler, timeout=60)
    [error] = [json.loads(p.read_text()) for p in (data_dir / "error").glob("*/error.json")]
    assert (error["code"], error["stage"]) == (Code.TOOL_TIMEOUT.value, "CONVERT")
