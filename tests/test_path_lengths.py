"""Paths fit in Windows' 260 characters for an 80-character data folder (a OneDrive folder), and the
names that make them short (job, error and hold folders; long-path calls where the depth is the user's)."""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable, Iterator
from unittest import mock

import pytest

from conftest import TEST_PROFILE, drive, make_pdf
from ocrpipe.config import Settings
from ocrpipe.duplicates.hold import held_keys
from ocrpipe.folders.layout import (
    DATA_FOLDER_BUDGET, MAX_FOLDER_CHARS, MAX_PATH_CHARS, find_folder, fit_name, folder_for, input_name, long_path,
    plain_path, short_name,
)
from ocrpipe.engine.scheduler import Scheduler

KEY = "a" * 64 + "__" + "b" * 64
# What ocrmypdf creates under its temp folder (TMPDIR = the job's tmp/), measured with strace on a real run:
# "ocrmypdf.io.4etsxbz6/.pikepdf.speculative_pdfa.pdf.2ecbc6f5b77c". Tesseract and Ghostscript write there too,
# under shorter names (000001_ocr_hocr.hocr…).
OCRMYPDF_TEMP_CHARS = len("ocrmypdf.io.4etsxbz6/.pikepdf.speculative_pdfa.pdf.2ecbc6f5b77c")
# Where the depth is the user's (in/'s own sub-folders, an archive's folders), ocrpipe calls with long paths.
USER_DEPTH = ("out/", "archive/", "in/.ocrpipe-staging/", "prep/")


# ----- the names -----------------------------------------------------------------------------------

def test_short_name_keeps_both_hashes_apart() -> None:
    assert short_name(KEY) == "a" * 16 + "_" + "b" * 8
    assert len(short_name(KEY)) == 25
    assert short_name("c" * 64 + "__" + "b" * 64) != short_name(KEY) != short_name("a" * 64 + "__" + "d" * 64)


def test_folder_for_a_new_key_is_short_and_found_again(tmp_path: Path) -> None:
    folder = folder_for(tmp_path, KEY, "state.json")
    assert folder == tmp_path / short_name(KEY)
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"jobKey": KEY}))
    assert folder_for(tmp_path, KEY, "state.json") == folder
    assert find_folder(tmp_path, KEY, "state.json") == folder


def test_a_folder_of_the_older_layout_keeps_its_full_name(tmp_path: Path) -> None:
    (tmp_path / KEY).mkdir()
    (tmp_path / KEY / "state.json").write_text(json.dumps({"jobKey": KEY}))
    assert folder_for(tmp_path, KEY, "state.json") == tmp_path / KEY
    assert find_folder(tmp_path, KEY, "state.json") == tmp_path / KEY


def test_a_second_key_with_the_same_prefix_takes_the_full_name(tmp_path: Path) -> None:
    other = "a" * 64 + "__" + "b" * 63 + "c"
    assert short_name(other) == short_name(KEY)
    first = folder_for(tmp_path, KEY, "state.json")
    first.mkdir()
    (first / "state.json").write_text(json.dumps({"jobKey": KEY}))
    assert folder_for(tmp_path, other, "state.json") == tmp_path / other
    assert find_folder(tmp_path, other, "state.json") is None  # not made yet


def test_input_name_keeps_a_sensible_extension_only() -> None:
    assert input_name("Relevé de compte — mars 2026 (copie numérisée).PDF") == "original.PDF"
    assert input_name("scan.tar.gz") == "original.gz"
    assert input_name("README") == "original"
    assert input_name("weird.extension-longer-than-ten") == "original"
    assert input_name("photo.jpé") == "original"


def test_fit_name_cuts_the_stem_and_keeps_the_extension() -> None:
    folder = PureWindowsPath("C:\\" + "f" * 150)
    name = "x" * 200 + ".pdf"
    fitted = fit_name(folder, name)
    assert fitted.endswith("~.pdf") and fitted.startswith("xxx")
    assert len(str(folder / fitted)) + len(" (99)") <= MAX_PATH_CHARS
    assert fit_name(folder, "short.pdf") == "short.pdf"


# ----- long paths: both branches -------------------------------------------------------------------

def test_long_path_on_windows_adds_the_prefix_beyond_the_limit() -> None:
    deep = PureWindowsPath("C:\\data\\out\\" + "\\".join(["folder" * 5] * 9))
    assert len(str(deep)) > MAX_FOLDER_CHARS
    assert str(long_path(deep, windows=True)) == "\\\\?\\" + str(deep)
    short = PureWindowsPath("C:\\data\\out\\May")
    assert long_path(short, windows=True) == short
    assert str(long_path(short, windows=True, always=True)) == "\\\\?\\C:\\data\\out\\May"
    share = PureWindowsPath("\\\\nas\\scans\\" + "d" * 250)
    assert str(long_path(share, windows=True)) == "\\\\?\\UNC\\nas\\scans\\" + "d" * 250
    for path in (deep, short, share):
        assert plain_path(long_path(path, windows=True, always=True)) == str(path)


