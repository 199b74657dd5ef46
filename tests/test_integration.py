"""End-to-end runs of ``ocrpipe run --once`` with the real tools (7z, ocrmypdf, Tesseract, Ghostscript).

Two module-scoped runs keep the file fast: one over good inputs of every kind the spec names, one
over bad inputs (and a duplicate). Each test then checks one thing about a finished run.
Every input is generated (tests/inputs.py), with the words drawn on it as the ground truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pikepdf
import psutil
import pytest
from pdfminer.high_level import extract_text

import inputs
from conftest import finished_jobs
from inputs import InputSet
from ocrpipe.folders.layout import short_name
from ocrpipe.locate import default_command

pytestmark = pytest.mark.integration

GOOD_RUN_TIMEOUT = 240  # seconds; the run takes about 30 s on 2 cores
BAD_RUN_TIMEOUT = 120  # about 5 s
# Settings from the caller's environment that would send the run somewhere else.
_FOREIGN_SETTINGS = ("DATA_DIR", "IN_DIR", "OUT_DIR", "ARCHIVE_DIR", "ERROR_DIR", "OCR_ARGS", "LOG_JSON")


# ----- helpers ------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def page_texts(pdf: Path) -> list[str]:
    """The text of each page, lower-cased."""
    with pikepdf.open(pdf) as doc:
        count = len(doc.pages)
    return [extract_text(str(pdf), page_numbers=[i]).lower() for i in range(count)]


def page_count(pdf: Path) -> int:
    with pikepdf.open(pdf) as doc:
        return len(doc.pages)


def pdfa_status(pdf: Path) -> str:
    with pikepdf.open(pdf) as doc:
        return doc.open_metadata().pdfa_status


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _kill_tree(pid: int) -> None:
    """Kill a process and everything it started (pool workers, ocrmypdf, Tesseract)."""
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [*parent.children(recursive=True), parent]
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


@dataclass
class Run:
    """A finished ``ocrpipe run --once`` over a data folder, and what was dropped into it."""

    root: Path  # the data folder's parent: anything written outside data/ would land here
    data: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    dropped: dict[str, str] = field(default_factory=dict)  # relpath in in/ -> sha256 of its bytes

    def log_tail(self, chars: int = 3000) -> str:
        crash = self.root / "tmp" / "ocrpipe-crash.log"  # the run's TMPDIR
        extra = f"\n--- ocrpipe-crash.log ---\n{crash.read_text()[-chars:]}" if crash.exists() else ""
        return f"--- stderr ---\n{self.stderr[-chars:]}\n--- stdout ---\n{self.stdout[-chars:]}{extra}"

    def metrics(self) -> dict[str, Any]:
        return json.loads((self.data / "index" / "metrics.json").read_text(encoding="utf-8"))

    def errors(self) -> dict[str, tuple[Path, dict[str, Any]]]:
        """Source relpath -> (its error/<jobKey>/ folder, its error.json)."""
        found = {}
        for report in sorted((self.data / "error").glob("*/error.json")):
            content = json.loads(report.read_text(encoding="utf-8"))
            found[content["source"]] = (report.parent, content)
        return found


def drop(source: Path, in_dir: Path, relpath: str, dropped: dict[str, str]) -> None:
    """Copy a generated file into in/ under ``relpath``."""
    dest = in_dir.joinpath(*PurePosixPath(relpath).parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    dropped[relpath] = sha256_of(dest)


def drop_built(built: Path, in_dir: Path, relpath: str, dropped: dict[str, str]) -> None:
    """Move a file built outside in/ into it, so the pipeline never sees it half-written."""
    dest = in_dir.joinpath(*PurePosixPath(relpath).parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dropped[relpath] = sha256_of(built)
    shutil.move(built, dest)


def run_ocrpipe(root: Path, data: Path, *, timeout: float, dropped: dict[str, str]) -> Run:
    """Run ``ocrpipe run --once`` in a subprocess; on timeout kill its whole tree and fail."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env.update(STABLE_SECONDS="0", POLL_SECONDS="0.2", OCR_LANG="eng", LOG_LEVEL="INFO", TMPDIR=str(root / "tmp"),
               ORCHESTRATOR_PORT="0")
    (root / "tmp").mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "ocrpipe", "run", "--once", "--data", str(data)]
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        stdout, stderr = proc.communicate()
        pytest.fail(f"ocrpipe run --once did not finish within {timeout}s\n--- stderr ---\n{stderr[-3000:]}")
    return Run(root, data, proc.returncode, stdout, stderr, time.monotonic() - started, dropped)


