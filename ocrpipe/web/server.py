"""The HTTP API's server: the standard library's ThreadingHTTPServer on a daemon thread, read-only."""

from __future__ import annotations

import logging
import re
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ocrpipe.web.api import Api, Response, error
from ocrpipe.web.guard import MAX_HEAD_BYTES, ConnectionGate, HeadReader, HeadTooLarge

log = logging.getLogger("ocrpipe.http")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# Handler threads at most: the API's answers take milliseconds, so a few serve many readers.
MAX_CONNECTIONS = 32
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # no field or request line may carry these (a tab may)
SHOWN_CHARS = 200  # of a request target echoed in an error
LINGER_SECONDS = 2.0  # at most, reading what a client still sends after an early answer
LINGER_BYTES = 1 << 20


class BadHost(ValueError):
    """The Host header cannot be read as a host and port."""


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # On Windows SO_REUSEADDR lets a second program bind a port already in use and steal its
    # connections; there, a port in use must fail to bind, as it does elsewhere.
    allow_reuse_address = sys.platform != "win32"
    request_queue_size = 64  # a burst of connections waits in the kernel instead of being refused

    def __init__(self, address: tuple[str, int], api: Api, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.api = api
        self.read_timeout = api.settings.http_timeout_seconds
        self.gate = ConnectionGate(max_connections, self.read_timeout)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        # Made before the bind: a port in use ends the constructor in server_close, which closes them.
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._stopping = False
        self._stopped = threading.Event()
        super().__init__(address, ApiHandler)

    def server_bind(self) -> None:
        """HTTPServer's, without its reverse DNS lookup of the address (``socket.getfqdn``): it names the
        server only for CGI, and on a machine whose DNS does not answer it costs seconds at every start."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """socketserver's loop, woken by ``shutdown`` through a socket pair instead of noticing it at the next
        poll: a stop then takes no poll interval (0.2 s of every ``run --once``, which has no work to wait for)."""
        self._stopped.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_read, selectors.EVENT_READ)
                while not self._stopping:
                    ready = selector.select(poll_interval)
                    if self._stopping:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        self._handle_request_noblock()  # type: ignore[attr-defined]  # socketserver's own step
                    self.service_actions()
        finally:
            try:
                self._wake_read.recv(4096)  # the wake-up read, so that a later loop does not wake at once
            except OSError:
                pass
            self._stopping = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever (running in another thread) and wait until it has."""
        self._stopping = True
        try:
            self._wake_write.send(b"x")
        except OSError:  # the buffer is full of earlier wake-ups: the loop is awake anyway
            pass
        self._stopped.wait()

    def host_allowed(self, header: str | None) -> bool:
        """Bound to this machine only, answer only requests addressed to it: a web page cannot then
        read the API through a name it points at 127.0.0.1 (DNS rebinding). Raises BadHost."""
        if header is None:
            return True
        try:
            parts = urlsplit(f"//{header}")
            host, _ = parts.hostname, parts.port  # "[::1]:8080" -> "::1", lower-cased; the port is checked
        except ValueError:
            raise BadHost(header) from None
        if not host or parts.path or parts.query or parts.fragment or parts.username is not None:
            raise BadHost(header)
        return str(self.server_address[0]) not in LOOPBACK or host in LOOPBACK

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.gate.admit(request):
            refuse_busy(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.gate.release(request)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        # serve_forever calls this at least every poll interval: idle connections are cut on time.
        self.gate.expire()

    def server_close(self) -> None:
        super().server_close()
        self.gate.cut_all()
        self._wake_read.close()
        self._wake_write.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The standard library prints a traceback to stderr here; a client that went away is no fault."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.debug("HTTP %s: connection ended: %s", client_address[0], exc)
        else:
            log.error("HTTP %s: the request could not be answered", client_address[0], exc_info=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def refuse_busy(sock: socket.socket) -> None:
    """503 on the accepting thread, without reading the request: no handler is free to read it."""
    body = error(503, "the HTTP API is busy; try again in a moment").body
    head = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").encode("ascii")
    try:
        sock.setblocking(False)  # a few hundred bytes fit in any send buffer; a full one loses the answer only
        sock.send(head + body)
        sock.recv(MAX_HEAD_BYTES)  # what the client has sent already: closing over unread bytes resets the answer
    except OSError:
        pass


class ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer
    raw_requestline: bytes  # set by handle_one_request; typeshed leaves this undocumented attribute out
    head_reader: HeadReader  # the rfile setup() puts in place
    server_version = "ocrpipe"  # HTTP/1.0: one request per connection, so no thread waits on an idle client
    unread = False  # the client sent more than was read: the connection lingers before it closes

    def setup(self) -> None:
        # each read and write; the gate bounds the whole head. typeshed declares StreamRequestHandler.timeout
        # a ClassVar, but setup() reads it from the instance, so one handler's own timeout works.
        self.timeout = self.server.read_timeout  # type: ignore[misc]
        super().setup()
        gate, sock = self.server.gate, self.request
        self.head_reader = HeadReader(self.rfile, was_cut=lambda: gate.was_cut(sock))
        # HeadReader has the two reading methods the handler uses, not all of typeshed's BufferedIOBase.
        self.rfile = self.head_reader  # type: ignore[assignment]

    def handle(self) -> None:
        super().handle()
        if self.unread:
            self._linger()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except HeadTooLarge:
            self.unread = True
            if self.head_reader.lines == 0:
                self.requestline, self.command, self.request_version = "", "", "HTTP/1.0"
                self.send_error(414, f"the request line is longer than {MAX_HEAD_BYTES} bytes")
            else:
                self.send_error(431, f"the request's headers are longer than {MAX_HEAD_BYTES} bytes")

    def _linger(self) -> None:
        """Read, for a moment, what the client still sends after an answer that did not wait for all of
        it: closing over unread bytes resets the connection, and the client may lose the answer."""
        wait = min(self.server.read_timeout, LINGER_SECONDS)
        deadline = time.monotonic() + wait
        left = LINGER_BYTES
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(wait)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass  # timed out or reset: the answer went out, the connection closes either way

    def parse_request(self) -> bool:
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        if len(line.split()) != 3:
            # The standard library says nothing to a blank line, and waits for headers after an HTTP/0.9
            # one ("GET /path"), which has none: both get a 400 now.
            self.requestline, self.command, self.request_version = line, "", "HTTP/1.0"
            self.send_error(400, "malformed request line: expected a method, a target and HTTP/1.x")
            return False
        return super().parse_request()

    def _answer(self) -> None:
        refusal = self._refusal()  # reads a short body, if any: the gate's deadline still holds for it
        self.server.gate.head_read(self.request)  # being answered now: neither cut nor pushed out
        response = refusal or self.server.api.handle(self.command, self.path)
        self._send(response, body=self.command != "HEAD")

    def _refusal(self) -> Response | None:
        """A 4xx for a request that is not well-formed HTTP, or not addressed to this server."""
        if CONTROL.search(self.requestline) or self.headers.defects or any(
                CONTROL.search(name) or CONTROL.search(value) for name, value in self.headers.items()):
            return error(400, "malformed request: control characters or a line that is not a header")
        if self._has_body() and self.command in ("GET", "HEAD"):
            return error(400, f"a {self.command} request has no body")
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:
            return error(400, "more than one Host header")
        try:
            allowed = self.server.host_allowed(hosts[0] if hosts else None)
        except BadHost:
            return error(400, "the Host header is not a host name or address with an optional port")
        if not allowed:
            return error(403, "this API answers only to 127.0.0.1, localhost or [::1] (see ORCHESTRATOR_HOST)")
        return None

    def _has_body(self) -> bool:
        """Is a body announced? A short one is read and dropped, so that closing the connection does not
        reset it before the client has read the answer."""
        length = self.headers.get("Content-Length")
        if "Transfer-Encoding" not in self.headers and length is None:
            return False
        size = int(length) if length is not None and re.fullmatch(r"[0-9]{1,9}", length.strip()) else -1
        if 0 < size <= MAX_HEAD_BYTES:
            try:
                self.rfile.read(size)
                return True
            except OSError:
                pass  # the client is slow or gone: the answer is sent all the same
        self.unread = size != 0
        return size != 0

    do_GET = do_HEAD = _answer

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Any other method (POST, PUT, DELETE, or one that does not exist): 405, not the stock 501.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _send(self, response: Response, *, body: bool = True) -> None:
        self.server.gate.head_read(self.request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests (bad request line, header too long…) get a JSON error like the rest.
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # a line that did not parse: the answer still has a status line
        self._send(error(code, _shown(message or "bad request")), body=getattr(self, "command", None) != "HEAD")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the stdlib's signature
        log.debug("HTTP %s %s", self.address_string(), format % args)


def _shown(text: str) -> str:
    """Part of a message that may quote the request: never the whole of an over-long one."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


class HttpService:
    """The server and its thread; ``close`` stops both and frees the port."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="ocrpipe-http", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> HttpService:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self) -> HttpService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(api: Api, host: str, port: int, *, max_connections: int = MAX_CONNECTIONS) -> HttpService:
    """Bind and start answering; raises OSError when the address cannot be bound (port in use…)."""
    return HttpService(ApiServer((host, port), api, max_connections=max_connections)).start()


def start_api(api: Api, host: str, port: int) -> HttpService | None:
    """``ocrpipe run``'s server, or None: a port in use costs one warning, never the pipeline."""
    try:
        service = serve(api, host, port)
    except OSError as exc:
        log.warning("HTTP API not started: cannot listen on %s port %d (%s); the pipeline runs on without it "
                    "(set ORCHESTRATOR_PORT to a free port, or 0 to turn the API off)", host, port,
                    exc.strerror or exc)
        return None
    log.info("HTTP API and status page on %s", service.url)
    if host not in LOOPBACK:
        log.warning("the HTTP API listens on %s: anyone who can reach this machine can read file names, "
                    "error reasons and job records (it changes nothing)", host)
    return service
