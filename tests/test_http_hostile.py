"""The HTTP API against whoever reaches it: malformed requests get a 4xx and leave no traceback; idle and
half-sent connections are cut after a timeout; handler threads are bounded; /health answers through a flood."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from conftest import http_json
from ocrpipe.web.api import Api, Response
from ocrpipe.config import Settings
from ocrpipe.errors import ConfigError
from ocrpipe.web.server import MAX_CONNECTIONS, HttpService, serve
from ocrpipe.index.jobindex import JobIndex
from ocrpipe.engine.snapshot import SnapshotHolder

KEY = "a" * 64 + "__" + "b" * 64
TIMEOUT = 1.0  # HTTP_TIMEOUT_SECONDS in these tests: idle connections are cut after this long


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings(HTTP_TIMEOUT_SECONDS=str(TIMEOUT))
    for folder in (settings.work_dir, settings.index_dir):
        folder.mkdir(parents=True)
    with JobIndex(settings.index_dir) as index:  # a real index: a huge offset reaches SQLite
        index.record_many([{"jobKey": KEY, "runId": "r", "state": "DONE", "source": "scan.pdf", "pages": 1,
                            "finishedAt": "2026-12-01T09:00:00.000+00:00"}])
    return settings


def make_api(settings: Settings, kind: type[Api] = Api) -> Api:
    # A clock that stands still: /health stays healthy however long a slow machine takes over a flood.
    return kind(settings, SnapshotHolder(), tools={"ocrmypdf": "99.1.0"}, disk_free=lambda path: 2**40,
                clock=lambda: 0.0)


@pytest.fixture
def service(settings: Settings) -> Iterator[HttpService]:
    with serve(make_api(settings), "127.0.0.1", 0) as service:
        yield service


def port_of(service: HttpService) -> int:
    return int(service.server.server_address[1])


def exchange(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read the answer until the server closes (a reset after the answer is fine)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        try:
            conn.sendall(request)
        except OSError:
            pass  # the server may answer and close before it has read all of an over-long request
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert match, f"no status line in the answer: {answer[:200]!r}"
    return int(match.group(1))


def get(target: str, *headers: str, body: bytes = b"") -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"GET {target} HTTP/1.0\r\n{head}\r\n".encode("latin-1") + body


MALFORMED = {
    "host not closed": get("/metrics", "Host: [::1"),
    "host twice": get("/metrics", "Host: 127.0.0.1", "Host: evil.example"),
    "host with a bad port": get("/metrics", "Host: 127.0.0.1:99999999999999999999"),
    "offset above 2**63": get(f"/jobs?offset={2**63}"),
    "offset far above": get(f"/jobs?offset={10**30}"),
    "offset of 5000 digits": get(f"/jobs?offset={'9' * 5000}"),
    "before above 2**63": get(f"/jobs?before={2**63}"),
    "negative offset": get("/jobs?offset=-5"),
    "offset with underscore": get("/jobs?offset=1_0"),
    "offset with spaces": get("/jobs?offset=%201%20"),
    "limit in arabic digits": get("/jobs?limit=%D9%A1"),
    "limit not a number": get("/jobs?limit=1e3"),
    "empty limit": get("/jobs?limit="),
    "body on GET": get("/metrics", "Content-Length: 5", body=b"hello"),
    "body on HEAD": b"HEAD /metrics HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    "chunked GET": get("/metrics", "Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
    "negative length": get("/metrics", "Content-Length: -5"),
    "unknown method": b"BREW /pot HTTP/1.0\r\n\r\n",
    "POST with a body": b"POST /jobs HTTP/1.0\r\nContent-Length: 4\r\n\r\nabcd",
    "percent garbage in a key": get("/jobs/%zz%e9%00%ff"),
    "percent garbage in a path": get("/%ff%fe%"),
    "percent garbage in a state": get("/jobs?state=%ff%00"),
    "NUL in the path": b"GET /jobs\x00 HTTP/1.0\r\n\r\n",
    "NUL in a header": get("/metrics", "X-Scan: a\x00b"),
    "header without a colon": get("/metrics", "this is not a header"),
    "folded header": get("/metrics", "Host: 127.0.0.1", " folded"),
    "binary garbage": b"\x00\x01\x02\xff\r\n\r\n",
    "blank request line": b"\r\n\r\n",
    "HTTP/0.9 request": b"GET /metrics\r\n",
    "request line over 64 KiB": get("/" + "a" * 70_000),
    "header over 64 KiB": get("/metrics", "X-Long: " + "b" * 70_000),
    "too many headers": get("/metrics", *[f"X-{n}: y" for n in range(200)]),
    "headers over 64 KiB together": get("/metrics", *[f"X-{n}: {'c' * 900}" for n in range(90)]),
    "very long path": get("/" + "d" * 60_000),
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_a_4xx_and_leaves_no_traceback(
        service: HttpService, request_bytes: bytes, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level("DEBUG")
    answer = exchange(port_of(service), request_bytes)
    assert 400 <= status_of(answer) < 500, answer[:300]
    assert len(answer) < 4096, "the answer does not echo a whole over-long request back"
    assert [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")] == []
    assert "Traceback" not in capfd.readouterr().err
    assert http_json(service.url + "health")[0] == 200  # and the server still answers


def test_the_read_timeout_is_a_setting_with_a_clear_error(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().http_timeout_seconds == 5.0
    assert make_settings(HTTP_TIMEOUT_SECONDS="2.5").http_timeout_seconds == 2.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ConfigError, match="HTTP_TIMEOUT_SECONDS"):
            make_settings(HTTP_TIMEOUT_SECONDS=bad)


def closed_by_server(conn: socket.socket) -> bool:
    """True once the server has closed ``conn`` (EOF or reset); False while it stays open."""
    conn.setblocking(False)
    try:
        return conn.recv(1 << 16, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_a_flood_of_idle_and_malformed_connections_bounds_threads_and_health_answers(
        service: HttpService, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """Loopback only, bounded in count and time: 300 half-sent requests and 100 malformed ones, while
    /health keeps answering; the idle connections are cut after HTTP_TIMEOUT_SECONDS."""
    port = port_of(service)
    baseline = threading.active_count()
    peak = [baseline]
    idle: list[socket.socket] = []
    health_seconds: list[float] = []

    def sample() -> None:
        peak[0] = max(peak[0], threading.active_count())

    try:
        for n in range(300):
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn.sendall(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Half: ")  # and never the rest
            idle.append(conn)
            sample()
            if n % 50 == 49:
                started = time.monotonic()
                status, _ = http_json(service.url + "health")
                health_seconds.append(time.monotonic() - started)
                assert status == 200
        malformed = list(MALFORMED.values())
        for n in range(100):
            assert 400 <= status_of(exchange(port, malformed[n % len(malformed)])) < 500
            sample()
        started = time.monotonic()
        assert http_json(service.url + "health")[0] == 200
        health_seconds.append(time.monotonic() - started)
        assert max(health_seconds) < 2.0, health_seconds
        # Live handlers, and as many pushed out whose threads are ending, at most (a few just released).
        assert peak[0] <= baseline + 2 * MAX_CONNECTIONS + 4, f"{peak[0]} threads for {baseline} before the flood"
        deadline = time.monotonic() + TIMEOUT + 10
        while not all(closed_by_server(conn) for conn in idle):
            assert time.monotonic() < deadline, \
                f"{sum(not closed_by_server(c) for c in idle)} idle connections still open after the timeout"
            time.sleep(0.05)  # polls the sockets' state against a deadline
    finally:
        for conn in idle:
            conn.close()
    deadline = time.monotonic() + 10
    while threading.active_count() > baseline:  # the handler threads end with their connections
        assert time.monotonic() < deadline, f"{threading.active_count()} threads, {baseline} before the flood"
        time.sleep(0.05)
    assert [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")] == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_head_sent_a_byte_at_a_time_is_cut_at_the_timeout_whatever_each_read_takes(
        service: HttpService) -> None:
    """Each byte comes well within the timeout, so only a deadline on the whole head ends this one."""
    head = b"GET /health HTTP/1.0\r\nX-Slow: " + b"z" * 1000
    with socket.create_connection(("127.0.0.1", port_of(service)), timeout=10) as conn:
        started = time.monotonic()
        try:
            for byte in head:
                conn.sendall(bytes([byte]))
                assert time.monotonic() - started < TIMEOUT + 5, "the dripping head was never cut"
                time.sleep(TIMEOUT / 5)  # the client's pace, not a wait for the server
        except OSError:
            pass  # reset: the server has cut it
        deadline = time.monotonic() + 5
        while not closed_by_server(conn):
            assert time.monotonic() < deadline, "the dripping head was never cut"
            time.sleep(0.02)
    assert time.monotonic() - started < TIMEOUT + 3


class GatedApi(Api):
    """An API whose answers wait for a gate: its handler threads stay busy for as long as a test wants."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)

    def handle(self, method: str, target: str) -> Response:
        self.entered.release()
        self.gate.wait(30)
        return super().handle(method, target)


