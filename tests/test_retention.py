"""Retention: archived originals, error/ folders and index rows older than RETAIN_*_DAYS (by when the job
finished, as the job index says) listed by a dry run, removed by ``clean --apply`` exactly, crash-safe, and
once a day by ``ocrpipe run``; what duplicate detection needs stays."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_PROFILE, drive, fake_command, make_pdf
from faultkit import SimulatedCrash, crash_at
from ocrpipe.cli import main
from ocrpipe.config import Settings, load_settings
from ocrpipe.engine.pools import process_pool_factory
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.folders.fsutil import atomic_write_json
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.metrics import load_metrics
from ocrpipe.index.rebuild import DiskHistory
from ocrpipe.index.retention import ARCHIVE_REMOVED, THINNED
from ocrpipe.index.search import PageRecord, run_range, store_pages
from ocrpipe.index.textschema import TEXT_TABLE
from ocrpipe.ops.clean import clean
from ocrpipe.retention.apply import apply_retention
from ocrpipe.retention.plan import plan_path

NOW = datetime.now(UTC)
RETAIN = {"RETAIN_ARCHIVE_DAYS": "90", "RETAIN_ERROR_DAYS": "90", "RETAIN_INDEX_DAYS": "90"}


def days_ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat(timespec="milliseconds")


def set_finished(settings: Settings, source: str, when: str) -> None:
    """The test sets when a job finished, in the index: retention reads nothing else."""
    with sqlite3.connect(settings.index_dir / "ocrpipe.sqlite") as conn:
        assert conn.execute("UPDATE jobs SET finished_at = ? WHERE source = ?", (when, source)).rowcount >= 1


def rows(settings: Settings) -> list[dict[str, Any]]:
    with JobIndex(settings.index_dir, readonly=True) as index:
        return list(index)


def run_pipeline(settings: Settings, make_scheduler: Callable[..., Scheduler]) -> Scheduler:
    scheduler = make_scheduler(settings)
    drive(scheduler)
    return scheduler


def dry_run(settings: Settings) -> dict[str, Any]:
    out = io.StringIO()
    assert clean(settings, apply=False, as_json=True, out=out, now=NOW) == 0
    return json.loads(out.getvalue())


def apply(settings: Settings) -> dict[str, Any]:
    out = io.StringIO()
    clean(settings, apply=True, as_json=True, out=out, now=NOW)
    return json.loads(out.getvalue())


def all_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run once for the module: three documents done (one dropped with the mtime of 2001) and one failure."""
    data_dir = tmp_path_factory.mktemp("template") / "data"
    env = {**os.environ, "DATA_DIR": str(data_dir), "OCR_LANG": "eng", "ORCHESTRATOR_PORT": "0",
           "STABLE_SECONDS": "0", "POLL_SECONDS": "0.1", "RETRY_BACKOFF_SECONDS": "0",
           **{name: fake_command(tool) for name, tool in (("SEVEN_ZIP", "7z"), ("OCRMYPDF", "ocrmypdf"),
                                                          ("TESSERACT", "tesseract"), ("GHOSTSCRIPT", "gs"))}}
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    for name in ("old1", "old2", "today"):
        (inbox / f"{name}.pdf").write_bytes(make_pdf(1, scenario=f"doc-{name}"))
    os.utime(inbox / "today.pdf", (978307200, 978307200))  # 2001-01-01: file times never decide
    (inbox / "broken.pdf").write_bytes(make_pdf(1, scenario="exit-8"))  # encrypted: error/ at once
    scheduler = Scheduler(load_settings(env), profile=TEST_PROFILE, executor_factory=process_pool_factory(None, "WARNING"))
    try:
        drive(scheduler)
    finally:
        scheduler.close()
    return data_dir


