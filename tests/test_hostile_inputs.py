"""``ocrpipe run --once`` with the real tools over hostile and broken files, one of each class, beside good ones.

Each bad file must end in error/ with its reason code after one attempt, its original byte for byte; the
lying bomb must not fill the work volume while it runs (sampled); nothing is written outside the data
folder and no process is left behind; the good files beside them are processed.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import inputs
from conftest import finished_jobs, folder_usage, make_pdf
from inputs import InputSet
from ocrpipe.config import load_settings
from ocrpipe.ops.status import print_status
from test_integration import (
    _FOREIGN_SETTINGS, Run, _kill_tree, drop, drop_built, files_under, page_texts, sha256_of,
)

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 180
BOMB_MB = 512  # what the lying .gz really holds; it declares 1000 bytes
MAX_ARCHIVE_MB = 64
GOOD_FILES = ("CON.pdf", "signed-kept.pdf", "IMG_0001.HEIC")  # a name Windows refuses; a signed PDF; a phone photo

# relpath in in/ -> the reason code its error.json must carry
BAD = {
    "zip-slip.zip": "ARCHIVE_UNSAFE_PATH",
    "honest bomb.zip": "ARCHIVE_BOMB",  # declares 100 MB, over MAX_ARCHIVE_MB
    "lying bomb.gz": "ARCHIVE_BOMB",  # declares 1000 bytes, holds 512 MB
    "locked.zip": "ARCHIVE_PASSWORD",
    "four levels.zip": "ARCHIVE_NESTED",
    "notes only.zip": "ARCHIVE_EMPTY",
    "letter.odt": "OFFICE_UNAVAILABLE",  # this run has OFFICE_INPUT=off: refused as an Office file, at once
    "locked.pdf": "PDF_PASSWORD",
    "garbage.pdf": "PDF_DAMAGED",
    "livecycle form.pdf": "PDF_XFA",
    "huge.png": "IMAGE_TOO_LARGE",
    "huge.jpg": "IMAGE_TOO_LARGE",
    "empty.pdf": "EMPTY_FILE",
    "notes.txt": "UNSUPPORTED_TYPE",
}


def run_sampled(root: Path, data: Path, dropped: dict[str, str]) -> tuple[Run, int]:
    """``ocrpipe run --once``, with the work folder's size sampled all along; returns the run and the peak."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_SETTINGS}
    env.update(STABLE_SECONDS="0", POLL_SECONDS="0.2", OCR_LANG="eng", LOG_LEVEL="INFO", TMPDIR=str(root / "tmp"),
               OFFICE_INPUT="off",
               MAX_ARCHIVE_MB=str(MAX_ARCHIVE_MB))
    (root / "tmp").mkdir(exist_ok=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], folder_usage(data / "work"))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ocrpipe", "run", "--once", "--data", str(data)], cwd=root, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8", errors="replace")
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        stdout, stderr = proc.communicate()
        pytest.fail(f"ocrpipe run --once did not finish within {RUN_TIMEOUT}s\n{stderr[-3000:]}")
    finally:
        done.set()
        sampler.join()
    return Run(root, data, proc.returncode, stdout, stderr, time.monotonic() - started, dropped), peak[0]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, made_inputs: InputSet) -> tuple[Run, int, list[Path]]:
    root = tmp_path_factory.mktemp("hostile")
    data, build = root / "data", root / "build"
    in_dir = data / "in"
    in_dir.mkdir(parents=True)
    build.mkdir()
    dropped: dict[str, str] = {}
    text = made_inputs["born-digital.pdf"]
    drop(text, in_dir, "CON.pdf", dropped)
    drop(inputs.heic_photo(build / "photo.heic", inputs.FOX, orientation=6), in_dir, "IMG_0001.HEIC", dropped)
    drop(inputs.signed(inputs.text_pdf(build / "contract.pdf", ["Signed contract"]), build / "signed.pdf"), in_dir,
         "signed-kept.pdf", dropped)
    drop(inputs.zip_slip(build / "slip.zip"), in_dir, "zip-slip.zip", dropped)
    drop(inputs.zip_bomb(build / "bomb.zip", megabytes=100), in_dir, "honest bomb.zip", dropped)
    drop_built(inputs.lying_gzip(build / "lying.gz", megabytes=BOMB_MB), in_dir, "lying bomb.gz", dropped)
    drop(inputs.encrypted_zip(build / "locked.zip", {"page.pdf": make_pdf(1)}), in_dir, "locked.zip", dropped)
    drop(inputs.nested_zips(build / "four.zip", 4, make_pdf(1)), in_dir, "four levels.zip", dropped)
    drop(inputs.zip_of(build / "notes.zip", {"notes.txt": b"no pages here\n"}), in_dir, "notes only.zip", dropped)
    drop(inputs.office_zip(build / "letter.odt"), in_dir, "letter.odt", dropped)
    drop(inputs.encrypted(text, build / "locked.pdf", user="open-sesame"), in_dir, "locked.pdf", dropped)
    (build / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(4000))
    drop(build / "garbage.pdf", in_dir, "garbage.pdf", dropped)
    drop(inputs.dynamic_xfa(text, build / "xfa.pdf"), in_dir, "livecycle form.pdf", dropped)
    drop(inputs.lying_png(build / "huge.png", 20_000, 20_000), in_dir, "huge.png", dropped)
    drop(inputs.lying_jpeg(build / "huge.jpg", 30_000, 30_000), in_dir, "huge.jpg", dropped)
    (build / "empty.pdf").write_bytes(b"")
    drop(build / "empty.pdf", in_dir, "empty.pdf", dropped)
    (build / "notes.txt").write_text("meeting notes, not a scan\n", encoding="utf-8")
    drop(build / "notes.txt", in_dir, "notes.txt", dropped)
    outside_before = sorted(p for p in files_under(root) if data not in p.parents)
    run, peak = run_sampled(root, data, dropped)
    return run, peak, outside_before


