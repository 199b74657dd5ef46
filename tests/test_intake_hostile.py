"""Whoever can drop files can also plant links, FIFOs and very deep folders in in/ and in its staging folder:
nothing outside the data folder is read, moved or published, nothing blocks a tick, and a good file beside
them is still taken in. And a link in work/ (written by every cluster worker) is not followed at start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import make_pdf
from faultkit import Driven

from ocrpipe.config import ConfigError, Settings, load_settings
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.errors import ExitCode
from ocrpipe.folders import intake as intake_module
from ocrpipe.folders.intake import STAGING_DIR, Intake

posix_only = pytest.mark.skipif(os.name != "posix", reason="symbolic links and FIFOs as an ordinary user: POSIX")
TICK_TIMEOUT = 20.0


def tree(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` with its bytes, links not followed."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found[path.relative_to(folder).as_posix()] = path.read_bytes()
    return found


def outputs(data: Path) -> dict[str, bytes]:
    return tree(data / "out") if (data / "out").is_dir() else {}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the data folder, with a file and a sub-folder of files ocrpipe must never touch."""
    folder = tmp_path / "outside"
    (folder / "folder").mkdir(parents=True)
    (folder / "secret.pdf").write_bytes(make_pdf(1, scenario="outside"))
    (folder / "folder" / "inner.pdf").write_bytes(make_pdf(2, scenario="outside-inner"))
    (folder / "folder" / f"{'0' * 16}~inner2.pdf").write_bytes(make_pdf(1, scenario="outside-staged"))
    return folder


def run_driven(settings: Settings) -> Driven:
    driven = Driven(settings)
    driven.run_all(0.0)
    return driven


# ----- links -------------------------------------------------------------------------------------


@posix_only
def test_links_dropped_in_in_are_never_followed(make_settings: Callable[..., Settings], data_dir: Path,
                                                outside: Path) -> None:
    before = tree(outside)
    inbox = data_dir / "in"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "good.pdf").write_bytes(make_pdf(1))
    (inbox / "link.pdf").symlink_to(outside / "secret.pdf")
    (inbox / "sub" / "link.pdf").symlink_to(outside / "secret.pdf")
    (inbox / "linked folder").symlink_to(outside / "folder", target_is_directory=True)
    run_driven(make_settings())
    assert tree(outside) == before
    assert list(outputs(data_dir)) == ["good.pdf"]
    assert (inbox / "link.pdf").is_symlink() and (inbox / "linked folder").is_symlink()


@posix_only
def test_links_planted_in_staging_are_left_alone_and_logged_once(make_settings: Callable[..., Settings],
                                                                 data_dir: Path, outside: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    before = tree(outside)
    staging = data_dir / "in" / STAGING_DIR
    staging.mkdir(parents=True)
    (staging / f"{'a' * 16}~secret.pdf").symlink_to(outside / "secret.pdf")
    (staging / ("b" * 16)).symlink_to(outside / "folder", target_is_directory=True)
    (staging / f"{'c' * 16}~forged.pdf").write_bytes(make_pdf(1, scenario="forged"))  # not staged by ocrpipe
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1))
    with caplog.at_level("WARNING"):
        driven = run_driven(make_settings())
        for n in range(3):
            driven.scheduler.tick(100.0 + n)
        run_driven(make_settings())  # a second start finds them again
    assert tree(outside) == before
    assert list(outputs(data_dir)) == ["good.pdf"]
    assert (staging / f"{'a' * 16}~secret.pdf").is_symlink() and (staging / ("b" * 16)).is_symlink()
    assert (staging / f"{'c' * 16}~forged.pdf").is_file()
    about_forged = [r for r in caplog.records if "forged.pdf" in r.getMessage()]
    assert len(about_forged) == 2  # once per start, never per tick