@pytest.fixture
def aged(template: Path, make_settings: Callable[..., Settings], data_dir: Path) -> Settings:
    """The template's data folder, copied; two documents and the failure finished 100 days ago (in the index);
    a refused file's folder from 100 days ago."""
    shutil.copytree(template, data_dir)
    settings = make_settings(**RETAIN)
    with sqlite3.connect(settings.index_dir / "ocrpipe.sqlite") as conn:  # the copy's own paths
        conn.execute("UPDATE jobs SET archived = replace(archived, ?1, ?2), error_dir = replace(error_dir, ?1, ?2), "
                     "output = replace(output, ?1, ?2)", (str(template), str(data_dir)))
    for source in ("old1.pdf", "old2.pdf", "broken.pdf"):
        set_finished(settings, source, days_ago(100))
    refused = settings.error_dir / "intake-0123456789abcdef"
    refused.mkdir()
    (refused / "scan.pdf").write_bytes(b"unreadable")
    atomic_write_json(refused / "error.json", {"source": "scan.pdf", "file": "scan.pdf", "stage": "INTAKE",
                                               "code": "INTAKE_FAILED", "failedAt": days_ago(100)})
    assert (settings.archive_dir / "today.pdf").stat().st_mtime == 978307200
    return settings


def test_dry_run_lists_the_old_ones_and_removes_nothing(aged: Settings) -> None:
    before = {d: all_files(d) for d in (aged.archive_dir, aged.error_dir, aged.out_dir)}
    index_before = rows(aged)
    found = dry_run(aged)
    assert sorted(Path(i["path"]).name for i in found["items"] if i["kind"] == "archive") == ["old1.pdf", "old2.pdf"]
    errors = sorted(Path(i["path"]).name for i in found["items"] if i["kind"] == "error")
    assert len(errors) == 2 and "intake-0123456789abcdef" in errors
    assert found["archive"]["files"] == 2 and found["archive"]["bytes"] > 0
    assert found["archive"]["oldestFinishedAt"] == days_ago(100)
    assert found["error"] == {"items": 2, "files": 4, "bytes": found["error"]["bytes"],
                              "oldestFinishedAt": days_ago(100)}
    assert found["indexRowsToThin"] == 3
    assert {d: all_files(d) for d in before} == before
    assert rows(aged) == index_before
    assert not plan_path(aged).exists()


