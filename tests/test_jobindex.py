"""The SQLite job index: lookups, runs, counts, pages, a busy file, concurrent processes, migration, export."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

import ocrpipe.index.db
from ocrpipe.index.db import DB_FILE, IndexBusyError
from ocrpipe.index.migrate import export_jsonl
from ocrpipe.config import Settings
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.ops.status import collect_status
from ocrpipe.folders.store import new_state_record, write_new_state


def job(key: str, run: str = "r1", state: str = "DONE", **fields: Any) -> dict[str, Any]:
    return {"jobKey": key, "runId": run, "state": state, "source": f"{key}.pdf", "pages": 2,
            "attempts": {"PREP": 1, "OCR": 1}, "timings": {"ocrSeconds": 1.5}, **fields}


@pytest.fixture
def index(tmp_path: Path):
    with JobIndex(tmp_path / "index") as opened:
        yield opened


def test_lookup_record_and_counts_by_state(index: JobIndex) -> None:
    assert not index.is_done("a") and index.counts() == {}
    index.record(job("a"))
    index.record(job("b", state="ERROR", reason="the PDF is encrypted", code=8))
    index.record(job("c"))
    assert index.is_done("a") and index.is_done("c")
    assert not index.is_done("b") and not index.is_done("unknown")
    assert index.counts() == {"DONE": 2, "ERROR": 1}
    [error] = index.get("b")
    assert (error["reason"], error["code"], error["attempts"]) == ("the PDF is encrypted", 8, {"PREP": 1, "OCR": 1})


def test_several_runs_of_one_key_are_several_rows_and_the_latest_decides(index: JobIndex) -> None:
    index.record(job("k", "r1", "DONE"))
    index.record(job("k", "r2", "ERROR"))  # a forced reprocess that failed: a new file is processed again
    assert [(r["runId"], r["state"]) for r in index.get("k")] == [("r1", "DONE"), ("r2", "ERROR")]
    assert not index.is_done("k")
    index.record(job("k", "r3", "DONE"))
    assert index.is_done("k") and index.counts() == {"DONE": 2, "ERROR": 1}
    # A restart after a crash between recording and removing the folder records the same run again.
    index.record(job("k", "r2", "ERROR", reason="again"))
    assert [(r["runId"], r["reason"]) for r in index.get("k")] == [("r1", None), ("r2", "again"), ("r3", None)]


def test_fields_added_by_later_code_are_kept(index: JobIndex) -> None:
    index.record(job("a", imagesReencoded=3, batchSize=4))
    [entry] = index.get("a")
    assert entry["imagesReencoded"] == 3 and entry["batchSize"] == 4


def test_pages_newest_first_by_cursor_offset_and_state(index: JobIndex) -> None:
    for n in range(7):
        index.record(job(f"k{n}", state="ERROR" if n % 3 == 0 else "DONE"))
    first = index.page(3)
    assert [j["jobKey"] for j in first.jobs] == ["k6", "k5", "k4"]
    second = index.page(3, before=first.next_before)
    assert [j["jobKey"] for j in second.jobs] == ["k3", "k2", "k1"]
    last = index.page(3, before=second.next_before)
    assert [j["jobKey"] for j in last.jobs] == ["k0"] and last.next_before is None
    assert [j["jobKey"] for j in index.page(2, offset=5).jobs] == ["k1", "k0"]
    assert [j["jobKey"] for j in index.page(10, state="ERROR").jobs] == ["k6", "k3", "k0"]


def test_a_reader_sees_an_empty_index_and_creates_nothing(tmp_path: Path) -> None:
    with JobIndex(tmp_path / "index", readonly=True) as reader:
        assert reader.counts() == {} and reader.page(5).jobs == [] and not reader.is_done("a")
    assert not (tmp_path / "index").exists()


def test_a_busy_index_is_waited_on_then_named_never_an_internal_error(index: JobIndex, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    other = sqlite3.connect(tmp_path / "index" / DB_FILE, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        released = threading.Timer(0.3, other.execute, ("COMMIT",))
        released.start()
        index.record(job("waited"))  # waits (busy timeout 10 s) for the commit
        released.join()
        assert index.is_done("waited")

        monkeypatch.setattr(ocrpipe.index.db, "BUSY_TIMEOUT_SECONDS", 0.1)
        with JobIndex(tmp_path / "index") as impatient:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(IndexBusyError, match="stayed locked by another program"):
                impatient.record(job("never"))
            other.execute("ROLLBACK")
            impatient.record(job("later"))
            assert impatient.is_done("later") and not impatient.is_done("never")
    finally:
        other.close()


WRITER = """
import sys
from pathlib import Path
from ocrpipe.config import Settings
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.ops.status import collect_status
from ocrpipe.folders.store import new_state_record, write_new_state
with JobIndex(Path(sys.argv[1])) as index:
    for n in range(int(sys.argv[2])):
        index.record({"jobKey": f"k{n}", "runId": "r", "state": "DONE" if n % 4 else "ERROR"})