@posix_only
def test_a_staging_folder_that_is_a_link_is_never_used(make_settings: Callable[..., Settings], data_dir: Path,
                                                       outside: Path) -> None:
    before = tree(outside)
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    (inbox / STAGING_DIR).symlink_to(outside / "folder", target_is_directory=True)
    good = make_pdf(1)
    (inbox / "good.pdf").write_bytes(good)
    run_driven(make_settings())
    assert tree(outside) == before  # nothing taken from it, nothing staged into it
    assert outputs(data_dir) == {} and (inbox / "good.pdf").read_bytes() == good  # not lost: left in in/


def test_run_once_with_a_staging_folder_that_is_a_link_does_not_report_success(
        data_dir: Path, fake_env: dict[str, str], outside: Path) -> None:
    """Files it could not take are waiting: a scheduled run must not say all went well, and says why."""
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    (inbox / STAGING_DIR).symlink_to(outside / "folder", target_is_directory=True)
    (inbox / "good.pdf").write_bytes(make_pdf(1))
    result = subprocess.run([sys.executable, "-m", "ocrpipe", "run", "--once"], env=fake_env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == ExitCode.JOBS_FAILED, result.stderr
    assert "Traceback" not in result.stderr and "held open by another program" not in result.stderr
    assert "left in in/: 1 file(s)" in result.stderr and STAGING_DIR in result.stderr
    assert (inbox / "good.pdf").exists()


@posix_only
def test_a_staged_file_swapped_for_a_link_is_not_hashed_nor_taken(make_settings: Callable[..., Settings],
                                                                  data_dir: Path, outside: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    before = tree(outside)
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1))
    real_stage = intake_module.stage

    def swap(*args: Any, **kwargs: Any) -> Any:
        staged = real_stage(*args, **kwargs)
        if staged is not None:
            staged.path.unlink()
            staged.path.symlink_to(outside / "secret.pdf")
        return staged

    monkeypatch.setattr("ocrpipe.engine.scheduler.stage_file", swap)
    driven = Driven(make_settings())
    for n in range(5):
        driven.scheduler.tick(float(n))
    assert tree(outside) == before and outputs(data_dir) == {} and driven.calls() == []


@posix_only
@pytest.mark.parametrize("keep_source", [True, False])
def test_a_result_or_original_swapped_for_a_link_is_not_published(tmp_path: Path, outside: Path,
                                                                   keep_source: bool) -> None:
    """Publishing copies final.pdf to out/ and moves the original to archive/ or error/ (place_file), and
    work/ is written by every cluster worker: a link there is neither read through nor moved."""
    from ocrpipe.folders.fsutil import move_replacing, place_file

    before = tree(outside)
    job = tmp_path / "work" / "job"
    job.mkdir(parents=True)
    (job / "final.pdf").symlink_to(outside / "secret.pdf")
    with pytest.raises(OSError):
        place_file(job / "final.pdf", tmp_path / "out", "good.pdf", tmp_name=".tmp", keep_source=keep_source)
    with pytest.raises(OSError):
        move_replacing(job / "final.pdf", tmp_path / "archive", "good.pdf")
    assert tree(outside) == before and tree(tmp_path / "out") == {} and tree(tmp_path / "archive") == {}
    assert not any(p.is_symlink() for p in (tmp_path / "out").iterdir())
    assert (job / "final.pdf").is_symlink()


@posix_only
def test_a_link_in_work_named_as_a_job_folder_is_not_followed_at_start(
        make_settings: Callable[..., Settings], data_dir: Path, outside: Path, caplog: pytest.LogCaptureFixture) -> None:
    """work/ is written by every cluster worker. A start cleans each job folder up (its tmp/ deleted,
    its input/ looked at): through a link named as a job folder, that deleted tmp/ where it pointed."""
    (outside / "tmp").mkdir()
    (outside / "tmp" / "keep.txt").write_bytes(b"keep")
    (outside / "input").mkdir()
    before = tree(outside)
    (data_dir / "work").mkdir(parents=True)
    link = data_dir / "work" / "0123456789abcdef_01234567"
    link.symlink_to(outside, target_is_directory=True)
    (data_dir / "in").mkdir()
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1))
    with caplog.at_level("WARNING"):
        driven = run_driven(make_settings())
        driven.restart()
        driven.run_all(100.0)
    assert tree(outside) == before and (outside / "input").is_dir()
    assert link.is_symlink() and list(outputs(data_dir)) == ["good.pdf"]
    assert "is a link, not a job folder of ocrpipe; not followed" in caplog.text


