"""INDEX_DIR and WORK_DIR elsewhere (a full run, a restart after a kill, status, the API); the lock and the
staging journal with the data folder; the settings checked at start; doctor's network file system warning."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import http_json, make_pdf
from ocrpipe.cli import main
from ocrpipe.config import Settings, load_settings
from ocrpipe.engine.snapshot import SnapshotHolder
from ocrpipe.errors import AlreadyRunningError, ConfigError
from ocrpipe.folders.places import check_places
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.metrics import make_empty_metrics, write_metrics
from ocrpipe.ops import doctor as doctor_module
from ocrpipe.ops import netfs
from ocrpipe.runner import LOCK_FILE, take_instance_lock
from ocrpipe.web.api import Api
from ocrpipe.web.server import serve


@pytest.fixture
def elsewhere(tmp_path: Path, fake_env: dict[str, str]) -> dict[str, str]:
    return {**fake_env, "INDEX_DIR": str(tmp_path / "local" / "index"), "WORK_DIR": str(tmp_path / "local" / "work")}


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ocrpipe", "run", *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGKILL")
def test_index_and_work_elsewhere_a_kill_a_restart_status_and_the_api(
        elsewhere: dict[str, str], data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(elsewhere)
    gate = tmp_path / "release-ocr"
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "first.pdf").write_bytes(make_pdf(2, scenario="first"))
    proc = start({**elsewhere, "FAKE_OCR_WAIT_FOR": str(gate)})
    try:  # killed while OCR runs: the job's folder is in WORK_DIR
        deadline = time.monotonic() + 60
        while not any(settings.work_dir.glob("*/ocr.heartbeat")):
            assert time.monotonic() < deadline and proc.poll() is None, "OCR never started"
            time.sleep(0.05)
        assert (data_dir / "index" / LOCK_FILE).exists()  # the lock follows the data folder
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=30)
    gate.touch()
    (data_dir / "in" / "second.pdf").write_bytes(make_pdf(1, scenario="second"))
    again = start(elsewhere, "--once")
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert sorted(p.name for p in (data_dir / "out").iterdir()) == ["first.pdf", "second.pdf"]
    assert [p.name for p in settings.work_dir.iterdir() if not p.name.startswith(".")] == []
    assert (settings.index_dir / "ocrpipe.sqlite").is_file() and (settings.index_dir / "metrics.json").is_file()
    assert sorted(p.name for p in (data_dir / "index").iterdir()) == [LOCK_FILE, "staged"]
    with JobIndex(settings.index_dir, readonly=True) as index:
        done = list(index)
    assert sorted(j["source"] for j in done) == ["first.pdf", "second.pdf"]

    for name, value in elsewhere.items():
        monkeypatch.setenv(name, value)
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["counts"] == {"DONE": 2} and status["metricsUpdatedAt"]

    api = Api(settings, SnapshotHolder(), tools={})
    with serve(api, "127.0.0.1", 0) as service:
        base = service.url.rstrip("/")
        assert http_json(f"{base}/metrics")[1]["jobs_done"] == 2
        code, record = http_json(f"{base}/jobs/{done[0]['jobKey']}")
        assert code == 200 and record["source"] == done[0]["source"]


def test_a_second_instance_is_refused_whatever_its_index(make_settings: Callable[..., Settings],
                                                         tmp_path: Path) -> None:
    """Two machines, each with its index on a local disk, share one data folder: the lock is the data folder's."""
    first = take_instance_lock(make_settings(INDEX_DIR=str(tmp_path / "a")))
    try:
        with pytest.raises(AlreadyRunningError):
            take_instance_lock(make_settings(INDEX_DIR=str(tmp_path / "b")))
        with pytest.raises(AlreadyRunningError):  # and an older layout's (or version's) ocrpipe
            take_instance_lock(make_settings())
    finally:
        first.release()


@pytest.mark.parametrize("name", ["INDEX_DIR", "WORK_DIR", "RETAIN_TRASH_DIR"])
def test_a_folder_inside_in_is_refused(make_settings: Callable[..., Settings], data_dir: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}=.*must not be inside IN_DIR"):
        make_settings(**{name: str(data_dir / "in" / "x")})


@pytest.mark.parametrize(("name", "value"), [("RETAIN_ARCHIVE_DAYS", "0"), ("RETAIN_ERROR_DAYS", "ten"),
                                             ("RETAIN_INDEX_DAYS", "-3")])