def seven_zip(archive: Path, members: list[Path]) -> None:
    """Build a .7z with the real 7-Zip; members are stored under their bare names."""
    command = default_command("7z", environ=os.environ)
    result = subprocess.run([*command, "a", "-t7z", "-y", "--", str(archive), *(m.name for m in members)],
                            cwd=members[0].parent, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, f"7z a failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"


# ----- run 1: good inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One good input: where it is dropped, its page count, and words its OCR text must hold."""

    relpath: str
    pages: int
    words: tuple[str, ...] = ()

    @property
    def out_relpath(self) -> str:
        rel = PurePosixPath(self.relpath)
        return str(rel.with_name(rel.stem + ".pdf"))


GOOD = {
    "scanned_pdf": Case("scan letter.pdf", 1, inputs.LETTER_WORDS),  # grey, speckled, skewed
    "multipage_tiff": Case("multi-page.tiff", 3, ("multi page document",)),
    "png_no_dpi": Case("no-dpi.png", 1, ("test document",)),
    "colour_jpeg_in_subfolder": Case("scans/2024 May/photo 1555.jpg", 1, inputs.LETTER_WORDS),
    "cmyk_jpeg": Case("cmyk.jpg", 1, inputs.GOOSE_WORDS),
    "alpha_png": Case("transparent.png", 1, inputs.MIDI_WORDS),  # black ink on transparent paper
    "ccitt_g4_tiff": Case("fax.tif", 1, inputs.FOX_WORDS),
    "zip_of_images": Case("pages.zip", 2, inputs.FOX_WORDS + inputs.GOOSE_WORDS),
    "7z_of_pdfs": Case("pdfs.7z", 2, ("midi",)),
    "pdf_with_text": Case("born digital.pdf", 1, inputs.LOREM_WORDS),
    "jpeg2000_pdf": Case("jpeg2000.pdf", 1, inputs.FOX_WORDS),
    "bookmarked_pdf": Case("bookmarked.pdf", 1, inputs.FOX_WORDS),
}
TEXT_CASES = [name for name, case in GOOD.items() if case.words]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory, made_inputs: InputSet) -> Run:
    """One run over every kind of good input the spec names."""
    root = tmp_path_factory.mktemp("good")
    data, build = root / "data", root / "build"
    in_dir = data / "in"
    build.mkdir()
    dropped: dict[str, str] = {}
    for name, made in (("scanned_pdf", "scan.pdf"), ("multipage_tiff", "multi-page.tiff"),
                       ("png_no_dpi", "no-dpi.png"), ("colour_jpeg_in_subfolder", "photo.jpg"),
                       ("cmyk_jpeg", "cmyk.jpg"), ("alpha_png", "alpha.png"), ("ccitt_g4_tiff", "fax.tif"),
                       ("pdf_with_text", "born-digital.pdf"), ("jpeg2000_pdf", "jpeg2000.pdf")):
        drop(made_inputs[made], in_dir, GOOD[name].relpath, dropped)

    # page10 is written first: only natural ordering puts page2 (the fox) before it.
    pages_zip = inputs.zip_of(build / "pages.zip", {"page10.tif": made_inputs["goose.tif"],
                                                    "page2.tif": made_inputs["fox.tif"]})
    drop_built(pages_zip, in_dir, GOOD["zip_of_images"].relpath, dropped)

    pdfs = build / "pdfs"
    pdfs.mkdir()
    members = [pdfs / "doc1.pdf", pdfs / "doc2.pdf"]
    shutil.copyfile(made_inputs["midi.pdf"], members[0])
    shutil.copyfile(made_inputs["fox.pdf"], members[1])
    seven_zip(build / "pdfs.7z", members)
    drop_built(build / "pdfs.7z", in_dir, GOOD["7z_of_pdfs"].relpath, dropped)

    # A batch would drop the bookmark, link and page label: OCRed alone, the document keeps them.
    bookmarked = inputs.with_structure(made_inputs["fox.pdf"], build / "bookmarked.pdf", outline="Fox test",
                                       link="https://example.org/fox", page_labels="A-")
    drop_built(bookmarked, in_dir, GOOD["bookmarked_pdf"].relpath, dropped)

    assert set(dropped) == {case.relpath for case in GOOD.values()}
    return run_ocrpipe(root, data, timeout=GOOD_RUN_TIMEOUT, dropped=dropped)


