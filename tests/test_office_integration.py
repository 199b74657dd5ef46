"""Office documents and e-mail end to end with the real tools: LibreOffice, WeasyPrint, ocrmypdf, Tesseract.
One ``ocrpipe run --once`` over generated .docx, .xlsx, .pptx, .odt (with a linked remote image), an e-mail
(HTML body with a tracking pixel, a scan and a Word file attached) and a password-protected .odt: each comes
out as one searchable PDF/A with its words, the attachments after the body in order, the loopback listener
standing in for the internet never called, and the locked document in error/ with its own code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import inputs
import officeinputs as oi
from conftest import finished_jobs
from ocrpipe.locate import find_tool
from test_email import CountingListener
from test_integration import Run, page_texts, pdfa_status, run_ocrpipe

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_tool("soffice", environ=os.environ) is None,
                                 reason="LibreOffice is not installed (scripts/setup.sh installs it)")]

RUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def listener() -> Iterator[CountingListener]:
    server = CountingListener()
    yield server
    server.close()


def pptx_from(odp: Path, outdir: Path) -> Path:
    """A .pptx as PowerPoint would write one: LibreOffice itself converts the generated .odp."""
    soffice = find_tool("soffice", environ=os.environ)
    assert soffice
    subprocess.run([soffice, f"-env:UserInstallation={(outdir / 'profile').as_uri()}", "--headless", "--norestore",
                    "--convert-to", "pptx", "--outdir", str(outdir), str(odp)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return outdir / f"{odp.stem}.pptx"


@pytest.fixture(scope="module")
def office_run(tmp_path_factory: pytest.TempPathFactory, listener: CountingListener) -> Run:
    root = tmp_path_factory.mktemp("office")
    data, build = root / "data", root / "build"
    build.mkdir()
    (data / "in").mkdir(parents=True)
    slides = pptx_from(oi.odp(build / "slides.odp", ["Kangaroo slide words"]), build)
    oi.docx(build / "letter.docx", ["Zebra quartz letter words"])
    oi.xlsx(build / "sheet.xlsx", [["Narwhal", "cell"], ["words", "42"]])
    oi.odt(build / "notes.odt", ["Giraffe notes words"], image_url=f"{listener.url}/linked.png")
    oi.odt(build / "locked.odt", ["secret"], encrypted=True)
    scan = inputs.scanned_pdf(build / "scan.pdf", [inputs.FOX])
    attached = oi.docx(build / "attached.docx", ["Walrus attachment words"])
    oi.eml(build / "mail.eml", subject="Réunion über Café", sender=("Zoë Müller", "zoe@example.com"),
           to=[("Jürgen", "j@example.com")], text="plain",
           html=f'<p>Pelican body words</p><img src="{listener.url}/pixel.gif" width="1" height="1">',
           attachments=[("scan.pdf", scan.read_bytes(), "application/pdf"),
                        ("Anhang.docx", attached.read_bytes(), "application/octet-stream")])
    dropped: dict[str, str] = {}
    for made in (slides, build / "letter.docx", build / "sheet.xlsx", build / "notes.odt", build / "locked.odt",
                 build / "mail.eml"):
        shutil.move(made, data / "in" / made.name)
        dropped[made.name] = made.name
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONVERT_CONCURRENCY", "2")  # the run's environment is this one
        return run_ocrpipe(root, data, timeout=RUN_TIMEOUT, dropped=dropped)


def test_each_office_file_becomes_one_searchable_pdfa(office_run: Run) -> None:
    expected = {"slides.pdf": "kangaroo", "letter.pdf": "zebra quartz", "sheet.pdf": "narwhal",
                "notes.pdf": "giraffe"}
    for name, words in expected.items():
        out = office_run.data / "out" / name
        assert out.is_file(), office_run.log_tail()
        assert words in " ".join(page_texts(out)), name
        assert pdfa_status(out) == "2B", name


def test_the_email_is_headers_body_then_attachments_in_order(office_run: Run) -> None:
    header, body, scan, attached = page_texts(office_run.data / "out" / "mail.pdf")
    assert "zoë müller" in header and "réunion über café" in header
    assert "pelican body words" in body
    assert "quick" in scan and "fox" in scan, "the scanned attachment was OCRed"
    assert "walrus attachment words" in attached
    assert pdfa_status(office_run.data / "out" / "mail.pdf") == "2B"


def test_nothing_called_out(office_run: Run, listener: CountingListener) -> None:
    assert office_run.returncode == 1  # the locked document failed
    assert listener.requests == [], "LibreOffice or the e-mail renderer fetched a remote image"


def test_the_password_protected_document_fails_with_its_code(office_run: Run) -> None:
    [report] = [json.loads(p.read_text()) for p in (office_run.data / "error").glob("*/error.json")]
    assert (report["source"], report["code"]) == ("locked.odt", "OFFICE_PASSWORD")
    kinds = {job["source"]: job.get("kind") for job in finished_jobs(office_run.data)}
    assert kinds["mail.eml"] == "email" and kinds["letter.docx"] == "office"
    metrics = json.loads((office_run.data / "index" / "metrics.json").read_text())
    assert (metrics["conversions_done"], metrics["conversions_failed"]) == (5, 1)