def test_the_windows_branch_takes_junctions_and_symlinks_for_links_but_not_cloud_files() -> None:
    from ocrpipe.folders import nofollow

    class Stat:
        def __init__(self, attributes: int, tag: int) -> None:
            self.st_mode, self.st_file_attributes, self.st_reparse_tag = 0o100644, attributes, tag

    reparse = nofollow.FILE_ATTRIBUTE_REPARSE_POINT
    assert nofollow._is_link_windows(Stat(reparse, 0xA0000003))  # a junction (mount point)
    assert nofollow._is_link_windows(Stat(reparse, 0xA000000C))  # a symbolic link
    assert nofollow._is_link_windows(Stat(reparse, 0))  # a reparse point of unknown kind: not trusted
    assert not nofollow._is_link_windows(Stat(reparse, 0x9000001A))  # a OneDrive placeholder: a file
    assert not nofollow._is_link_windows(Stat(0x20, 0))  # an ordinary file
    assert nofollow._open_flags_windows() & getattr(os, "O_BINARY", 0) == getattr(os, "O_BINARY", 0)


# ----- a very deep folder ------------------------------------------------------------------------------


def deep_folder(top: Path, levels: int) -> Path:
    top.mkdir(parents=True, exist_ok=True)
    path = top
    for _ in range(levels):  # not os.makedirs: it recurses once per level
        path = path / "d"
        path.mkdir()
    return path


def remove_deep(top: Path, levels: int) -> None:
    """Without recursion: Python's own rmtree recurses once per level."""
    bottom = top.joinpath(*["d"] * levels)
    for child in bottom.iterdir():
        child.unlink()
    for n in range(levels, -1, -1):
        top.joinpath(*["d"] * n).rmdir()


@pytest.fixture
def very_deep(data_dir: Path) -> Iterator[Path]:
    levels = 1100
    bottom = deep_folder(data_dir / "in" / "deep", levels)
    (bottom / "bottom.pdf").write_bytes(make_pdf(1))
    yield bottom
    if (data_dir / "in" / "deep").exists():
        remove_deep(data_dir / "in" / "deep", levels)


def test_run_once_takes_a_good_file_beside_a_very_deep_folder(data_dir: Path, fake_env: dict[str, str],
                                                               very_deep: Path) -> None:
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1))
    result = subprocess.run([sys.executable, "-m", "ocrpipe", "run", "--once"], env=fake_env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert (data_dir / "out" / "good.pdf").exists() and not (data_dir / "in" / "good.pdf").exists(), result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("deeper than INTAKE_MAX_DEPTH=32") == 1
    assert (very_deep / "bottom.pdf").exists()  # beyond the limit: left where it is


def test_the_scan_enters_sub_folders_up_to_the_depth_limit(tmp_path: Path) -> None:
    deep_folder(tmp_path, 3)
    (tmp_path / "d" / "d" / "two.pdf").write_bytes(b"x")
    (tmp_path / "d" / "d" / "d" / "three.pdf").write_bytes(b"x")
    assert [c.relpath for c in Intake(tmp_path, 0, max_depth=2).poll(0)] == ["d/d/two.pdf"]
    assert len(Intake(tmp_path, 0, max_depth=3).poll(0)) == 2


def test_a_poll_that_faulted_does_not_count_as_an_empty_inbox(make_settings: Callable[..., Settings],
                                                               data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1))
    driven = Driven(make_settings())
    def broken(*args: Any, **kwargs: Any) -> Iterator[Any]:
        raise RuntimeError("the scan broke")

    monkeypatch.setattr(intake_module, "_scan", broken)
    driven.scheduler.tick(0.0)
    assert not driven.scheduler.idle()
    monkeypatch.undo()
    driven.run_all(10.0)
    assert list(outputs(data_dir)) == ["good.pdf"]


