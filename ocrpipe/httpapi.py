"""The HTTP API's server: the standard library's ThreadingHTTPServer on a daemon thread, read-only."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from ocrpipe.api import Api, Response, error

log = logging.getLogger("ocrpipe.http")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # On Windows SO_REUSEADDR lets a second program bind a port already in use and steal its
    # connections; there, a port in use must fail to bind, as it does elsewhere.
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ApiHandler)

    def host_allowed(self, header: str | None) -> bool:
        """Bound to this machine only, answer only requests addressed to it: a web page cannot then
        read the API through a name it points at 127.0.0.1 (DNS rebinding)."""
        bound = str(self.server_address[0])
        if header is None or bound not in LOOPBACK:
            return True
        return urlsplit(f"//{header}").hostname in LOOPBACK  # "[::1]:8080" -> "::1", lower-cased

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


class ApiHandler(BaseHTTPRequestHandler):
    server: ApiServer
    server_version = "ocrpipe"  # HTTP/1.0: one request per connection, so no thread waits on an idle client

    def _answer(self) -> None:
        if not self.server.host_allowed(self.headers.get("Host")):
            response = error(403, "this API answers only to 127.0.0.1, localhost or [::1] (see ORCHESTRATOR_HOST)")
        else:
            response = self.server.api.handle(self.command, self.path)
        self._send(response, body=self.command != "HEAD")

    do_GET = do_HEAD = _answer

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Any other method (POST, PUT, DELETE, or one that does not exist): 405, not the stock 501.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _send(self, response: Response, *, body: bool = True) -> None:
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
        self._send(error(code, message or "bad request"), body=self.command != "HEAD")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — the stdlib's signature
        log.debug("HTTP %s %s", self.address_string(), format % args)


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


def serve(api: Api, host: str, port: int) -> HttpService:
    """Bind and start answering; raises OSError when the address cannot be bound (port in use…)."""
    return HttpService(ApiServer((host, port), api)).start()


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
