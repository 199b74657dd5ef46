"""The stages on a Dask cluster: a LocalCluster of 2 worker processes, fake tools launched
through the tool commands, the same scheduler as with local pools."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest

from conftest import TEST_PROFILE, drive, finished_jobs, make_pdf, read_calls
from ocrpipe.cli import main
from ocrpipe.cluster.client import dask_pools
from ocrpipe.config import Settings
from ocrpipe.folders.heartbeat import heartbeat_path, read_heartbeat
from ocrpipe.model import Stage
from ocrpipe.engine.scheduler import Scheduler

import distributed  # the test extra installs it: CI runs these tests, never skips them


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes of one thread each, as two small machines; shared by this module's tests."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as local:
        yield local


@pytest.fixture
def dask_scheduler_for(cluster: Any) -> Iterator[Callable[..., Scheduler]]:
    made: list[tuple[Scheduler, list[Any]]] = []

    def make(settings: Settings) -> Scheduler:
        pools, clusters = dask_pools(settings)
        scheduler = Scheduler(settings, profile=TEST_PROFILE, executor_factory=_no_local_pool, stage_pools=pools)
        made.append((scheduler, clusters))
        return scheduler

    yield make
    for scheduler, clusters in made:
        scheduler.close(wait=True)
        for one in clusters:
            one.close()


@pytest.fixture
def own_logging() -> Iterator[None]:
    """`main` installs ocrpipe's log handlers on the root logger: put the test's back, so the cluster's
    own threads (its scheduler runs in this process) never write to a closed capture afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def _no_local_pool(workers: int) -> Any:
    raise AssertionError("a stage ran on a local pool instead of the cluster")


def on_cluster(cluster: Any) -> dict[str, str]:
    return {"OCR_EXECUTOR": cluster.scheduler_address, "PREP_EXECUTOR": cluster.scheduler_address}


def drop_mixed(in_dir: Path) -> None:
    """Good files (one of two pages), a damaged PDF, a tool refusing its input, a crash retried."""
    in_dir.mkdir(parents=True)
    (in_dir / "a.pdf").write_bytes(make_pdf(1, scenario="ok-a"))
    (in_dir / "b.pdf").write_bytes(make_pdf(2, scenario="ok-b"))
    (in_dir / "c.pdf").write_bytes(make_pdf(1, scenario="transient-1"))
    (in_dir / "refused.pdf").write_bytes(make_pdf(1, scenario="exit-2"))
    (in_dir / "damaged.pdf").write_bytes(b"%PDF-1.4 this is not a PDF at all")


def ending(data_dir: Path) -> dict[str, Any]:
    """What a run leaves: outputs, archived originals, and each file's end (state, reason code and reason)."""
    return {
        "out": sorted(p.name for p in (data_dir / "out").rglob("*") if p.is_file()),
        "archive": sorted(p.name for p in (data_dir / "archive").rglob("*") if p.is_file()),
        "jobs": sorted((j["source"], j["state"], j.get("reasonCode"), j.get("reason")) for j in finished_jobs(data_dir)),
        "work": sorted(p.name for p in (data_dir / "work").iterdir()),
    }


def test_a_mixed_run_ends_on_the_cluster_exactly_as_with_local_pools(
        tmp_path: Path, cluster: Any, make_settings: Callable[..., Settings],
        scheduler_for: Callable[..., Scheduler], dask_scheduler_for: Callable[..., Scheduler]) -> None:
    ends = {}
    for name, make, extra in (("local", scheduler_for, {}), ("dask", dask_scheduler_for, on_cluster(cluster))):
        data_dir = tmp_path / name
        drop_mixed(data_dir / "in")
        settings = make_settings(DATA_DIR=str(data_dir), OCR_BATCH_MAX_PAGES="1", **extra)
        drive(make(settings), timeout=120)
        ends[name] = ending(data_dir)
    assert ends["dask"] == ends["local"]
    assert ends["local"]["out"] == ["a.pdf", "b.pdf", "c.pdf"]
    assert [j[0] for j in ends["local"]["jobs"] if j[1] == "ERROR"] == ["damaged.pdf", "refused.pdf"]


def only_job_dir(data_dir: Path) -> Path:
    [job_dir] = [p for p in (data_dir / "work").iterdir() if p.is_dir() and not p.name.startswith(".")]
    return job_dir


def test_a_killed_worker_process_has_its_stage_retried_elsewhere_and_the_job_ends_once(
        data_dir: Path, tmp_path: Path, tool_log: Path, cluster: Any, make_settings: Callable[..., Settings],
        dask_scheduler_for: Callable[..., Scheduler]) -> None:
    gate = tmp_path / "let-ocr-finish"
    settings = make_settings(FAKE_OCR_WAIT_FOR=str(gate), **on_cluster(cluster))
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "doc.pdf").write_bytes(make_pdf(2))
    scheduler = dask_scheduler_for(settings)
    drive(scheduler, until=lambda: any(c["tool"] == "ocrmypdf" for c in read_calls(tool_log)))
    job_dir = only_job_dir(data_dir)
    beat = read_heartbeat(heartbeat_path(job_dir, Stage.OCR))
    assert beat is not None and beat["attempt"] == 1
    worker = psutil.Process(beat["worker"]["pid"])
    assert worker.pid in {p.pid for p in psutil.Process().children(recursive=True)}  # a cluster worker's
    tools = [psutil.Process(t["pid"]) for t in beat["tools"]]
    worker.send_signal(signal.SIGKILL)  # the machine's worker dies mid-OCR
    worker.wait(30)
    for tool in tools:  # a plain Dask worker leaves its tools behind (`ocrpipe worker` kills them itself)
        tool.kill()
    gate.touch()
    drive(scheduler, timeout=120)

    [job] = finished_jobs(data_dir)
    assert job["state"] == "DONE" and job["attempts"]["OCR"] == 2
    assert [p.name for p in (data_dir / "out").iterdir()] == ["doc.pdf"]
    assert list((data_dir / "archive").iterdir()) and not list((data_dir / "error").glob("*"))
    ocr_starts = [c for c in read_calls(tool_log) if c["tool"] == "ocrmypdf" and c["event"] == "start"]
    assert len(ocr_starts) == 2  # the dead worker's attempt and one retry: Dask's own re-run was refused