def test_bad_days_name_the_variable(make_settings: Callable[..., Settings], name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}='?{value}'? is not valid: expected a whole number >= 1"):
        make_settings(**{name: value})


def test_trash_inside_archive_is_refused(make_settings: Callable[..., Settings], data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="RETAIN_TRASH_DIR=.*ARCHIVE_DIR"):
        make_settings(RETAIN_TRASH_DIR=str(data_dir / "archive" / "trash"))


def test_work_dir_outside_the_data_folder_is_refused_with_a_cluster(make_settings: Callable[..., Settings],
                                                                    tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WORK_DIR=.*Dask executor"):
        make_settings(WORK_DIR=str(tmp_path / "w"), OCR_EXECUTOR="inproc://x")
    assert make_settings(INDEX_DIR=str(tmp_path / "i"), OCR_EXECUTOR="inproc://x").index_dir == tmp_path / "i"


def test_a_folder_that_cannot_be_made_stops_the_start(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = make_settings(INDEX_DIR=str(blocker / "index"))
    with pytest.raises(ConfigError, match="INDEX_DIR=.*cannot be made or written to"):
        check_places(settings)
    check_places(make_settings(INDEX_DIR=str(tmp_path / "new" / "index")))
    assert (tmp_path / "new" / "index").is_dir()


def test_defaults_are_inside_the_data_folder(make_settings: Callable[..., Settings], data_dir: Path) -> None:
    settings = make_settings()
    assert (settings.index_dir, settings.work_dir, settings.state_dir) == (
        data_dir.resolve() / "index", data_dir.resolve() / "work", data_dir.resolve() / "index")
    assert not settings.retention_on


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/scans rw,relatime shared:20 - cifs //nas/scans rw,vers=3.1.1
41 40 0:36 / /mnt/scans/local\\040disk rw - ext4 /dev/sdb1 rw
42 22 0:37 / /srv/nfs rw - nfs4 server:/export rw
43 22 0:38 / /home/me/remote rw - fuse.sshfs me@host:/ rw
"""


@pytest.mark.parametrize(("path", "kind"), [
    ("/var/lib/ocrpipe", "ext4"), ("/mnt/scans/data/index", "cifs"), ("/mnt/scans/local disk/index", "ext4"),
    ("/srv/nfs", "nfs4"), ("/srv/nfsother", "ext4"), ("/home/me/remote/x", "fuse.sshfs"),
])
def test_linux_mount_table_gives_the_file_system_of_a_path(path: str, kind: str) -> None:
    assert netfs.linux_fs_type(path, MOUNTINFO) == kind


def test_windows_drive_type_twin() -> None:
    drives = {"C:\\": 3, "Z:\\": netfs.DRIVE_REMOTE}
    assert netfs.windows_drive_remote("Z:\\scans\\index", drives.__getitem__)
    assert not netfs.windows_drive_remote("C:\\ocrpipe\\index", drives.__getitem__)
    assert netfs.windows_drive_remote("\\\\nas\\scans\\index", drives.__getitem__)


def test_doctor_warns_when_the_index_is_on_a_network_file_system(make_settings: Callable[..., Settings],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_module, "network_kind", lambda folder: "cifs")
    out = io.StringIO()
    assert doctor_module.index_warning(make_settings(), out)
    assert "on a network file system (cifs)" in out.getvalue() and "INDEX_DIR" in out.getvalue()
    monkeypatch.setattr(doctor_module, "network_kind", lambda folder: None)
    assert not doctor_module.index_warning(make_settings(), io.StringIO())


def test_network_kind_reads_this_machines_mount_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if sys.platform == "win32":
        pytest.skip("reads /proc")
    table = tmp_path / "mountinfo"
    table.write_text(f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n23 22 0:40 / {tmp_path} rw - nfs srv:/x rw\n")
    monkeypatch.setattr(netfs, "MOUNTINFO", table)
    assert netfs.network_kind(tmp_path / "not" / "made" / "yet") == "nfs"


def test_write_metrics_takes_a_string(tmp_path: Path) -> None:
    path = write_metrics(make_empty_metrics(), str(tmp_path / "index"))
    assert path == tmp_path / "index" / "metrics.json" and json.loads(path.read_text())["jobs_done"] == 0
