"""Keys and names read from JSON files that anyone who can drop files can also write (status.json, arrival
sidecars, decision.json, state.json, the cluster marker): a hostile one is reported and leads nowhere
outside its folder. A sentinel folder beside the data folder must stay untouched byte for byte."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import finished_jobs, make_pdf
from faultkit import Driven
from test_decisions import first_done_then_held, held_files, held_folder, write_decision

from ocrpipe.cluster.remote import MARKER_FILE, check_view, marker_token
from ocrpipe.config import Settings
from ocrpipe.errors import WorkerSetupError
from ocrpipe.folders.layout import short_name
from ocrpipe.folders.pathcheck import UnsafePath, check_job_key, check_name, child_path
from ocrpipe.folders.store import new_state_record
from ocrpipe.ops.status import print_status
from ocrpipe.web.statuspage import pending_duplicates

KEY = "a" * 64 + "__" + "b" * 64
HELD = "20240101T000000000000Z__x.pdf"


def sentinel(data: Path) -> Path:
    """A folder beside the data folder with files an attack would delete, overwrite or move."""
    folder = data.parent / "sentinel"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text('{"keep": true}')
    (folder / "secret.pdf").write_bytes(make_pdf(1))
    (folder / "sub" / "x.pdf.arrival.json").write_text("{}")
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return len([r for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()])


# ----- the helpers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", ".", "..", "...", " . ", "a/b", "a\\b", "/abs", "C:x", "x\x00y", "n" * 256,
                                 5, None, ["x"]])
def test_a_name_that_is_not_one_component_is_refused(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(UnsafePath):
        check_name(bad)
    with pytest.raises(UnsafePath):
        child_path(tmp_path, "input", bad)


@pytest.mark.parametrize("bad", ["", "/etc/x", "../" + KEY, KEY.upper(), KEY + "x", "a" * 64 + "__" + "b" * 63,
                                 short_name(KEY), 12, None])
def test_a_job_key_has_one_shape(bad: Any) -> None:
    assert check_job_key(KEY) == KEY
    with pytest.raises(UnsafePath, match="not a job key"):
        check_job_key(bad)


def test_child_path_stays_in_its_folder(tmp_path: Path) -> None:
    assert child_path(tmp_path, "input", "original.pdf") == tmp_path / "input" / "original.pdf"


# ----- hold/duplicates ---------------------------------------------------------------------------------

def hostile_hold(data: Path, name: str, key: str) -> Path:
    """A hold folder written by hand: status.json with ``key``, a held file, and a decision to discard it."""
    folder = data / "hold" / "duplicates" / name
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": "DUPLICATE_PENDING", "jobKey": key}))
    (folder / HELD).write_bytes(b"held")
    (folder / "decision.json").write_text('{"action": "DISCARD"}')
    return folder


def test_a_hand_written_status_json_whose_key_is_a_path_moves_and_deletes_nothing(
        make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings()
    data = settings.data_dir
    outside = sentinel(data)
    before = snapshot(outside)
    (data / "in").mkdir(parents=True)
    absolute = hostile_hold(data, "abs", str(outside / "settings"))
    relative = hostile_hold(data, "rel", "../../../sentinel/settings")
    looks_right = hostile_hold(data, short_name(KEY), "../" + KEY)  # a key's short name, a key that is not
    driven = Driven(settings)
    with caplog.at_level(logging.WARNING):
        for n in range(4):
            driven.scheduler.tick(float(n))
        driven.restart()
        for n in range(4, 8):
            driven.scheduler.tick(float(n))
    assert snapshot(outside) == before
    assert not (data / "reports").exists() or not any((data / "reports").rglob("*.json"))
    for folder in (absolute, relative, looks_right):
        assert (folder / HELD).read_bytes() == b"held" and (folder / "decision.json").is_file(), folder
        status = json.loads((folder / "status.json").read_text())
        assert "not a job key" in status["error"], status
    assert warnings_with(caplog, "not a job key") == 3  # once per folder, not at every tick nor restart


def hostile_sidecar(folder: Path, **changes: Any) -> None:
    [sidecar] = folder.glob("*.arrival.json")
    meta = json.loads(sidecar.read_text())
    meta.update(changes)
    sidecar.write_text(json.dumps(meta))


@pytest.mark.parametrize("changes, problem", [
    ({"jobKey": "../../../sentinel/settings"}, "not a job key"),
    ({"jobKey": KEY}, "is not the job key of the folder"),
    ({"source": {"evil": 1}}, "source"),
    ({"decision": {"action": "DISCARD", "decidedAt": "now", "placed": "x"}}, "decision"),
    ({"decision": {"action": "FORCE_REPROCESS", "decidedAt": "now", "runId": "../../sentinel"}}, "decision"),
])
@pytest.mark.parametrize("status_kept", [True, False])
def test_a_hostile_arrival_sidecar_is_reported_and_its_file_stays_held(
        make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, changes: dict[str, Any],
        problem: str, status_kept: bool) -> None:
    settings = make_settings()
    data = settings.data_dir
    outside = sentinel(data)
    before = snapshot(outside)
    driven, now = first_done_then_held(settings, "copy.pdf")
    folder = held_folder(data)
    hostile_sidecar(folder, **changes)
    if not status_kept:  # the key is then read from the sidecar at the next start
        (folder / "status.json").unlink()
    held = held_files(data)
    write_decision(data, {"action": "DISCARD"})
    with caplog.at_level(logging.WARNING):
        for n in range(3):
            driven.scheduler.tick(now + n)
        driven.restart()
        for n in range(3, 6):
            driven.scheduler.tick(now + n)
    assert snapshot(outside) == before
    assert held_files(data) == held
    error = json.loads((folder / "status.json").read_text())["error"]
    assert problem in error and ".arrival.json" in error, error
    assert warnings_with(caplog, problem) == 1


@pytest.mark.parametrize("wanted", ["../../../sentinel/secret.pdf", "/sentinel/secret.pdf", 7, ["copy.pdf"]])
def test_a_decision_naming_a_path_or_no_name_is_reported_and_moves_nothing(
        make_settings: Callable[..., Settings], wanted: Any) -> None:
    settings = make_settings()
    data = settings.data_dir
    outside = sentinel(data)
    before = snapshot(outside)
    driven, now = first_done_then_held(settings, "copy.pdf")
    held = held_files(data)
    write_decision(data, {"action": "USE_EXISTING_RESULT", "file": wanted})
    for n in range(3):
        driven.scheduler.tick(now + n)
    assert snapshot(outside) == before and held_files(data) == held
    assert "file" in json.loads((held_folder(data) / "status.json").read_text())["error"]


# ----- work/<job>/state.json ----------------------------------------------------------------------------

def planted_job(settings: Settings, outside: Path, **changes: Any) -> Path:
    """A job folder written by hand, waiting to be taken in, its original in input/."""
    job_dir = settings.work_dir / short_name(KEY)
    record = new_state_record(job_key=KEY, run_id="r", file_hash=KEY[:64], profile_hash=KEY[66:],
                              source_name="planted.pdf", source_relpath="planted.pdf", size=1)
    (job_dir / "input").mkdir(parents=True)
    (job_dir / "input" / "original.pdf").write_bytes(make_pdf(1))
    record.update(changes)
    (job_dir / "state.json").write_text(json.dumps(record))
    return job_dir


@pytest.mark.parametrize("changes, problem", [
    ({"input": "SENTINEL/secret.pdf"}, "input"),
    ({"input": "input/../../../../sentinel/secret.pdf"}, "input"),
    ({"input": ["input", "original.pdf"]}, "input"),
    ({"jobKey": "SENTINEL/settings"}, "not a job key"),
    ({"jobKey": "c" * 64 + "__" + "d" * 64}, "is not the job key of"),
    ({"source": {"name": 1, "relpath": None, "size": 1}}, "source"),
    ({"state": "../../x"}, "state"),
])
def test_a_hand_written_state_json_is_left_as_it_is_and_reported_once(
        make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, changes: dict[str, Any],
        problem: str) -> None:
    settings = make_settings()
    data = settings.data_dir
    outside = sentinel(data)
    before = snapshot(outside)
    changes = {k: json.loads(json.dumps(v).replace("SENTINEL", str(outside))) for k, v in changes.items()}
    job_dir = planted_job(settings, outside, **changes)
    (data / "in").mkdir(parents=True, exist_ok=True)
    driven = Driven(settings)
    with caplog.at_level(logging.WARNING):
        now = driven.run_all(0.0)
        for n in range(3):
            driven.scheduler.tick(now + n)
    assert snapshot(outside) == before
    assert (job_dir / "input" / "original.pdf").is_file()
    assert list((data / "out").glob("**/*.pdf")) == [] and list((data / "archive").glob("**/*")) == []
    assert warnings_with(caplog, problem) == 1, [r.getMessage() for r in caplog.records]


# ----- the cluster marker -------------------------------------------------------------------------------

@pytest.mark.parametrize("content", ['["token"]', '{"token": {"a": 1}}', '{"token": "../../x"}', '"x"'])
def test_a_hand_written_cluster_marker_is_replaced_not_trusted(tmp_path: Path, content: str) -> None:
    (tmp_path / MARKER_FILE).write_text(content)
    with pytest.raises(WorkerSetupError, match=MARKER_FILE):
        check_view(tmp_path, "0" * 32)
    token = marker_token(tmp_path)
    assert len(token) == 32 and int(token, 16) >= 0
    assert json.loads((tmp_path / MARKER_FILE).read_text())["token"] == token
    check_view(tmp_path, token)


# ----- ocrpipe's JSON files made links or FIFOs ---------------------------------------------------------

def replace_with(path: Path, form: str, target: Path) -> None:
    path.unlink(missing_ok=True)
    if form == "link":
        path.symlink_to(target)
    else:
        os.mkfifo(path)


def without_blocking(step: Callable[[], None], folder: Path, timeout: float = 15.0) -> None:
    """``step`` in a thread: if it waits on a FIFO under ``folder`` past ``timeout``, each FIFO is opened for
    writing (the reader gets an end of file) and the test fails instead of hanging."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 — handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    blocked = thread.is_alive()
    while thread.is_alive():
        for fifo in (p for p in folder.rglob("*") if p.is_fifo()):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(0.5)
    assert not blocked, "a step blocked on a FIFO"
    if errors:
        raise errors[0]