def test_long_path_elsewhere_changes_nothing() -> None:
    deep = PurePosixPath("/data/" + "d" * 300)
    assert long_path(deep, windows=False) == deep
    assert long_path(deep, windows=False, always=True) == deep
    assert plain_path(deep) == str(deep)


# ----- held keys, both layouts ---------------------------------------------------------------------

def test_held_keys_come_from_status_json_and_from_older_folder_names(tmp_path: Path) -> None:
    new = tmp_path / short_name(KEY)
    new.mkdir()
    (new / "status.json").write_text(json.dumps({"status": "DUPLICATE_PENDING", "jobKey": KEY}))
    older = "c" * 64 + "__" + "d" * 64
    (tmp_path / older).mkdir()  # a folder of the older layout, its status.json lost
    assert held_keys(tmp_path) == {KEY, older}


# ----- the longest paths of a real run --------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An 80-character data folder, as long as the OneDrive folder the layout is budgeted for."""
    pad = DATA_FOLDER_BUDGET - len(str(tmp_path)) - 1
    assert pad > 4, f"pytest's temp folder {tmp_path} leaves no room for an 80-character data folder"
    return tmp_path / ("d" * pad)


class Recorder:
    """Every path the test process creates (PEP 578 audit events), while recording."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.on = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on:
            return
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                      (mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing:
                self.paths.add(os.fsdecode(args[0]))
        elif event in ("os.mkdir", "tempfile.mkdtemp", "tempfile.mkstemp", "sqlite3.connect"):
            self.paths.add(os.fsdecode(args[0]))
        elif event in ("os.rename", "os.link", "shutil.copyfile", "shutil.move"):
            target = os.fsdecode(args[1])
            if event == "os.rename" and isinstance(args[3], int) and args[3] >= 0:  # relative to a folder's handle
                target = os.path.join(os.readlink(f"/proc/self/fd/{args[3]}"), target)
            self.paths.add(target)


_RECORDER = Recorder()
sys.addaudithook(_RECORDER.hook)  # hooks stay for the session: this one only records while ``on``


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    _RECORDER.paths, _RECORDER.on = set(), True
    yield _RECORDER
    _RECORDER.on = False


def drop(in_dir: Path, relpath: str, data: bytes) -> str:
    """Drop a file at ``relpath``, padded so that its path in in/ is 259 characters: the longest a scanner
    on Windows could have written there."""
    stem, suffix = relpath.rsplit(".", 1)
    room = MAX_PATH_CHARS - len(str(in_dir / relpath))
    path = in_dir / f"{stem}{'n' * room}.{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    assert len(str(path)) == MAX_PATH_CHARS
    return path.name


def area(rel: str) -> str:
    """The module that makes a path, told by where it lies below the data folder."""
    parts = rel.split("/")
    if rel.startswith("in/.ocrpipe-staging/"):
        return "intake (staging)" if len(parts) == 3 else "intake (staging folder)"
    if parts[0] == "work" and len(parts) > 1:
        if len(parts) > 2 and parts[2] == "tmp":
            return "tools' temp (work/<job>/tmp)"
        if parts[1].startswith(".batch-"):
            return "OCR batch (work/.batch-…)"
        if len(parts) > 2 and parts[2] == "prep":
            return "PREP (archive members)"
        return "job folder (work/<job>)"
    return {"hold": "duplicates (hold/)", "error": "publish (error/)", "out": "publish (out/)",
            "archive": "publish (archive/)", "index": "index"}.get(parts[0], parts[0])


def test_the_longest_path_each_module_creates_fits_for_an_80_character_data_folder(
        data_dir: Path, make_settings: Callable[..., Settings], recorder: Recorder,
        capsys: pytest.CaptureFixture[str]) -> None:
    in_dir = data_dir / "in"
    pdf = make_pdf(2)
    drop(in_dir, "Scanner-3/2026/Dezember/Überweisung Müller.pdf", pdf)
    drop(in_dir, "copy of the same scan.pdf", pdf)  # a duplicate: held
    drop(in_dir, "Kontoauszüge/empty scan.pdf", b"")  # fails for good: error/
    deep_member = "/".join(["Unterordner mit langem Namen"] * 6) + "/page.pdf"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(deep_member, make_pdf(1, "member"))
    drop(in_dir, "Scanner-3/bundle.zip", buffer.getvalue())
    for n in range(3):  # one OCR worker, slow: the second and third wait together and share a batch
        drop(in_dir, f"Scanner-3/2026/Dezember/page {n}.pdf", make_pdf(1, f"batch{n}"))
    assert len(str(data_dir)) == DATA_FOLDER_BUDGET

    def threads(workers: int) -> Executor:
        return ThreadPoolExecutor(workers)  # stages run in this process, where the audit hook sees them

    settings = make_settings(OCR_CONCURRENCY="1", FAKE_OCR_DELAY="1")
    scheduler = Scheduler(settings, profile=TEST_PROFILE, executor_factory=threads)
    try:
        drive(scheduler, timeout=120)
    finally:
        scheduler.close(wait=True)
    recorder.on = False

    longest: dict[str, str] = {}
    for path in recorder.paths:
        if path.startswith(str(data_dir) + "/"):
            rel = path[len(str(data_dir)) + 1:]
            key = area(rel)
            if len(rel) > len(longest.get(key, "")):
                longest[key] = rel
    tmp = longest["tools' temp (work/<job>/tmp)"]
    longest["tools' temp (work/<job>/tmp)"] = tmp + "/" + "t" * OCRMYPDF_TEMP_CHARS  # what ocrmypdf adds in there
    with capsys.disabled():
        print(f"\nlongest path made by each module, for an {DATA_FOLDER_BUDGET}-character data folder:")
        for key, rel in sorted(longest.items(), key=lambda kv: -len(kv[1])):
            print(f"  {DATA_FOLDER_BUDGET + 1 + len(rel):4d}  {key:<32} {rel[:90]}{'…' if len(rel) > 90 else ''}")
    expected = {"intake (staging folder)", "job folder (work/<job>)", "tools' temp (work/<job>/tmp)",
                "PREP (archive members)", "OCR batch (work/.batch-…)", "duplicates (hold/)", "publish (error/)",
                "publish (out/)", "publish (archive/)", "index"}
    assert expected <= set(longest), f"no path seen for {expected - set(longest)}"
    for key, rel in longest.items():
        full = DATA_FOLDER_BUDGET + 1 + len(rel)
        if any(rel.startswith(p) or f"/{p}" in rel for p in USER_DEPTH):
            continue  # the user's depth: long-path calls (tested above), whatever the length
        assert full <= MAX_PATH_CHARS, f"{key}: {full} characters: {rel}"
    # Before short names, the job folder was named by the full key: the same tool temp file overflowed.
    before = DATA_FOLDER_BUDGET + len("/work/") + len(KEY) + len("/tmp/") + OCRMYPDF_TEMP_CHARS
    assert before == 284 > MAX_PATH_CHARS


def test_a_job_folder_of_the_older_layout_resumes_and_finishes(data_dir: Path,
                                                               make_settings: Callable[..., Settings]) -> None:
    """A data folder from before short names: work/<full job key>/ with input/<original name> goes on."""
    from ocrpipe.model import JobState
    from ocrpipe.folders.store import new_state_record, transition, write_new_state

    job_dir = data_dir / "work" / KEY
    record = new_state_record(job_key=KEY, run_id="old", file_hash="a" * 64, profile_hash="b" * 64,
                              source_name="Scan 1.pdf", source_relpath="May/Scan 1.pdf", size=1)
    record["input"] = "input/Scan 1.pdf"  # as older versions named it
    write_new_state(job_dir, record)
    for state in (JobState.PREP_SUBMITTED, JobState.PREP_RUNNING, JobState.PREP_DONE):
        transition(job_dir, state, attempts={"PREP": 1, "OCR": 0}, pages=1)
    (job_dir / "raw.pdf").write_bytes(make_pdf(1))
    (job_dir / "input").mkdir()
    (job_dir / "input" / "Scan 1.pdf").write_bytes(b"the original")
    scheduler = Scheduler(make_settings(), profile=TEST_PROFILE, executor_factory=lambda n: ThreadPoolExecutor(n))
    try:
        drive(scheduler, timeout=60)
    finally:
        scheduler.close(wait=True)
    assert (data_dir / "out" / "May" / "Scan 1.pdf").is_file()
    assert (data_dir / "archive" / "May" / "Scan 1.pdf").read_bytes() == b"the original"
    assert list((data_dir / "work").iterdir()) == []


@pytest.mark.parametrize("windows", [True, False])
def test_outputs_and_archived_files_use_long_paths_when_a_file_there_could_pass_the_limit(windows: bool) -> None:
    from ocrpipe.folders.publish import mirrored_folder

    root = PureWindowsPath("C:\\" + "d" * 76 + "\\archive") if windows else PurePosixPath("/" + "d" * 79 + "/archive")
    tmp = ".0123456789abcdef-01234567.orig.ocrpipe-tmp"
    fits = PurePosixPath("May/" + "n" * 100 + ".pdf")
    deep = PurePosixPath("Scanner-3/2026/Dezember/" + "n" * 150 + ".pdf")  # the folder fits, the file does not
    with mock.patch("ocrpipe.folders.publish.long_path", lambda p, always=False: long_path(p, windows=windows, always=always)):
        near = mirrored_folder(root, fits, tmp)  # type: ignore[arg-type]
        far = mirrored_folder(root, deep, tmp)  # type: ignore[arg-type]
    assert str(near) == str(root / "May")
    assert str(far) == ("\\\\?\\" if windows else "") + str(root.joinpath(*deep.parent.parts))
