"""The HTTP API over a published snapshot and the job index: routes, errors, paging, health, safety."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest

from conftest import http_json, http_request, make_pdf
from ocrpipe.web.api import Api
from ocrpipe.config import Settings
from ocrpipe.web.server import HttpService, serve
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.index.metrics import make_empty_metrics
from ocrpipe.engine.snapshot import JobView, PoolView, Snapshot, SnapshotHolder

KEY = "a" * 64 + "__" + "b" * 64
MB = 2**20


def key(n: int) -> str:
    return f"{n:064x}__{'c' * 64}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publish(holder: SnapshotHolder, *, tick: float = 1000.0, jobs: tuple[JobView, ...] = (),
            **metrics: int) -> Snapshot:
    snapshot = Snapshot(tickMonotonic=tick, tickAt="2026-12-01T10:00:00.000+00:00",
                        metrics=MappingProxyType({**make_empty_metrics(), **metrics}), jobs=jobs, waitingInInbox=0,
                        heldDuplicates=0, pools=MappingProxyType({"PREP": PoolView(1, 0), "OCR": PoolView(2, 1)}),
                        admitting=True)
    holder._latest = snapshot  # what publish() stores, without a scheduler to build it from
    return snapshot


def job_view(job_key: str, name: str, state: str = "OCR_RUNNING") -> JobView:
    return JobView(jobKey=job_key, state=state, stage="OCR", attempt=1, fileName=name,
                   updatedAt="2026-12-01T10:00:00.000+00:00", startedAt="2026-12-01T10:00:00.000+00:00",
                   elapsedSeconds=3.0, batchSize=1)


def write_index(index_dir: Path, entries: list[dict[str, Any]]) -> None:
    with JobIndex(index_dir) as index:
        index.record_many(entries)


def finished(n: int, state: str = "DONE") -> dict[str, Any]:
    return {"jobKey": key(n), "runId": f"run{n}", "state": state, "source": f"scan{n}.pdf",
            "output": f"/out/scan{n}.pdf" if state == "DONE" else None, "pages": 2,
            "attempts": {"PREP": 1, "OCR": 1 if state == "DONE" else 0},
            "reason": "the file is empty" if state == "ERROR" else None,
            "createdAt": "2026-12-01T09:00:00.000+00:00", "finishedAt": f"2026-12-01T09:{n % 60:02d}:00.000+00:00"}


class Reads(list[str]):
    """Paths opened (files, folders, databases) by any thread while ``listening`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = threading.Event()


def record_reads() -> Reads:
    reads = Reads()

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if reads.listening.is_set() and event in ("open", "os.listdir", "os.scandir", "sqlite3.connect"):
            path = str(args[0])
            reads.append(url2pathname(urlsplit(path).path) if path.startswith("file:") else path)

    sys.addaudithook(audit)  # hooks cannot be removed: this one records only while listening
    reads.listening.set()
    return reads


class Served:
    def __init__(self, settings: Settings, holder: SnapshotHolder, clock: FakeClock, free: list[int],
                 service: HttpService) -> None:
        self.settings, self.holder, self.clock, self.free, self.service = settings, holder, clock, free, service

    def url(self, path: str) -> str:
        return self.service.url.rstrip("/") + path


@pytest.fixture
def served(make_settings: Callable[..., Settings]) -> Iterator[Served]:
    settings = make_settings(MIN_FREE_MB="100", HEALTH_STALE_SECONDS="30")
    for folder in (settings.work_dir, settings.index_dir):
        folder.mkdir(parents=True)
    holder, clock, free = SnapshotHolder(), FakeClock(), [10_000 * MB]
    api = Api(settings, holder, tools={"ocrmypdf": "99.1.0"}, disk_free=lambda path: free[0], clock=clock)
    with serve(api, "127.0.0.1", 0) as service:
        yield Served(settings, holder, clock, free, service)


def test_metrics_has_the_counters(served: Served) -> None:
    publish(served.holder, jobs_done=7, jobs_running=6)
    status, body = http_json(served.url("/metrics"))
    assert status == 200 and body["jobs_done"] == 7 and body["jobs_running"] == 6 and "updatedAt" in body


def test_metrics_before_the_first_tick_are_what_the_last_run_left(served: Served) -> None:
    (served.settings.index_dir / "metrics.json").write_text(json.dumps({**make_empty_metrics(), "jobs_done": 3}))
    status, body = http_json(served.url("/metrics"))
    assert status == 200 and body["jobs_done"] == 3


def test_unknown_job_is_404_json(served: Served) -> None:
    publish(served.holder)
    status, body = http_json(served.url(f"/jobs/{KEY}"))
    assert status == 404 and KEY in body["error"]


def test_job_in_flight_is_its_state_json_and_a_finished_one_its_index_record(served: Served) -> None:
    live = served.settings.work_dir / KEY
    live.mkdir()
    (live / "state.json").write_text(json.dumps({"jobKey": KEY, "state": "OCR_RUNNING", "history": []}))
    publish(served.holder, jobs=(job_view(KEY, "scan.pdf"),))
    write_index(served.settings.index_dir, [finished(1, "ERROR")])
    assert http_json(served.url(f"/jobs/{KEY}")) == (200, {"jobKey": KEY, "state": "OCR_RUNNING", "history": []})
    status, body = http_json(served.url(f"/jobs/{key(1)}"))
    assert status == 200 and body["state"] == "ERROR" and body["reason"] == "the file is empty"


@pytest.mark.parametrize("bad", [
    "..", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "/etc/passwd", "a%00b", f"{KEY}%00", f"{KEY}/..",
    f"..%2F{KEY}", f"{KEY.upper()}", "C:%5CWindows%5Cwin.ini", "%2e%2e", f"{KEY}%2F..%2F..%2Findex",
])
def test_malformed_keys_are_400_and_nothing_outside_work_and_index_is_read(served: Served, bad: str) -> None:
    opened = record_reads()
    try:
        status, body = http_json(served.url(f"/jobs/{bad}"))
    finally:
        opened.listening.clear()
    assert status == 400 and "not a job key" in body["error"]
    allowed = (str(served.settings.work_dir), str(served.settings.index_dir))
    assert [p for p in opened if not p.startswith(allowed)] == []


def test_the_audit_hook_sees_what_a_request_reads(served: Served) -> None:
    """The check above is not blind: a well-formed key's request is seen reading the index."""
    write_index(served.settings.index_dir, [finished(1)])
    opened = record_reads()
    assert http_json(served.url(f"/jobs/{key(1)}"))[0] == 200
    opened.listening.clear()
    assert any(p.startswith(str(served.settings.index_dir)) for p in opened)


def test_other_methods_are_405_and_unknown_paths_404(served: Served) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
        status, headers, body = http_request(served.url("/jobs"), method)
        assert status == 405 and headers["allow"] == "GET, HEAD", method
        assert json.loads(body)["status"] == 405
    status, body = http_json(served.url("/nothing/here"))
    assert status == 404 and "/nothing/here" in body["error"]
    status, headers, body = http_request(served.url("/metrics"), "HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_health_turns_503_when_ticks_stop_and_when_the_disk_fills(served: Served) -> None:
    publish(served.holder, tick=1000.0)
    status, body = http_json(served.url("/health"))
    assert status == 200 and body["status"] == "ok"
    assert set(body["checks"]) == {"scheduler", "disk", "pools", "tools"}
    assert body["checks"]["pools"]["OCR"] == {"workers": 2, "busy": 1}
    served.clock.now = 1031.0  # 31 s without a tick, HEALTH_STALE_SECONDS=30
    status, body = http_json(served.url("/health"))
    assert status == 503 and body["failing"] == ["scheduler"] and body["checks"]["scheduler"]["ageSeconds"] == 31
    served.clock.now = 1001.0
    served.free[0] = 99 * MB  # MIN_FREE_MB=100
    status, body = http_json(served.url("/health"))
    assert status == 503 and body["failing"] == ["disk"] and body["checks"]["disk"]["freeMb"] == 99


def test_jobs_lists_in_flight_then_finished_newest_first_in_pages(served: Served) -> None:
    publish(served.holder, jobs=(job_view(key(900), "live2.pdf"), job_view(key(901), "live1.pdf", "PREP_DONE")))
    write_index(served.settings.index_dir, [finished(n, "ERROR" if n % 5 == 0 else "DONE") for n in range(1, 11)])
    status, body = http_json(served.url("/jobs?limit=4"))
    assert status == 200 and body["inFlight"] == 2 and body["nextOffset"] == 4
    assert [j["fileName"] for j in body["jobs"]] == ["live2.pdf", "live1.pdf", "scan10.pdf", "scan9.pdf"]
    assert set(body["jobs"][2]) >= {"jobKey", "state", "stage", "attempt", "fileName", "updatedAt"}
    names = []
    offset: int | None = 0
    while offset is not None:
        status, body = http_json(served.url(f"/jobs?limit=5&offset={offset}"))
        names += [j["fileName"] for j in body["jobs"]]
        offset = body["nextOffset"]
    assert names == ["live2.pdf", "live1.pdf"] + [f"scan{n}.pdf" for n in range(10, 0, -1)]
    status, body = http_json(served.url("/jobs?state=ERROR"))
    assert [j["fileName"] for j in body["jobs"]] == ["scan10.pdf", "scan5.pdf"]
    assert body["jobs"][0]["stage"] == "PREP" and body["jobs"][0]["updatedAt"] == "2026-12-01T09:10:00.000+00:00"
    status, body = http_json(served.url("/jobs?state=PREP_DONE"))
    assert [j["fileName"] for j in body["jobs"]] == ["live1.pdf"]


def test_jobs_pages_through_100000_finished_jobs(served: Served) -> None:
    """Every job once, newest first, following nextBefore; how fast is the benchmark's business."""
    count = 100_000
    with JobIndex(served.settings.index_dir) as index:
        index.record_many({"jobKey": key(n), "runId": "r", "state": "ERROR" if n % 100 == 0 else "DONE",
                           "source": f"s{n}.pdf", "finishedAt": "2026-12-01T09:00:00.000+00:00"}
                          for n in range(count))
    publish(served.holder, jobs=(job_view(KEY, "live.pdf"),))
    seen: list[str] = []
    query = "limit=1000"
    while query:
        status, body = http_json(served.url(f"/jobs?{query}"))
        assert status == 200 and len(body["jobs"]) <= 1000
        seen += [j["jobKey"] for j in body["jobs"]]
        query = f"limit=1000&before={body['nextBefore']}" if body["nextBefore"] else ""
    assert seen == [KEY] + [key(n) for n in range(count - 1, -1, -1)]
    status, body = http_json(served.url("/jobs?offset=99995&limit=10"))  # a jump by offset, in flight counted
    assert [j["jobKey"] for j in body["jobs"]] == [key(n) for n in range(5, -1, -1)] and body["nextOffset"] is None
    status, body = http_json(served.url("/jobs?state=ERROR&limit=1000"))
    assert len(body["jobs"]) == 1000 and body["nextBefore"] is None and body["jobs"][-1]["jobKey"] == key(0)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=ten", "offset=-1", "state=LOST", "before=0"])
def test_bad_jobs_queries_are_400(served: Served, query: str) -> None:
    status, body = http_json(served.url(f"/jobs?{query}"))
    assert status == 400 and query.split("=")[0] in body["error"]


def test_a_fault_is_a_500_with_json_and_no_traceback(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    served.holder._latest = "not a snapshot"  # type: ignore[assignment]  # a bug somewhere upstream
    status, headers, body = http_request(served.url("/jobs"))
    assert status == 500 and json.loads(body) == {"error": "internal error; the details are in ocrpipe's log",
                                                  "status": 500}
    assert b"Traceback" not in body
    assert any(r.exc_info for r in caplog.records if r.name == "ocrpipe.http")


def test_status_page_is_html_without_external_assets(served: Served) -> None:
    publish(served.holder, jobs=(job_view(KEY, "<b>scan</b>.pdf"),), jobs_done=4)
    write_index(served.settings.index_dir, [finished(5, "ERROR")])
    status, headers, body = http_request(served.url("/"))
    page = body.decode("utf-8")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "&lt;b&gt;scan&lt;/b&gt;.pdf" in page and "<b>scan</b>" not in page
    assert "the file is empty" in page and "scan5.pdf" in page and "<svg" in page
    assert 'http-equiv="refresh"' in page and "http://" not in page and "https://" not in page


# ----- `ocrpipe run` serves ---------------------------------------------------------------------------


def run_once(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ocrpipe", "run", "--once"], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_port_in_use_costs_one_warning_and_the_pipeline_runs_on(data_dir: Path, fake_env: dict[str, str]) -> None:
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_once({**fake_env, "ORCHESTRATOR_PORT": str(port)})
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    warnings = [line for line in stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and f"cannot listen on 127.0.0.1 port {port}" in warnings[0], stderr
    assert "Traceback" not in stderr
    assert (data_dir / "out" / "scan.pdf").is_file()


def free_port() -> int:
    """A port the system just handed out as ephemeral, for a child process to bind."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_run_once_serves_while_it_runs(tmp_path: Path, data_dir: Path, fake_env: dict[str, str]) -> None:
    gate = tmp_path / "release-ocr"
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "scan.pdf").write_bytes(make_pdf(1))
    port = free_port()
    proc = run_once({**fake_env, "ORCHESTRATOR_PORT": str(port), "FAKE_OCR_WAIT_FOR": str(gate)})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        jobs: list[dict[str, Any]] = []
        record: dict[str, Any] = {}
        # Waits for the child process, not for a scheduler here; the job's record is its state.json, which the
        # OCR worker writes as it starts, and /jobs the snapshot the scheduler publishes at the end of its step.
        while record.get("state") != "OCR_RUNNING" or [j["stage"] for j in jobs] != ["OCR"]:
            assert time.monotonic() < deadline and proc.poll() is None, f"the API never showed OCR running: {jobs}"
            try:
                jobs = http_json(f"{base}/jobs")[1]["jobs"]
                record = http_json(f"{base}/jobs/{jobs[0]['jobKey']}")[1] if jobs else {}
            except OSError:
                pass  # not listening yet
            time.sleep(0.1)
        assert [(j["fileName"], j["stage"]) for j in jobs] == [("scan.pdf", "OCR")]
        assert record["source"]["relpath"] == "scan.pdf"
        assert http_json(f"{base}/metrics")[1]["jobs_running"] == 1
        assert http_json(f"{base}/health")[0] == 200
    finally:
        gate.touch()
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert f"HTTP API and status page on http://127.0.0.1:{port}/" in stderr


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1:8080", 200), ("localhost", 200), ("LOCALHOST:9", 200), ("[::1]:8080", 200),
    ("evil.example:8080", 403), ("127.0.0.1.nip.io", 403),
])
def test_bound_to_this_machine_it_answers_only_requests_addressed_to_it(served: Served, host: str,
                                                                         status: int) -> None:
    """A web page that points a name of its own at 127.0.0.1 (DNS rebinding) cannot read the API."""
    conn = http.client.HTTPConnection("127.0.0.1", served.service.server.server_address[1], timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"Host": host})
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == status
    if status == 403:
        assert "127.0.0.1, localhost or [::1]" in body["error"]


def test_a_damaged_job_index_is_a_503_that_names_it(served: Served) -> None:
    (served.settings.index_dir / "ocrpipe.sqlite").write_bytes(b"this is not a database" * 100)
    status, body = http_json(served.url("/jobs"))
    assert status == 503 and "ocrpipe.sqlite" in body["error"] and "damaged" in body["error"]
    assert http_json(served.url("/metrics"))[0] == 200  # what needs no index still answers