def test_over_the_bound_of_busy_handlers_a_request_is_answered_503_at_once(settings: Settings) -> None:
    api = make_api(settings, GatedApi)
    assert isinstance(api, GatedApi)
    busy: list[threading.Thread] = []
    answers: list[bytes] = []
    with serve(api, "127.0.0.1", 0, max_connections=2) as service:
        port = port_of(service)
        try:
            for _ in range(2):
                thread = threading.Thread(target=lambda: answers.append(exchange(port, get("/metrics"))))
                thread.start()
                busy.append(thread)
                assert api.entered.acquire(timeout=10)  # that request holds a handler now
            started = time.monotonic()
            refused = exchange(port, get("/metrics"), timeout=5)
            assert status_of(refused) == 503 and b"busy" in refused
            assert time.monotonic() - started < 1.0
        finally:
            api.gate.set()
            for thread in busy:
                thread.join(10)
    assert [status_of(a) for a in answers] == [200, 200]


def test_an_idle_connection_pushes_out_no_request_that_is_being_answered(settings: Settings) -> None:
    """With every handler taken by half-sent requests, a whole request still gets in: the oldest
    half-sent one gives way."""
    with serve(make_api(settings), "127.0.0.1", 0, max_connections=2) as service:
        port = port_of(service)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        try:
            for conn in idle:
                conn.sendall(b"GET /metrics HTTP/1.0\r\n")
            assert status_of(exchange(port, get("/health"), timeout=5)) == 200
            deadline = time.monotonic() + 5
            while not closed_by_server(idle[0]):
                assert time.monotonic() < deadline, "the oldest half-sent request was not pushed out"
                time.sleep(0.02)
        finally:
            for conn in idle:
                conn.close()

