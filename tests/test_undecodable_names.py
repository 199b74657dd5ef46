"""Names that are not valid UTF-8 (Latin-1 bytes from an old Samba share or a USB stick), and a fault while
taking in one file: taken in under a readable name, or sent to error/; never a stop of the run."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import ocrpipe.engine.admission
import ocrpipe.engine.scheduler
from conftest import TEST_PROFILE, make_pdf
from faultkit import Driven, finished
from ocrpipe.config import Settings
from ocrpipe.index.rebuild import DiskHistory
from ocrpipe.folders.intake import STAGED_JOURNAL, stage, walk_inbox
from ocrpipe.folders import names

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Windows names are UTF-16: no undecodable bytes")


def drop_raw(in_dir: Path, relpath: bytes, data: bytes) -> None:
    """A file whose name is these bytes, as a share that speaks Latin-1 creates it."""
    path = os.path.join(os.fsencode(in_dir), relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def all_names_are_utf8(folder: Path) -> bool:
    for _, dirs, files in os.walk(os.fsencode(folder)):
        for name in dirs + files:
            try:
                name.decode("utf-8")
            except UnicodeDecodeError:
                return False
    return True


@pytest.mark.parametrize(("raw", "readable"), [
    (b"caf\xe9.pdf", "café.pdf"),
    (b"r\xe9sum\xe9 \x80 \x81.pdf", "résumé € _.pdf"),  # 0x81 has no character in Windows-1252
    (b"plain.pdf", "plain.pdf"),
    ("déjà vu.pdf".encode(), "déjà vu.pdf"),
])
def test_undecodable_bytes_read_as_windows_1252(raw: bytes, readable: str) -> None:
    name = os.fsdecode(raw)
    assert names.readable_name(name) == readable
    assert (names.name_bytes(name) is None) is (name == readable)


def test_the_original_bytes_are_kept_escaped() -> None:
    assert names.name_bytes(os.fsdecode(b"d\xe9p\xf4t/caf\xe9 %.pdf")) == "d%E9p%F4t/caf%E9 %25.pdf"
    assert names.name_bytes("café.pdf") is None


def test_a_latin1_name_is_taken_in_under_a_readable_name_beside_a_good_file(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    in_dir = data / "in"
    in_dir.mkdir(parents=True)
    drop_raw(in_dir, b"caf\xe9.pdf", make_pdf(1, scenario="ok-1"))
    drop_raw(in_dir, b"d\xe9p\xf4t/r\xe9sum\xe9.pdf", make_pdf(1, scenario="ok-2"))
    (in_dir / "good.pdf").write_bytes(make_pdf(1, scenario="ok-3"))
    driven = Driven(settings)
    driven.scheduler.tick(1.0)
    records = [json.loads((job.dir / "state.json").read_text(encoding="utf-8"))
               for job in driven.scheduler.jobs.values()]
    sources = {r["source"]["relpath"]: r["source"] for r in records}
    assert set(sources) == {"café.pdf", "dépôt/résumé.pdf", "good.pdf"}
    assert sources["café.pdf"]["relpathBytes"] == "caf%E9.pdf" and sources["café.pdf"]["name"] == "café.pdf"
    assert sources["dépôt/résumé.pdf"]["relpathBytes"] == "d%E9p%F4t/r%E9sum%E9.pdf"
    assert "relpathBytes" not in sources["good.pdf"]
    driven.run_all(1.0)
    jobs = {job["source"]: job for job in finished(data)}
    assert {source: job["state"] for source, job in jobs.items()} == dict.fromkeys(sources, "DONE")
    assert jobs["café.pdf"]["sourceBytes"] == "caf%E9.pdf" and "sourceBytes" not in jobs["good.pdf"]
    assert (data / "out" / "café.pdf").is_file() and (data / "out" / "dépôt" / "résumé.pdf").is_file()
    assert (data / "archive" / "café.pdf").read_bytes() == make_pdf(1, scenario="ok-1")
    assert all_names_are_utf8(data / "out") and all_names_are_utf8(data / "archive")
    assert driven.scheduler.errors_this_run == 0


def test_a_latin1_duplicate_is_held_under_a_readable_name(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    data = settings.data_dir
    (data / "in").mkdir(parents=True)
    (data / "in" / "scan.pdf").write_bytes(make_pdf(1))
    driven = Driven(settings)
    now = driven.run_all(0.0)
    drop_raw(data / "in", b"copie de caf\xe9.pdf", make_pdf(1))
    now = driven.run_all(now)
    [folder] = list((data / "hold" / "duplicates").iterdir())
    status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
    [held] = status["files"]
    assert held["fileName"] == "copie de café.pdf" and held["heldFile"].endswith("__copie de café.pdf")
    assert all_names_are_utf8(data / "hold")
    (folder / "decision.json").write_text(json.dumps({"action": "FORCE_REPROCESS"}), encoding="utf-8")
    driven.run_all(now)
    rerun = finished(data)[-1]
    assert rerun["source"] == "copie de café.pdf" and rerun["sourceBytes"] == "copie de caf%E9.pdf"


def fail_for(name: str, exc: BaseException, real: Callable[..., Any]) -> Callable[..., Any]:
    def fake(path: Any, *args: Any, **kwargs: Any) -> Any:
        if name in str(getattr(path, "path", path)):
            raise exc
        return real(path, *args, **kwargs)
    return fake


@pytest.mark.parametrize(("where", "exc"), [
    ("hashing", OSError(errno.EIO, "Input/output error")),
    ("staging", ValueError("a name this program cannot handle")),
    ("making its job", ValueError("a value this program cannot handle")),
])
def test_a_fault_while_taking_in_one_file_sends_it_to_error_and_the_run_goes_on(
        make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, where: str, exc: BaseException) -> None:
    settings = make_settings()
    data = settings.data_dir
    (data / "in").mkdir(parents=True)
    (data / "in" / "odd.pdf").write_bytes(b"odd bytes")
    (data / "in" / "good.pdf").write_bytes(make_pdf(1))
    if where == "hashing":
        monkeypatch.setattr(ocrpipe.engine.admission, "sha256_file", fail_for("odd", exc, ocrpipe.engine.admission.sha256_file))
    elif where == "staging":
        monkeypatch.setattr(ocrpipe.engine.scheduler, "stage_file", fail_for("odd", exc, ocrpipe.engine.scheduler.stage_file))
    else:
        odd_hash = hashlib.sha256(b"odd bytes").hexdigest()
        monkeypatch.setattr(ocrpipe.engine.admission, "make_job_key", fail_for(odd_hash, exc, ocrpipe.engine.admission.make_job_key))
    driven = Driven(settings)
    driven.run_all(0.0)
    assert [job["source"] for job in finished(data)] == ["good.pdf"] and (data / "out" / "good.pdf").is_file()
    [error_file] = list((data / "error").glob("*/error.json"))
    error = json.loads(error_file.read_text(encoding="utf-8"))
    assert error["source"] == "odd.pdf" and error["code"] == "INTAKE_FAILED" and error["stage"] == "INTAKE"
    assert str(exc) in error["reason"]
    assert (error_file.parent / error["file"]).read_bytes() == b"odd bytes"
    assert driven.scheduler.errors_this_run == 1
    assert list((data / "in").rglob("*.pdf")) == []
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ocrpipe"):  # a rebuilt index has no job for it, and no warning
        assert list(DiskHistory(settings, TEST_PROFILE).errors()) == [] and caplog.records == []


def test_a_file_that_can_be_neither_taken_nor_moved_stays_in_in_logged_once(
        make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings()
    data = settings.data_dir
    (data / "in").mkdir(parents=True)
    (data / "in" / "odd.pdf").write_bytes(b"odd bytes")
    (data / "in" / "good.pdf").write_bytes(make_pdf(1))
    fault = OSError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(ocrpipe.engine.scheduler, "stage_file", fail_for("odd", fault, ocrpipe.engine.scheduler.stage_file))
    monkeypatch.setattr(os, "replace", fail_for("odd", fault, os.replace))
    driven = Driven(settings)
    with caplog.at_level(logging.WARNING, logger="ocrpipe"):
        now = driven.run_all(0.0)  # idle: a file it cannot take does not keep run --once waiting
        for _ in range(3):
            now += 5.0
            driven.scheduler.tick(now)
    assert (data / "in" / "odd.pdf").read_bytes() == b"odd bytes" and (data / "out" / "good.pdf").is_file()
    said = [r.getMessage() for r in caplog.records if "odd.pdf" in r.getMessage()]
    assert len(said) == 1 and "left in in/" in said[0] and "Permission denied" in said[0], said
    assert list((data / "error").iterdir()) == []  # nothing of it was left there
    assert driven.scheduler.errors_this_run == 1


def test_run_once_takes_a_latin1_name_and_the_good_file_and_exits_ok(data_dir: Path, fake_env: dict[str, str]) -> None:
    drop_raw(data_dir / "in", b"caf\xe9.pdf", make_pdf(1, scenario="ok-1"))
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1, scenario="ok-2"))
    result = subprocess.run([sys.executable, "-m", "ocrpipe", "run", "--once"], env=fake_env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    assert (data_dir / "out" / "café.pdf").is_file() and (data_dir / "out" / "good.pdf").is_file()
    assert os.listdir(os.fsencode(data_dir / "in")) in ([], [b".ocrpipe-staging"])


# A short name is staged under a flat name; a long one in a folder of its own, beside an intent file.
@pytest.mark.parametrize("raw", [b"caf\xe9.pdf", b"d\xe9p\xf4t/" + b"\xe9" * 90 + b".pdf"])
def test_a_latin1_name_staged_before_a_crash_is_taken_in_at_the_next_start(
        make_settings: Callable[..., Settings], raw: bytes) -> None:
    settings = make_settings()
    data = settings.data_dir
    drop_raw(data / "in", raw, make_pdf(1))
    [candidate] = walk_inbox(data / "in")
    staged = stage(candidate, data / "in", settings.index_dir / STAGED_JOURNAL)  # then ocrpipe was killed
    assert staged is not None and (staged.staging_dir is None) is (len(raw) < 20)
    readable = names.readable_name(os.fsdecode(raw))
    Driven(settings).run_all(0.0)
    [job] = finished(data)
    assert job["source"] == readable and job["sourceBytes"] == names.name_bytes(os.fsdecode(raw))
    assert (data / "archive" / readable).read_bytes() == make_pdf(1) and all_names_are_utf8(data / "archive")