@pytest.mark.skipif(os.name != "posix", reason="FIFOs, and links as an ordinary user: POSIX")
@pytest.mark.parametrize("form", ["fifo", "link"])
@pytest.mark.parametrize("which", ["status.json", "decision.json", "sidecar", "heartbeat", "status.json+sidecar"])
def test_a_json_file_of_ocrpipe_made_a_link_or_a_fifo_is_not_read_and_blocks_nothing(
        make_settings: Callable[..., Settings], which: str, form: str) -> None:
    """A read of status.json, a decision, a sidecar or a heartbeat opened a FIFO put in its place (the
    scheduler waited for ever) or read through a link the file it points to, outside the data folder."""
    settings = make_settings()
    data = settings.data_dir
    outside = sentinel(data)
    target = data.parent / "beside.json"  # what the link points to: not read by snapshot()
    target.write_text('{"keep": true}')
    mtime = target.stat().st_mtime_ns
    os.utime(target, ns=(mtime - 10**11, mtime))  # a read moves the access time (relatime) from now on
    before = snapshot(outside), target.stat().st_atime_ns
    driven, now = first_done_then_held(settings, "copy.pdf")
    folder = held_folder(data)
    if which == "heartbeat":
        (data / "in" / "next.pdf").write_bytes(make_pdf(1, scenario="next"))
        driven.scheduler.tick(now + 1)
        [job_dir] = [p for p in settings.work_dir.iterdir() if p.is_dir()]
        path = job_dir / "prep.heartbeat"
    elif which == "status.json+sidecar":  # the folder names no key: a new copy's hold looks for its folder
        [sidecar] = folder.glob(".*.arrival.json")
        replace_with(sidecar, form, target)
        path = folder / "status.json"
        (data / "in" / "copy2.pdf").write_bytes(make_pdf(2))
    else:
        [sidecar] = folder.glob(".*.arrival.json")
        path = sidecar if which == "sidecar" else folder / which
    replace_with(path, form, target)

    def steps() -> None:
        for n in range(3):
            driven.scheduler.tick(now + 2 + n)
        driven.restart()
        driven.scheduler.tick(now + 10)

    without_blocking(steps, data)
    assert (snapshot(outside), target.stat().st_atime_ns) == before