"""
READER = """
import json, sys
from pathlib import Path
from ocrpipe.config import Settings
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.ops.status import collect_status
from ocrpipe.folders.store import new_state_record, write_new_state
totals = []
while not totals or totals[-1] < int(sys.argv[2]):
    with JobIndex(Path(sys.argv[1]), readonly=True) as index:
        for _ in range(20):
            counts = index.counts()
            newest = index.page(1).jobs
            totals.append(sum(counts.values()))
            if newest:
                assert index.is_done(newest[0]["jobKey"]) == (newest[0]["state"] == "DONE")
print(json.dumps(totals))
"""


def test_readers_and_a_writer_in_separate_processes(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    JobIndex(folder).close()  # the run creates the file before anyone reads it
    jobs = 400
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(jobs)], stderr=subprocess.PIPE)
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(folder), str(jobs)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE) for _ in range(2)]
    _, writer_err = writer.communicate(timeout=120)
    assert writer.returncode == 0, writer_err.decode()
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err.decode()
        totals = json.loads(out)
        assert totals == sorted(totals) and totals[-1] == jobs  # never a half-written or lost job
    with JobIndex(folder, readonly=True) as index:
        assert index.counts() == {"DONE": 300, "ERROR": 100}


def write_jsonl(path: Path, entries: list[dict[str, Any]], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + tail, encoding="utf-8")


def test_jsonl_is_imported_once_with_a_torn_last_line_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "index"
    lines = [job("a"), job("b", state="ERROR", reason="bad"), {"jobKey": "old", "state": "DONE"},
             {"jobKey": "old", "state": "DONE"},  # written before runIds: two rows, as two lines
             job("a", batchSize=2)]  # the same run twice (a crash before its folder was removed): the last wins
    write_jsonl(folder / "jobs.jsonl", lines, tail='{"jobKey": "torn", "sta')
    caplog.set_level(logging.INFO, logger="ocrpipe.index")
    with JobIndex(folder) as index:
        assert index.counts() == {"DONE": 3, "ERROR": 1}
        assert [e.get("batchSize") for e in index.get("a")] == [2]
        assert not index.is_done("torn")
    assert not (folder / "jobs.jsonl").exists() and (folder / "jobs.jsonl.imported").exists()
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipped 1 line(s) that are not a whole finished job" in m for m in messages)
    assert any(m.startswith("imported 4 finished jobs from jobs.jsonl") for m in messages)

    # Committed, then a crash before the rename (or Windows refused it): the file is not imported twice.
    shutil.copy2(folder / "jobs.jsonl.imported", folder / "jobs.jsonl")
    with JobIndex(folder) as index:
        assert index.counts() == {"DONE": 3, "ERROR": 1}
    assert not (folder / "jobs.jsonl").exists()


def test_jsonl_import_after_a_crash_mid_build_and_into_an_existing_index(tmp_path: Path) -> None:
    folder = tmp_path / "index"
    write_jsonl(folder / "jobs.jsonl", [job("a"), job("b")])
    (folder / f"{DB_FILE}.importing").write_bytes(b"half a database, from a crash")
    with JobIndex(folder) as index:
        assert index.counts() == {"DONE": 2}
    assert not (folder / f"{DB_FILE}.importing").exists()

    write_jsonl(folder / "jobs.jsonl", [job("c", state="ERROR"), job("a", "r2")])  # another history, put back
    with JobIndex(folder) as index:
        assert index.counts() == {"DONE": 3, "ERROR": 1}
        assert [r["runId"] for r in index.get("a")] == ["r1", "r2"]
    assert sorted(p.name for p in folder.glob("jobs.jsonl*")) == ["jobs.jsonl (2).imported", "jobs.jsonl.imported"]


def test_export_writes_what_an_import_reads_back(index: JobIndex, tmp_path: Path) -> None:
    index.record(job("a", imagesReencoded=1))
    index.record(job("b", state="ERROR", reason="é: not a PDF", code=2))
    index.record(job("a", "r2"))
    out = tmp_path / "again" / "jobs.jsonl"
    out.parent.mkdir()
    with open(out, "w", encoding="utf-8") as handle:
        assert export_jsonl(index, handle) == 3
    with JobIndex(out.parent) as again:
        assert list(again) == list(index)


def test_status_counts_a_recorded_job_once_while_its_folder_is_being_removed(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    with JobIndex(settings.index_dir) as index:
        index.record(job("k__p", "run1"))
        index.record(job("e__p", "run1", state="ERROR", reason="encrypted"))
    for run_id in ("run1", "run2"):  # run1: recorded, folder not yet removed; run2: a new run of the same key
        record = new_state_record(job_key="k__p", run_id=run_id, file_hash="k", profile_hash="p",
                                  source_name="k.pdf", source_relpath="k.pdf", size=1)
        write_new_state(settings.work_dir / f"k__p-{run_id}", record)
    status = collect_status(settings)
    assert status["counts"] == {"DISCOVERED": 1, "DONE": 1, "ERROR": 1}
    # recorded before reason codes existed: no code, grouped as UNKNOWN
    assert status["recentErrors"] == [{"jobKey": "e__p", "source": "e__p.pdf", "reason": "encrypted", "code": None}]
    assert status["recentErrorsByCode"] == {"UNKNOWN": 1}