def test_good_run_exits_ok(good_run: Run) -> None:
    assert good_run.returncode == 0, good_run.log_tail()


@pytest.mark.parametrize("name", GOOD)
def test_output_has_every_page(good_run: Run, name: str) -> None:
    case = GOOD[name]
    out = good_run.data / "out" / case.out_relpath
    assert out.is_file(), f"{out} missing; out/ holds {files_under(good_run.data / 'out')}\n{good_run.log_tail()}"
    assert page_count(out) == case.pages


@pytest.mark.parametrize("name", GOOD)
def test_output_is_pdfa(good_run: Run, name: str) -> None:
    out = good_run.data / "out" / GOOD[name].out_relpath
    assert out.is_file(), good_run.log_tail()
    status = pdfa_status(out)
    assert status, f"{out} is not PDF/A"
    assert status.startswith("2"), f"{out} is PDF/A-{status}, expected PDF/A-2"


@pytest.mark.parametrize("name", TEXT_CASES)
def test_output_is_searchable(good_run: Run, name: str) -> None:
    case = GOOD[name]
    out = good_run.data / "out" / case.out_relpath
    assert out.is_file(), good_run.log_tail()
    text = " ".join(" ".join(page.split()) for page in page_texts(out))  # OCR spacing varies
    missing = [word for word in case.words if word not in text]
    assert not missing, f"{missing} not found in the text of {out}:\n{text[:1500]}"


def test_small_documents_shared_ocr_calls_but_the_bookmarked_one_ran_alone(good_run: Run) -> None:
    entries = {entry["source"]: entry for entry in finished_jobs(good_run.data)}
    assert entries[GOOD["bookmarked_pdf"].relpath]["batchSize"] == 1
    assert max(entry["batchSize"] for entry in entries.values()) > 1
    with pikepdf.open(good_run.data / "out" / GOOD["bookmarked_pdf"].out_relpath) as pdf:
        with pdf.open_outline() as outline:
            assert [item.title for item in outline.root] == ["Fox test"]


def test_zip_pages_follow_natural_order(good_run: Run) -> None:
    """page2.tif (the fox) comes before page10.tif (the goose), whatever the archive's order."""
    first, second = page_texts(good_run.data / "out" / GOOD["zip_of_images"].out_relpath)
    assert "jumped" in first and "goose" not in first, first
    assert "goose" in second and "jumped" not in second, second


def test_tiff_frames_keep_their_order(good_run: Run) -> None:
    texts = page_texts(good_run.data / "out" / GOOD["multipage_tiff"].out_relpath)
    for number, text in enumerate(texts, start=1):
        assert f"page {number}" in text, f"page {number}: {text!r}"


def test_7z_pages_follow_member_order(good_run: Run) -> None:
    """doc1.pdf (the sequencer page) is page 1, doc2.pdf (the fox) page 2."""
    first, second = page_texts(good_run.data / "out" / GOOD["7z_of_pdfs"].out_relpath)
    assert "midi" in first and "fox" not in first, first
    assert "fox" in second and "midi" not in second, second


