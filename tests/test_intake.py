"""Polling in/: what is ignored, when a file counts as stable, staging by rename."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocrpipe.folders.intake import STAGING_DIR, Intake, is_ignored, stage, staged_leftovers


@pytest.mark.parametrize("name", ["scan.pdf.tmp", "big.PART", "x.crdownload", "~$report.docx", ".hidden",
                                  "._scan.pdf", "Thumbs.db", "desktop.ini", "@eaDir", STAGING_DIR])
def test_partial_and_system_files_are_ignored(name: str) -> None:
    assert is_ignored(name)


@pytest.mark.parametrize("name", ["scan.pdf", "Scan 2024 (1).TIF", "archive.7z", "tmp.pdf"])
def test_ordinary_names_are_taken(name: str) -> None:
    assert not is_ignored(name)


def test_file_is_ready_only_after_holding_still(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    growing = tmp_path / "sub" / "scan.pdf"
    growing.write_bytes(b"%PDF-1.4 part")
    (tmp_path / "@eaDir").mkdir()
    (tmp_path / "@eaDir" / "thumb.jpg").write_bytes(b"x")
    intake = Intake(tmp_path, stable_seconds=2)
    assert intake.poll(100.0) == [] and intake.pending == 1
    assert intake.poll(101.5) == []
    with open(growing, "ab") as handle:  # still being copied
        handle.write(b" more")
    os.utime(growing, ns=(1, 1))
    assert intake.poll(102.5) == []
    assert intake.poll(104.0) == []
    ready = intake.poll(104.6)
    assert [c.relpath for c in ready] == ["sub/scan.pdf"]


def test_vanished_files_are_forgotten(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"x")
    intake = Intake(tmp_path, stable_seconds=0)
    assert len(intake.poll(0)) == 1
    (tmp_path / "a.pdf").unlink()
    assert intake.poll(1) == [] and intake.pending == 0


@pytest.mark.parametrize("folder", ["May", "Scans 2024/été/" + "long folder name " * 12])
def test_stage_moves_file_and_records_where_it_came_from(tmp_path: Path, folder: str) -> None:
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "inv 1.pdf").write_bytes(b"%PDF-")
    [candidate] = Intake(tmp_path, 0).poll(0)
    staged = stage(candidate, tmp_path, tmp_path.with_name(tmp_path.name + "-journal"))
    assert staged is not None and staged.path.read_bytes() == b"%PDF-"
    assert (staged.relpath, staged.name) == (f"{folder}/inv 1.pdf", "inv 1.pdf")
    assert not (tmp_path / folder / "inv 1.pdf").exists()
    assert staged.intent is not None and tmp_path not in staged.intent.parents  # where droppers cannot write
    assert json.loads(staged.intent.read_text())["relpath"] == staged.relpath
    # The staging folder is invisible to the poller, and a restart finds the file again.
    assert Intake(tmp_path, 0).poll(0) == []
    [left] = staged_leftovers(tmp_path, tmp_path.with_name(tmp_path.name + "-journal"))
    assert (left.path, left.relpath) == (staged.path, f"{folder}/inv 1.pdf")


def test_stage_gives_up_quietly_when_the_file_is_gone(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"x")
    [candidate] = Intake(tmp_path, 0).poll(0)
    (tmp_path / "a.pdf").unlink()
    assert stage(candidate, tmp_path, tmp_path.with_name(tmp_path.name + "-journal")) is None
    assert list((tmp_path.with_name(tmp_path.name + "-journal")).iterdir()) == []
    assert not (tmp_path / STAGING_DIR).exists() or list((tmp_path / STAGING_DIR).iterdir()) == []


def test_files_held_open_by_another_program_do_not_keep_run_once_waiting(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ocrpipe.folders import intake as intake_module

    (tmp_path / "locked.pdf").write_bytes(b"x")
    (tmp_path / "free.pdf").write_bytes(b"y")
    monkeypatch.setattr(intake_module, "_can_open", lambda path: path.name != "locked.pdf")
    intake = Intake(tmp_path, stable_seconds=0)
    assert [c.relpath for c in intake.poll(0)] == ["free.pdf"]
    assert intake.blocked == {tmp_path / "locked.pdf"} and intake.pending == 1
    intake.forget(tmp_path / "free.pdf")
    assert intake.pending == 0


def test_status_counts_only_files_ocrpipe_would_take(tmp_path: Path) -> None:
    from ocrpipe.config import load_settings
    from ocrpipe.ops.status import collect_status

    inbox = tmp_path / "in"
    inbox.mkdir()
    for name in ("scan.pdf", "copy.tmp", "._scan.pdf", "Thumbs.db"):
        (inbox / name).write_bytes(b"x")
    assert collect_status(load_settings({"DATA_DIR": str(tmp_path)}))["waitingInInbox"] == 1


def test_an_intent_whose_file_never_was_staged_is_dropped_with_its_folder(tmp_path: Path) -> None:
    inbox, journal = tmp_path / "in", tmp_path / "journal"
    (inbox / STAGING_DIR / ("a" * 16)).mkdir(parents=True)  # a crash between the intent and the rename
    journal.mkdir()
    (journal / f"{'a' * 16}.json").write_text(json.dumps({"staged": f"{'a' * 16}/x.pdf", "relpath": "x.pdf",
                                                           "size": 1, "mtimeNs": 1}))
    assert staged_leftovers(inbox, journal) == []
    assert list(journal.iterdir()) == [] and list((inbox / STAGING_DIR).iterdir()) == []
