"""Shared fixtures: generated inputs, fake tool commands, small PDFs, a settings builder, a scheduler driver;
the guard against reading anything beside the repository, and the opt-in ``corpus`` marker."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pikepdf
import pytest

import guard
from inputs import InputSet
from ocrpipe.config import Settings, load_settings
from ocrpipe.folders.fsutil import tree_bytes
from ocrpipe.folders.layout import short_name
from ocrpipe.model import JobState
from ocrpipe.engine.pools import process_pool_factory
from ocrpipe.engine.scheduler import Scheduler
from ocrpipe.folders.store import new_state_record, transition, write_new_state

FAKE_TOOL = Path(__file__).parent / "fakes" / "fake_tool.py"
CORPUS_VARIABLE = "OCRPIPE_CORPUS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"corpus: reads the real files of ${CORPUS_VARIABLE}; collected only when "
                                       "it is set")
    allowed = [Path(os.environ[CORPUS_VARIABLE])] if os.environ.get(CORPUS_VARIABLE) else []
    guard.install_guard(allowed)


@pytest.fixture(scope="session", autouse=True)
def _temp_inside_basetemp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Temp files of the test process go under pytest's temp folder, which the guard allows: a clone in
    /tmp itself would otherwise have every temp file beside it."""
    base = tmp_path_factory.getbasetemp()
    assert guard.GUARD is not None
    guard.GUARD.allow(base)
    (base / "tmp").mkdir(exist_ok=True)
    saved, tempfile.tempdir = tempfile.tempdir, str(base / "tmp")
    yield
    tempfile.tempdir = saved


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A read beside the repository fails the run even when the test that did it caught the error."""
    reached = guard.GUARD.reached if guard.GUARD else []
    if reached:
        print("\nread beside the repository (a fresh clone has nothing there):\n  " + "\n  ".join(reached),
              file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ``OCRPIPE_CORPUS``, corpus tests are deselected, not skipped: everything collected runs."""
    if os.environ.get(CORPUS_VARIABLE):
        return
    deselected = [item for item in items if item.get_closest_marker("corpus")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("corpus")]


def fake_command(tool: str) -> str:
    # Quoted for shlex, so paths with spaces survive; the config splits it back.
    return f'"{sys.executable}" -S "{FAKE_TOOL}" {tool}'


def make_pdf(pages: int = 1, scenario: str | None = None) -> bytes:
    """A small valid PDF; ``scenario`` is written in clear into a page so the fake tools can read it."""
    pdf = pikepdf.new()
    for n in range(pages):
        pdf.add_blank_page(page_size=(200, 200))
        text = f"% page {n + 1} {'FAKE-SCENARIO:' + scenario if scenario else ''}\n".encode()
        pdf.pages[n].Contents = pdf.make_stream(text)
    buffer = io.BytesIO()
    pdf.save(buffer, compress_streams=False, static_id=True)  # same arguments, same bytes
    return buffer.getvalue()


def finished_jobs(data_dir: Path) -> list[dict[str, Any]]:
    """Every job recorded in the data folder's job index, oldest first."""
    from ocrpipe.index.jobindex import JobIndex

    with JobIndex(data_dir / "index", readonly=True) as index:
        return list(index)


folder_usage = tree_bytes  # the tests' name for it: disk use of a folder, sampled while a run goes on


@pytest.fixture(scope="session")
def made_inputs(tmp_path_factory: pytest.TempPathFactory) -> InputSet:
    """The generated test inputs (tests/inputs.py), each built once per session when first asked for."""
    return InputSet(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The opt-in corpus, for tests marked ``corpus`` (collected only when ``OCRPIPE_CORPUS`` is set)."""
    folder = Path(os.environ.get(CORPUS_VARIABLE, ""))
    if not (folder / "MANIFEST.tsv").is_file():
        pytest.fail(f"{CORPUS_VARIABLE}={folder} is not a corpus folder: it holds no MANIFEST.tsv")
    return folder


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def tool_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fakes' call log; the variable is inherited by spawned workers and their tools."""
    path = tmp_path / "tool-calls.jsonl"
    monkeypatch.setenv("FAKE_TOOL_LOG", str(path))
    return path


def read_calls(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def fake_env(data_dir: Path, tool_log: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "SEVEN_ZIP": fake_command("7z"),
        "OCRMYPDF": fake_command("ocrmypdf"),
        "TESSERACT": fake_command("tesseract"),
        "GHOSTSCRIPT": fake_command("gs"),
        "STABLE_SECONDS": "0",
        "POLL_SECONDS": "0.1",
        "RETRY_BACKOFF_SECONDS": "0",
        "OCR_LANG": "eng",
        "ORCHESTRATOR_PORT": "0",  # no HTTP API unless a test asks: 8080 may be taken (tests run side by side)
    }


@pytest.fixture
def make_settings(fake_env: dict[str, str]) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        return load_settings({**fake_env, **overrides})

    return make


TEST_PROFILE = {"ocr_lang": "eng", "ocrmypdf_args": [], "tool_versions": {"fake": "1"}, "image_dpi": 300}


@pytest.fixture
def scheduler_for() -> Iterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(settings: Settings, **kwargs: Any) -> Scheduler:
        scheduler = Scheduler(settings, profile=TEST_PROFILE,
                              executor_factory=process_pool_factory(None, "WARNING"), **kwargs)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.close(wait=True)


def drive(scheduler: Scheduler, *, until: Callable[[], bool] | None = None, timeout: float = 60) -> None:
    """Tick with the real clock until ``until`` holds (default: nothing left to do)."""
    until = until or scheduler.idle
    deadline = time.monotonic() + timeout
    scheduler.tick(time.monotonic())
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError(f"scheduler did not finish in {timeout}s; jobs: "
                                 f"{[(j.key[:8], j.state.value) for j in scheduler.jobs.values()]}")
        scheduler.wait(0.05)
        scheduler.tick(time.monotonic())


def http_request(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; 4xx and 5xx are answers too, not exceptions."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def http_json(url: str, method: str = "GET") -> tuple[int, Any]:
    status, headers, body = http_request(url, method)
    assert headers["content-type"] == "application/json; charset=utf-8"
    return status, json.loads(body)


def made_job_key(name: str) -> str:
    """A job key shaped as ocrpipe makes them (a restart leaves a folder with another one alone)."""
    return f"{hashlib.sha256(name.encode()).hexdigest()}__{hashlib.sha256(b'profile').hexdigest()}"


def job_ready_for_ocr(work: Path, name: str, raw: bytes) -> Path:
    """A job folder in PREP_DONE, as PREP leaves it: ``raw.pdf`` and the original in ``input/``."""
    key = made_job_key(name)
    job_dir = work / short_name(key)
    file_hash, _, profile_hash = key.partition("__")
    record = new_state_record(job_key=key, run_id="run", file_hash=file_hash, profile_hash=profile_hash,
                              source_name=f"{name}.pdf", source_relpath=f"{name}.pdf", size=1)
    write_new_state(job_dir, record)
    for state in (JobState.PREP_SUBMITTED, JobState.PREP_RUNNING, JobState.PREP_DONE):
        transition(job_dir, state, attempts={"PREP": 1, "OCR": 0})
    (job_dir / "raw.pdf").write_bytes(raw)
    (job_dir / "input").mkdir()
    (job_dir / record["input"]).write_bytes(raw)
    return job_dir