@pytest.mark.parametrize("name", GOOD)
def test_original_archived_byte_identical(good_run: Run, name: str) -> None:
    relpath = GOOD[name].relpath
    archived = good_run.data / "archive" / relpath
    assert archived.is_file(), f"{archived} missing; archive/ holds {files_under(good_run.data / 'archive')}"
    assert sha256_of(archived) == good_run.dropped[relpath]


def test_subfolder_is_mirrored(good_run: Run) -> None:
    assert (good_run.data / "out" / "scans" / "2024 May" / "photo 1555.pdf").is_file()
    assert (good_run.data / "archive" / "scans" / "2024 May" / "photo 1555.jpg").is_file()


def test_out_and_archive_hold_nothing_else(good_run: Run) -> None:
    """No temp files, no suffixed collisions: exactly one output and one original per input."""
    out = {p.relative_to(good_run.data / "out").as_posix() for p in files_under(good_run.data / "out")}
    archive = {p.relative_to(good_run.data / "archive").as_posix() for p in files_under(good_run.data / "archive")}
    assert out == {case.out_relpath for case in GOOD.values()}
    assert archive == {case.relpath for case in GOOD.values()}


def test_good_run_leaves_in_and_work_empty(good_run: Run) -> None:
    assert files_under(good_run.data / "in") == []
    assert list((good_run.data / "work").iterdir()) == []


def test_good_run_has_no_errors_or_duplicates(good_run: Run) -> None:
    assert files_under(good_run.data / "error") == []
    assert files_under(good_run.data / "hold") == []


def test_good_run_metrics(good_run: Run) -> None:
    metrics = good_run.metrics()
    assert metrics["jobs_done"] == len(GOOD)
    assert metrics["jobs_error"] == 0
    assert metrics["duplicates_detected"] == 0
    assert metrics["pages_done"] == sum(case.pages for case in GOOD.values())
    assert metrics["jobs_running"] == 0 and metrics["jobs_queued"] == 0


# ----- run 2: bad inputs and a duplicate ---------------------------------------------------------


BAD = {
    # relpath in in/ -> words one of which the error's reason must hold
    "locked.pdf": ("encrypted", "password"),
    "invalid.pdf": ("damaged", "corrupt", "cannot read", "no pages", "not a document"),
    "zip-slip.zip": ("refused",),
    "empty.pdf": ("empty",),
    "notes.txt": ("unsupported",),
}
OWNER_ONLY = "owner-only.pdf"
DUPLICATES = ("copy a.png", "copy b.png")
EVIL_PATHS = (Path("/tmp/evil.txt"), Path(tempfile.gettempdir()) / "evil.txt")


def _evil_snapshot() -> dict[Path, int | None]:
    """The mtime of each place a zip-slip would write to, None where nothing is."""
    return {p: (p.stat().st_mtime_ns if p.exists() else None) for p in EVIL_PATHS}


@pytest.fixture(scope="module")
def evil_before() -> dict[Path, int | None]:
    return _evil_snapshot()


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory, made_inputs: InputSet,
        evil_before: dict[Path, int | None]) -> Run:
    """One run over hostile and broken inputs, an owner-password PDF and the same file twice."""
    root = tmp_path_factory.mktemp("bad")
    data, build = root / "data", root / "build"
    in_dir = data / "in"
    in_dir.mkdir(parents=True)
    build.mkdir()
    dropped: dict[str, str] = {}
    scan = made_inputs["fox.pdf"]
    drop(inputs.encrypted(scan, build / "locked.pdf", user="open-sesame"), in_dir, "locked.pdf", dropped)
    drop(inputs.truncated(scan, build / "invalid.pdf"), in_dir, "invalid.pdf", dropped)
    drop(inputs.zip_slip(build / "zip-slip.zip"), in_dir, "zip-slip.zip", dropped)
    drop(inputs.encrypted(scan, build / OWNER_ONLY, user=""), in_dir, OWNER_ONLY, dropped)
    for name in DUPLICATES:
        drop(made_inputs["no-dpi.png"], in_dir, name, dropped)
    (in_dir / "empty.pdf").write_bytes(b"")
    (in_dir / "notes.txt").write_text("meeting notes, not a scan\n", encoding="utf-8")
    dropped["empty.pdf"] = sha256_of(in_dir / "empty.pdf")
    dropped["notes.txt"] = sha256_of(in_dir / "notes.txt")
    return run_ocrpipe(root, data, timeout=BAD_RUN_TIMEOUT, dropped=dropped)