def errors_of(run: Run) -> dict[str, tuple[Path, dict[str, Any]]]:
    return run.errors()


@pytest.mark.parametrize("relpath", BAD)
def test_each_class_ends_in_error_with_its_code_after_one_attempt(hostile: tuple[Run, int, list[Path]],
                                                                  relpath: str) -> None:
    run = hostile[0]
    errors = errors_of(run)
    assert relpath in errors, f"no error/ entry for {relpath}; got {sorted(errors)}\n{run.log_tail()}"
    folder, report = errors[relpath]
    assert report["code"] == BAD[relpath], report
    assert report["attempts"] == {"PREP": 1, "OCR": 0}, report
    assert "Traceback" not in report["reason"] and report["reason"]
    assert sha256_of(folder / report["file"]) == run.dropped[relpath]


def test_the_lying_bomb_did_not_fill_the_work_volume(hostile: tuple[Run, int, list[Path]]) -> None:
    run, peak, _ = hostile
    assert peak < BOMB_MB * 2**20 // 2, f"the work folder reached {peak / 2**20:.0f} MB"
    _, report = errors_of(run)["lying bomb.gz"]
    assert "though the archive declared less" in report["reason"], report["reason"]


def test_the_good_files_beside_them_are_processed(hostile: tuple[Run, int, list[Path]]) -> None:
    run = hostile[0]
    assert run.returncode == 1, run.log_tail()
    done = {job["source"]: job for job in finished_jobs(run.data) if job["state"] == "DONE"}
    assert set(done) == set(GOOD_FILES), run.log_tail()
    assert Path(done["CON.pdf"]["output"]) == run.data / "out" / "_CON.pdf"
    assert Path(done["CON.pdf"]["archived"]) == run.data / "archive" / "_CON.pdf"


def test_a_phone_photo_in_heic_is_ocred_upright(hostile: tuple[Run, int, list[Path]]) -> None:
    run = hostile[0]
    output = run.data / "out" / "IMG_0001.pdf"
    [text] = page_texts(output)
    assert all(word in text for word in inputs.FOX_WORDS), text


def test_a_signed_pdf_is_kept_unchanged_by_default(hostile: tuple[Run, int, list[Path]]) -> None:
    run = hostile[0]
    kept = run.data / "out" / "signed-kept.pdf"
    assert sha256_of(kept) == run.dropped["signed-kept.pdf"]
    job = next(j for j in finished_jobs(run.data) if j["source"] == "signed-kept.pdf")
    assert job["signed"] is True and job["signature"] == "kept"
    assert "signed PDF kept unchanged, without OCR (SIGNED_PDF=keep)" in run.stderr


def test_nothing_is_written_outside_the_data_folder_and_no_process_is_left(
        hostile: tuple[Run, int, list[Path]]) -> None:
    run, _, outside_before = hostile
    outside_after = sorted(p for p in files_under(run.root) if run.data not in p.parents)
    assert outside_after == outside_before
    leftovers = [p.info for p in psutil.process_iter(["pid", "cmdline"])
                 if any(str(run.root) in part for part in p.info["cmdline"] or ())]
    assert leftovers == []


def test_metrics_count_each_code_family_and_status_groups_by_code(hostile: tuple[Run, int, list[Path]]) -> None:
    run = hostile[0]
    metrics = run.metrics()
    families: dict[str, int] = {}
    for code in BAD.values():
        key = f"errors_{code.split('_')[0].lower()}"
        families[key] = families.get(key, 0) + 1
    assert {k: metrics[k] for k in families} == families
    assert metrics["jobs_error"] == len(BAD)
    out = io.StringIO()
    print_status(load_settings({"DATA_DIR": str(run.data)}), as_json=False, out=out)
    shown = out.getvalue()
    assert "Recent errors by code" in shown and "  ARCHIVE_BOMB             2" in shown