@pytest.mark.parametrize("value", ["-1", "deep", "2.5"])
def test_a_bad_depth_limit_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="INTAKE_MAX_DEPTH"):
        load_settings({"DATA_DIR": "data", "INTAKE_MAX_DEPTH": value})
    assert load_settings({"DATA_DIR": "data"}).intake_max_depth == 32


# ----- FIFOs -------------------------------------------------------------------------------------------


def release_fifos(folder: Path) -> None:
    """Opens every FIFO under ``folder`` for writing, which lets a reader blocked in open() go."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISFIFO(os.lstat(path).st_mode):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def tick_within(scheduler: Scheduler, now: float, inbox: Path) -> None:
    """One tick in a thread: a tick blocked in open() fails the test instead of hanging it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            scheduler.tick(now)
        except BaseException as exc:  # noqa: BLE001 — handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TICK_TIMEOUT)
    if thread.is_alive():
        release_fifos(inbox)
        thread.join(TICK_TIMEOUT)
        pytest.fail("the tick blocked on a FIFO")
    assert not errors, errors


def drive_within(driven: Driven, inbox: Path, now: float = 0.0) -> None:
    for _ in range(30):
        now += 1
        tick_within(driven.scheduler, now, inbox)
        while driven.calls():
            future, fn, args, kwargs = driven.pop()
            future.set_result(fn(*args, **kwargs))
            tick_within(driven.scheduler, now, inbox)
        if driven.scheduler.idle():
            return
    raise AssertionError("not idle")


@posix_only
def test_a_fifo_in_in_is_skipped_and_logged_once(make_settings: Callable[..., Settings], data_dir: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    (data_dir / "in").mkdir(parents=True)
    os.mkfifo(data_dir / "in" / "x.pdf")
    (data_dir / "in" / "good.pdf").write_bytes(make_pdf(1))
    with caplog.at_level("WARNING"):
        drive_within(Driven(make_settings()), data_dir / "in")
    assert list(outputs(data_dir)) == ["good.pdf"]
    assert len([r for r in caplog.records if "x.pdf" in r.getMessage()]) == 1


@posix_only
def test_a_file_swapped_for_a_fifo_after_the_listing_blocks_nothing(make_settings: Callable[..., Settings],
                                                                    data_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    (inbox / "x.pdf").write_bytes(make_pdf(1, scenario="swapped"))
    (inbox / "good.pdf").write_bytes(make_pdf(1))
    real_scan = intake_module._scan

    def scan_then_swap(*args: Any, **kwargs: Any) -> Iterator[Any]:
        listed = list(real_scan(*args, **kwargs))
        if (inbox / "x.pdf").is_file():
            (inbox / "x.pdf").unlink()
            os.mkfifo(inbox / "x.pdf")
        return iter(listed)

    monkeypatch.setattr(intake_module, "_scan", scan_then_swap)
    drive_within(Driven(make_settings()), inbox)
    assert list(outputs(data_dir)) == ["good.pdf"]
    assert (inbox / "x.pdf").exists()  # left where it is


@posix_only
def test_a_fifo_staged_between_the_check_and_the_rename_is_not_hashed(make_settings: Callable[..., Settings],
                                                                     data_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = data_dir / "in"
    inbox.mkdir(parents=True)
    (inbox / "x.pdf").write_bytes(make_pdf(1, scenario="swapped"))
    (inbox / "good.pdf").write_bytes(make_pdf(1))
    real_stage = intake_module.stage

    def swap_then_stage(candidate: Any, *args: Any, **kwargs: Any) -> Any:
        if candidate.path.name == "x.pdf" and candidate.path.is_file():
            candidate.path.unlink()
            os.mkfifo(candidate.path)
        return real_stage(candidate, *args, **kwargs)

    monkeypatch.setattr("ocrpipe.engine.scheduler.stage_file", swap_then_stage)
    drive_within(Driven(make_settings()), inbox)
    assert list(outputs(data_dir)) == ["good.pdf"]