def test_bad_run_exits_jobs_failed(bad: Run) -> None:
    assert bad.returncode == 1, bad.log_tail()


@pytest.mark.parametrize("relpath", BAD)
def test_bad_input_goes_to_error_with_reason(bad: Run, relpath: str) -> None:
    errors = bad.errors()
    assert relpath in errors, f"no error/ entry for {relpath}; got {sorted(errors)}\n{bad.log_tail()}"
    folder, report = errors[relpath]
    reason = report["reason"].lower()
    assert any(word in reason for word in BAD[relpath]), f"{relpath}: reason {report['reason']!r}"
    assert report["jobKey"].startswith(bad.dropped[relpath] + "__"), "error.json does not hold the full jobKey"
    assert folder.name == short_name(report["jobKey"]), "error/ folder is not named by the short job key"


@pytest.mark.parametrize("relpath", BAD)
def test_bad_input_original_kept_byte_identical(bad: Run, relpath: str) -> None:
    folder, report = bad.errors()[relpath]
    original = folder / report["file"]
    assert original.name == PurePosixPath(relpath).name
    assert sha256_of(original) == bad.dropped[relpath]


@pytest.mark.parametrize("relpath", BAD)
def test_permanent_failure_is_not_retried(bad: Run, relpath: str) -> None:
    _, report = bad.errors()[relpath]
    assert report["attempts"] == {"PREP": 1, "OCR": 0}, report


def test_zip_slip_writes_nothing_outside(bad: Run, evil_before: dict[Path, int | None]) -> None:
    assert list(bad.root.rglob("evil.txt")) == []
    assert _evil_snapshot() == evil_before, "the zip-slip archive wrote evil.txt into the temp folder"


def test_owner_password_pdf_is_processed(bad: Run) -> None:
    out = bad.data / "out" / OWNER_ONLY
    assert out.is_file(), bad.log_tail()
    assert page_count(out) == 1
    assert pdfa_status(out)
    with pikepdf.open(out) as pdf:
        assert not pdf.is_encrypted
    assert sha256_of(bad.data / "archive" / OWNER_ONLY) == bad.dropped[OWNER_ONLY]


def test_duplicate_is_held(bad: Run) -> None:
    """Same bytes under two names: one is processed, the other waits in hold/duplicates/<job>/."""
    outputs = [name for name in DUPLICATES if (bad.data / "out" / name.replace(".png", ".pdf")).is_file()]
    assert len(outputs) == 1, f"outputs: {outputs}\n{bad.log_tail()}"
    processed = outputs[0]
    held_name = next(name for name in DUPLICATES if name != processed)
    assert (bad.data / "archive" / processed).is_file()
    folders = [p for p in (bad.data / "hold" / "duplicates").iterdir() if p.is_dir()]
    assert len(folders) == 1
    folder = folders[0]
    status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
    assert status["jobKey"].startswith(bad.dropped[processed] + "__") and folder.name == short_name(status["jobKey"])
    assert status["state"] == "DUPLICATE_PENDING"
    [entry] = status["files"]
    assert entry["source"] == held_name
    held = folder / entry["heldFile"]
    assert held.name.endswith("__" + held_name)
    assert sha256_of(held) == bad.dropped[held_name]


def test_bad_run_leaves_in_and_work_empty(bad: Run) -> None:
    assert files_under(bad.data / "in") == []
    assert list((bad.data / "work").iterdir()) == []


def test_bad_run_metrics(bad: Run) -> None:
    metrics = bad.metrics()
    assert metrics["jobs_done"] == 2  # the owner-password PDF and one of the duplicates
    assert metrics["jobs_error"] == len(BAD)
    assert metrics["duplicates_detected"] == 1 and metrics["duplicates_pending"] == 1