def test_dry_run_text_names_each_file_and_the_totals(aged: Settings, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in RETAIN.items():
        monkeypatch.setenv(name, value)
    assert main(["clean", "--data", str(aged.data_dir)]) == 0
    text = capsys.readouterr().out
    assert "old1.pdf" in text and "old2.pdf" in text and "today.pdf" not in text
    assert "Would remove:" in text and "ocrpipe clean --apply" in text


def test_apply_removes_exactly_those_and_records_it(aged: Settings, data_dir: Path) -> None:
    out_before, hold_before = all_files(aged.out_dir), all_files(aged.hold_dir)
    planned = {i["path"] for i in dry_run(aged)["items"]}
    done = apply(aged)
    assert done["applied"] and done["archive"]["files"] == 2 and done["error"]["items"] == 2
    assert done["indexRowsThinned"] == 3
    assert all_files(aged.archive_dir) == {"today.pdf"}  # mtime 2001, finished today: kept
    assert all_files(aged.error_dir) == set()
    assert all_files(aged.out_dir) == out_before and all_files(aged.hold_dir) == hold_before
    assert all(not Path(p).exists() for p in planned)
    by_source = {r.get("source"): r for r in rows(aged)}
    assert by_source["today.pdf"]["archived"]  # untouched
    thinned = [r for r in rows(aged) if r.get(THINNED)]
    assert len(thinned) == 3
    for row in thinned:  # what duplicate detection needs, and when the files went
        assert row["jobKey"] and row["runId"] and row["state"] in ("DONE", "ERROR") and row["finishedAt"]
        assert row["source"] is None and row["archived"] is None and row["attempts"] is None
    assert all(r.get(ARCHIVE_REMOVED) for r in thinned if r["state"] == "DONE")
    assert not plan_path(aged).exists()
    again = apply(aged)  # nothing left to do
    assert again["files"] == 0 and again["indexRowsThinned"] == 0


def test_held_duplicate_is_never_removed_and_the_same_bytes_stay_a_duplicate(
        aged: Settings, scheduler_for: Callable[..., Scheduler]) -> None:
    inbox = aged.in_dir
    (inbox / "old1-again.pdf").write_bytes(make_pdf(1, scenario="doc-old1"))  # held before retention
    run_pipeline(aged, scheduler_for).close()
    held = all_files(aged.hold_dir)
    assert any(name.endswith("old1-again.pdf") for name in held)
    apply(aged)
    assert all_files(aged.hold_dir) == held
    assert not (aged.archive_dir / "old1.pdf").exists()
    (inbox / "old2-again.pdf").write_bytes(make_pdf(1, scenario="doc-old2"))  # after its archive went
    scheduler = run_pipeline(aged, scheduler_for)
    assert any(name.endswith("old2-again.pdf") for name in all_files(aged.hold_dir))
    assert not (aged.out_dir / "old2-again.pdf").exists()
    assert scheduler.metrics["duplicates_detected"] == 2


def test_a_rebuilt_index_keeps_the_removed_runs_as_duplicates(aged: Settings) -> None:
    apply(aged)
    old_key = next(r["jobKey"] for r in rows(aged) if r.get(ARCHIVE_REMOVED))
    for suffix in ("", "-wal", "-shm"):
        (aged.index_dir / f"ocrpipe.sqlite{suffix}").unlink(missing_ok=True)
    with JobIndex(aged.index_dir) as index:
        DiskHistory(aged, TEST_PROFILE)(index)
        assert index.is_done(old_key)
        restored = index.get(old_key)[-1]
    assert restored[ARCHIVE_REMOVED] and restored["archived"] is None
    assert dry_run(aged)["files"] == 0  # nothing comes back to be listed again


def test_trash_folder_gets_them_instead(aged: Settings, make_settings: Callable[..., Settings],
                                       tmp_path: Path) -> None:
    settings = make_settings(**RETAIN, RETAIN_TRASH_DIR=str(tmp_path / "trash"))
    done = apply(settings)
    assert done["trashDir"] == str(tmp_path / "trash") and done["archive"]["files"] == 2
    trash = all_files(tmp_path / "trash")
    assert {"archive/old1.pdf", "archive/old2.pdf", "error/intake-0123456789abcdef/scan.pdf"} <= trash
    assert all_files(settings.archive_dir) == {"today.pdf"}
    assert not any(name.endswith(".ocrpipe-tmp") for name in trash)


def test_only_ocrpipes_files_leave_an_error_folder(aged: Settings) -> None:
    refused = aged.error_dir / "intake-0123456789abcdef"
    (refused / "notes.txt").write_text("a person's")
    apply(aged)
    assert all_files(aged.error_dir) == {"intake-0123456789abcdef/notes.txt"}


def test_a_link_in_archive_is_not_followed(aged: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "precious.pdf"
    outside.write_bytes(b"keep")
    target = aged.archive_dir / "old1.pdf"
    target.unlink()
    target.symlink_to(outside)
    apply(aged)
    assert outside.read_bytes() == b"keep" and target.is_symlink()


def test_off_by_default(make_settings: Callable[..., Settings], aged: Settings) -> None:
    settings = make_settings()
    found = dry_run(settings)
    assert found["files"] == 0 and found["indexRowsToThin"] == 0
    assert apply(settings)["files"] == 0
    assert (settings.archive_dir / "old1.pdf").exists()


def test_stored_text_of_thinned_runs_goes_too(aged: Settings) -> None:
    """The pages' text the search index keeps of a run goes when its row is thinned, and only then."""
    with sqlite3.connect(aged.index_dir / "ocrpipe.sqlite") as conn:
        ids = [row_id for (row_id,) in conn.execute("SELECT id FROM jobs")]
        for row_id in ids:
            store_pages(conn, row_id, PageRecord(texts=["invoice 4711"], readings=[None]))
    apply(aged)
    with sqlite3.connect(aged.index_dir / "ocrpipe.sqlite") as conn:
        kept = {run_range(row_id)[0] | 1 for row_id in ids} & {r for (r,) in conn.execute(f"SELECT rowid FROM {TEXT_TABLE}")}
        thinned = {row_id for (row_id,) in conn.execute("SELECT id FROM jobs WHERE json_extract(extra, '$.thinnedAt') IS NOT NULL")}
    assert len(thinned) == 3
    assert kept == {run_range(row_id)[0] | 1 for row_id in ids if row_id not in thinned}


# ----- a crash in the middle of --apply ---------------------------------------------------------------


@pytest.mark.parametrize("crash_after", range(7))
def test_a_crash_in_the_middle_is_finished_by_the_next_run(aged: Settings, crash_after: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed before each removal in turn: the six files of archive/ and error/, then the plan itself."""
    planned = {i["path"] for i in dry_run(aged)["items"]}
    keep = {d: all_files(d) - {Path(p).relative_to(d).as_posix() for p in planned if Path(p).is_relative_to(d)}
            for d in (aged.archive_dir, aged.out_dir, aged.hold_dir)}
    calls = [0]

    def nth(*args: Any) -> bool:
        calls[0] += 1
        return calls[0] > crash_after

    with JobIndex(aged.index_dir) as index:
        with crash_at(monkeypatch, "unlink", nth), pytest.raises(SimulatedCrash):
            apply_retention(aged, index, NOW)
    assert plan_path(aged).exists()
    for folder, files in keep.items():
        assert files <= all_files(folder)
    done = apply(aged)
    assert not plan_path(aged).exists()
    assert all_files(aged.archive_dir) == {"today.pdf"} and all_files(aged.error_dir) == set()
    for folder, files in keep.items():
        assert all_files(folder) == files or folder == aged.archive_dir
    assert len([r for r in rows(aged) if r.get(THINNED)]) == 3
    assert done["resumedItems"] <= 4 and done["failed"] == []


def test_a_crash_between_removing_and_recording_is_recorded_at_the_next_run(aged: Settings) -> None:
    with JobIndex(aged.index_dir) as index:
        def crash(item: dict[str, Any]) -> None:
            raise SimulatedCrash("killed after the first removal")

        with pytest.raises(SimulatedCrash):
            apply_retention(aged, index, NOW, after_item=crash)
    first_gone = [p for p in ("old1.pdf", "old2.pdf") if not (aged.archive_dir / p).exists()]
    assert len(first_gone) == 1
    apply(aged)
    assert sum(1 for r in rows(aged) if r.get(ARCHIVE_REMOVED)) == 2


# ----- once a day in ocrpipe run ----------------------------------------------------------------------


def test_run_applies_it_once_a_day_and_counts_it(aged: Settings, scheduler_for: Callable[..., Scheduler],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="ocrpipe.retention")
    scheduler = scheduler_for(aged)
    scheduler.tick(0.0)  # never applied on this data folder: due at once
    scheduler.retention.join()
    scheduler.tick(1.0)
    assert all_files(aged.archive_dir) == {"today.pdf"}
    assert scheduler.metrics["retention_files_removed"] == 6
    assert scheduler.metrics["retention_rows_thinned"] == 3
    assert scheduler.metrics["retention_bytes_removed"] > 0
    assert load_metrics(aged.index_dir)["retention_files_removed"] == 6
    assert any("retention: removed 2 archived original(s)" in r.getMessage() for r in caplog.records)
    scheduler.close()
    again = scheduler_for(aged)  # a restart (run --once every few minutes): not again the same day
    again.tick(0.0)
    assert again.retention._thread is None
    # A day after the first pass, which ran at the real time (NOW is when the module was imported, which
    # in a whole-suite run may be minutes earlier).
    again.retention.clock = lambda: datetime.now(UTC) + timedelta(days=1, minutes=1)
    again.tick(100.0)
    assert again.retention._thread is None  # looked again only after CHECK_SECONDS
    again.tick(700.0)
    assert again.retention._thread is not None
    again.retention.join()


def test_the_bench_script_measures_what_it_claims(tmp_path: Path) -> None:
    """bench/retentionbench.py, small: the dry run lists the old files, the apply removes exactly them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import retentionbench

    report = retentionbench.measure(300, 20, tmp_path)
    assert report["dryRun"]["files"] == 20 and report["apply"]["files"] == 20
    assert report["dryRun"]["indexRows"] == 20 and report["apply"]["indexRows"] == 20
    assert report["apply"]["seconds"] > 0 and report["apply"]["peakRssMb"] > 0
    assert not any((tmp_path / "data" / "archive").rglob("*.pdf"))
