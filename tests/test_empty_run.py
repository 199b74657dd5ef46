"""A scheduled ``ocrpipe run --once`` with nothing to do starts no pool worker, no multiprocessing queue (nor
its resource tracker) and loads none of what only work needs; one with a file still works under spawn, and a
start whose tool versions came from the cache gives the job the key a fresh probe gave it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import drive, make_pdf

from ocrpipe.config import Settings
from ocrpipe.engine.pools import StagePool
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.folders.layout import short_name
from ocrpipe.model import Stage
from ocrpipe.tools.probecache import CACHE_FILE

# What only work needs: the stages' libraries, the pools' machinery, Dask, the hooks' delivery.
WORK_ONLY = ("pikepdf", "PIL", "img2pdf", "weasyprint", "dask", "distributed", "multiprocessing",
             "concurrent.futures.process", "ocrpipe.stages.prep", "ocrpipe.stages.ocr", "ocrpipe.hooks.courier")
HTTP = ("http.server", "ocrpipe.web.server", "ocrpipe.web.api")
# Runs ocrpipe's command line in this process, then reports what it left: children still alive (a pool
# worker, multiprocessing's resource tracker) and the modules it loaded.
PROBE = """
import json, sys
import psutil
from ocrpipe.cli import main
code = main(["run", "--once"])
children = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]
watched = json.loads(sys.argv[1])
print(json.dumps({"code": code, "children": children, "loaded": [m for m in watched if m in sys.modules]}))
"""


def empty_run(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps([*WORK_ONLY, *HTTP])], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return report


def test_an_empty_run_once_starts_no_worker_and_loads_only_what_it_needs(data_dir: Path,
                                                                         fake_env: dict[str, str]) -> None:
    for start in ("cold", "warm"):  # the first start fills the tool cache; the second reads it
        report = empty_run(fake_env)
        assert report == {"code": 0, "children": [], "loaded": []}, start
    assert (data_dir / "index" / CACHE_FILE).is_file()


def test_with_the_http_api_on_only_the_server_is_added(fake_env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = empty_run({**fake_env, "ORCHESTRATOR_PORT": str(port)})
    assert report["code"] == 0 and report["children"] == []
    assert report["loaded"] == list(HTTP)


def run_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "ocrpipe", "run", "--once"], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done


def test_a_file_is_done_under_spawn_and_the_cached_start_gives_it_the_same_key(data_dir: Path,
                                                                               fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    pdf = make_pdf(2)
    (data_dir / "in" / "scan.pdf").write_bytes(pdf)
    run_once(fake_env)  # the first start: every tool asked, the cache written
    assert (data_dir / "out" / "scan.pdf").is_file()
    assert (data_dir / "index" / CACHE_FILE).is_file()

    (data_dir / "in" / "again.pdf").write_bytes(pdf)
    cached = (data_dir / "index" / CACHE_FILE).stat()
    run_once(fake_env)  # from the cache: the same bytes must get the same job key, so it is held as a duplicate
    now = (data_dir / "index" / CACHE_FILE).stat()
    assert (now.st_ino, now.st_mtime_ns) == (cached.st_ino, cached.st_mtime_ns), "no tool was asked again"
    [held] = [p for p in (data_dir / "hold" / "duplicates").iterdir() if p.is_dir()]
    status = json.loads((held / "status.json").read_text(encoding="utf-8"))
    [finished] = [p for p in (data_dir / "archive").iterdir()]
    assert finished.name == "scan.pdf"
    assert held.name == short_name(status["jobKey"]) and status["files"][0]["source"] == "again.pdf"


def test_the_pools_are_made_at_the_first_job_not_before(make_settings: Callable[..., Settings],
                                                        scheduler_for: Callable[..., Scheduler],
                                                        data_dir: Path) -> None:
    scheduler = scheduler_for(make_settings())
    scheduler.warm_at_first_job = True  # as run --once sets it
    (data_dir / "in").mkdir(parents=True)
    for n in range(3):
        scheduler.tick(time.monotonic() + n)
    assert scheduler.idle()
    pools = [pool for pool in scheduler.pools.values() if isinstance(pool, StagePool)]
    assert len(pools) == 3 and not any(pool.started for pool in pools), "no pool made while in/ is empty"

    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    drive(scheduler, until=lambda: bool(scheduler.jobs))
    # Warmed with the first job: the OCR pool too, before any OCR is asked for (as a service's at its start).
    assert scheduler.jobs and all(job.state.value.startswith(("DISCOVERED", "PREP")) for job in scheduler.jobs.values())
    assert [pool.name for pool in pools if pool.started] == [Stage.PREP.value, Stage.OCR.value]
    drive(scheduler, until=lambda: (data_dir / "out" / "scan.pdf").is_file())