def test_an_unreachable_scheduler_stops_the_start_with_exit_3_naming_it(
        fake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own_logging: None) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    for name, value in {**fake_env, "OCR_EXECUTOR": address, "EXECUTOR_CONNECT_SECONDS": "0.5"}.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "--once"]) == 3
    err = capsys.readouterr().err
    assert f"the Dask scheduler at {address} does not answer" in err and "Traceback" not in err


def test_without_dask_installed_the_message_names_the_extra(
        fake_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own_logging: None) -> None:
    for name, value in {**fake_env, "OCR_EXECUTOR": "tcp://127.0.0.1:8786"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    assert main(["run", "--once"]) == 3
    assert "pip install 'ocrpipe[dask]'" in capsys.readouterr().err


def test_a_worker_sees_the_data_folder_through_its_own_mapping(
        data_dir: Path, tmp_path: Path, tool_log: Path, cluster: Any, make_settings: Callable[..., Settings],
        dask_scheduler_for: Callable[..., Scheduler], caplog: pytest.LogCaptureFixture) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "doc.pdf").write_bytes(make_pdf(1))
    wrong = tmp_path / "not-mounted"
    wrong.mkdir()
    # First a worker view that is not the shared folder: refused, not counted, nothing lost.
    scheduler = dask_scheduler_for(make_settings(WORKER_DATA_DIR=str(wrong), **on_cluster(cluster)))
    drive(scheduler, until=lambda: "finds no .ocrpipe-cluster.json" in caplog.text)
    assert f"in {wrong}: is the shared data folder mounted there" in caplog.text
    assert not read_calls(tool_log) and not list((data_dir / "error").glob("*"))
    scheduler.close(wait=True)
    # Then the workers' own path to it (a mount elsewhere, here a link): the tools see their paths only.
    view = tmp_path / "mnt" / "scans"
    view.parent.mkdir()
    view.symlink_to(data_dir, target_is_directory=True)
    drive(dask_scheduler_for(make_settings(WORKER_DATA_DIR=str(view), **on_cluster(cluster))), timeout=120)
    [job] = finished_jobs(data_dir)
    assert job["state"] == "DONE" and [p.name for p in (data_dir / "out").iterdir()] == ["doc.pdf"]
    inputs = [c["input"] for c in read_calls(tool_log) if c["tool"] == "ocrmypdf"]
    assert inputs and all(path.startswith(str(view) + os.sep) for path in inputs)


def test_a_stalled_stage_on_the_cluster_is_stopped_by_its_own_worker_and_retried(
        data_dir: Path, tmp_path: Path, tool_log: Path, cluster: Any, make_settings: Callable[..., Settings],
        dask_scheduler_for: Callable[..., Scheduler]) -> None:
    gate = tmp_path / "let-ocr-finish"
    # Heartbeats rare enough that the test decides when one is stale; cancel requests are still read each second.
    settings = make_settings(FAKE_OCR_WAIT_FOR=str(gate), HEARTBEAT_SECONDS="600", JOB_TIMEOUT_SECONDS="30",
                             **on_cluster(cluster))
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "doc.pdf").write_bytes(make_pdf(1))
    scheduler = dask_scheduler_for(settings)
    drive(scheduler, until=lambda: any(c["tool"] == "ocrmypdf" for c in read_calls(tool_log)))
    job_dir = only_job_dir(data_dir)
    beat = read_heartbeat(heartbeat_path(job_dir, Stage.OCR))
    assert beat is not None and beat["tools"]
    tools = [psutil.Process(t["pid"]) for t in beat["tools"]]
    hb = heartbeat_path(job_dir, Stage.OCR)
    os.utime(hb, (time.time() - 1000, time.time() - 1000))  # the worker went quiet
    scheduler.tick(time.monotonic())
    assert (job_dir / "ocr.cancel").is_file()
    _, alive = psutil.wait_procs(tools, timeout=60)  # killed by the worker's heartbeat thread, not by us
    assert alive == []
    gate.touch()
    drive(scheduler, timeout=120)
    [job] = finished_jobs(data_dir)
    assert job["state"] == "DONE" and job["attempts"]["OCR"] == 2
    assert [p.name for p in (data_dir / "out").iterdir()] == ["doc.pdf"]


def test_a_worker_whose_data_folder_lacks_the_marker_refuses_to_start(
        fake_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], own_logging: None) -> None:
    for name, value in fake_env.items():
        monkeypatch.setenv(name, value)
    wrong = tmp_path / "not-the-share"
    wrong.mkdir()
    assert main(["worker", "--scheduler", "tcp://127.0.0.1:8786", "--data", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert f"--data {wrong} has no .ocrpipe-cluster.json" in err and "Traceback" not in err
