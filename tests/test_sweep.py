"""Sub-folders of in/ that ocrpipe emptied are removed once they stayed empty a while; nothing else is."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from conftest import drive, make_pdf
from ocrpipe.config import Settings
from ocrpipe.engine.scheduler import SWEEP_EVERY, Scheduler
from ocrpipe.folders.sweep import EmptyFolderSweeper


def aged(folder: Path, seconds: float) -> Path:
    past = time.time() - seconds
    os.utime(folder, (past, past))
    return folder


def test_only_noted_folders_empty_for_long_enough_go(tmp_path: Path) -> None:
    in_dir = tmp_path / "in"
    day, fresh, kept_by_person, busy = (in_dir / n for n in ("2026-11-30", "2026-12-01", "invoices", "busy"))
    for folder in (day, fresh, kept_by_person, busy):
        folder.mkdir(parents=True)
    (busy / "scan.pdf").write_bytes(b"%PDF-")
    sweeper = EmptyFolderSweeper(in_dir, empty_for=600)
    for folder in (day, fresh, busy, in_dir):
        sweeper.note(folder)
    aged(day, 601), aged(fresh, 30), aged(kept_by_person, 9999), aged(busy, 9999), aged(in_dir, 9999)
    assert sweeper.sweep() == [day]
    assert not day.exists() and fresh.is_dir() and kept_by_person.is_dir() and busy.is_dir() and in_dir.is_dir()


def test_a_folder_made_within_the_last_minute_stays_whatever_the_setting(tmp_path: Path) -> None:
    folder = tmp_path / "in" / "new"
    folder.mkdir(parents=True)
    sweeper = EmptyFolderSweeper(tmp_path / "in", empty_for=0)
    sweeper.note(folder)
    assert sweeper.sweep() == [] and folder.is_dir()
    assert sweeper.sweep(wall_now=time.time() + 61) == [folder]


def test_nested_folders_go_one_level_after_another(tmp_path: Path) -> None:
    in_dir = tmp_path / "in"
    leaf = in_dir / "2026" / "12" / "01"
    leaf.mkdir(parents=True)
    sweeper = EmptyFolderSweeper(in_dir, empty_for=60)
    sweeper.note(leaf)
    assert sweeper.sweep(wall_now=time.time() + 120) == [leaf]
    assert sweeper.sweep(wall_now=time.time() + 30) == []  # the parent just changed: its own wait starts
    assert sweeper.sweep(wall_now=time.time() + 120) == [leaf.parent]
    assert sweeper.sweep(wall_now=time.time() + 120) == [leaf.parent.parent]
    assert in_dir.is_dir()


def test_the_scheduler_removes_a_scanners_day_folder_it_emptied(
        data_dir: Path, make_settings: Callable[..., Settings],
        scheduler_for: Callable[[Settings], Scheduler]) -> None:
    day = data_dir / "in" / "2026-12-01"
    day.mkdir(parents=True)
    (day / "scan.pdf").write_bytes(make_pdf(1))
    person = data_dir / "in" / "invoices"
    person.mkdir()
    scheduler = scheduler_for(make_settings(EMPTY_FOLDER_SECONDS="60"))
    drive(scheduler)
    assert day.is_dir()  # emptied just now
    aged(day, 61), aged(person, 61)
    scheduler.tick(time.monotonic() + SWEEP_EVERY + 1)
    assert not day.exists() and person.is_dir() and (data_dir / "in").is_dir()
    assert (data_dir / "out" / "2026-12-01" / "scan.pdf").is_file()