def test_a_hold_folder_that_is_a_link_is_never_used_nor_read(
        make_settings: Callable[..., Settings]) -> None:
    """A link planted in hold/duplicates/ under the short name of a real key, to a folder whose status.json
    names that key: a new duplicate of that key is held inside hold/, never moved through the link, and
    neither `ocrpipe status` nor the status page counts or reads what it points to."""
    settings = make_settings()
    data = settings.data_dir
    outside = sentinel(data)
    driven, now = first_done_then_held(settings)
    key = finished_jobs(data)[0]["jobKey"]
    (outside / "status.json").write_text(json.dumps({"state": "DUPLICATE_PENDING", "jobKey": key}))
    before = snapshot(outside)
    hold = data / "hold" / "duplicates"
    hold.mkdir(parents=True, exist_ok=True)
    (hold / short_name(key)).symlink_to(outside, target_is_directory=True)
    assert pending_duplicates(hold) == (0, [])
    out = io.StringIO()
    print_status(settings, as_json=True, out=out)
    assert json.loads(out.getvalue())["heldDuplicates"] == 0
    (data / "in" / "copy.pdf").write_bytes(make_pdf(2))
    driven.run_all(now)
    assert snapshot(outside) == before  # nothing moved into it, nothing written there
    # Held in the key's other folder (its full key; the held name shortened to fit the path), not lost.
    held = [p for folder in hold.iterdir() if not folder.is_symlink() for p in folder.iterdir()
            if p.suffix == ".pdf" and not p.name.startswith(".")]
    assert [p.read_bytes() for p in held] == [make_pdf(2)]
