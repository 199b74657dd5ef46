"""Bounds on the HTTP API's connections: how many hold a handler thread, and how long and how big a
request head may be, so that whoever reaches the port cannot hold the server with idle connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BufferedIOBase

MAX_HEAD_BYTES = 64 * 1024  # request line and headers together; a browser's, cookies included, is far less


class HeadTooLarge(Exception):
    """The request line and headers went over MAX_HEAD_BYTES."""


@dataclass
class _Connection:
    sock: socket.socket
    opened: float
    reading: bool = True  # still sending its request head
    cut: bool = False  # shut by the gate: timed out, or pushed out by a newer connection


class ConnectionGate:
    """Every open connection holds a handler thread; at most ``limit`` of them are live. When a new one
    comes and all are taken, the one that has been sending its request head the longest is cut to make
    room (a person's browser sends its head at once; a client that dawdles is the one to drop); when all
    are being answered, the newcomer is refused (503). A head not whole after ``timeout`` is cut."""

    def __init__(self, limit: int, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[socket.socket, _Connection] = {}

    def admit(self, sock: socket.socket) -> bool:
        """Take ``sock`` in (True), cutting the oldest dawdler if need be, or refuse it (False)."""
        with self._lock:
            live = [c for c in self._open.values() if not c.cut]
            if len(live) >= self.limit:
                dawdlers = [c for c in live if c.reading]
                # Cut connections whose threads have not ended yet count too: threads stay bounded.
                if not dawdlers or len(self._open) >= 2 * self.limit:
                    return False
                self._cut(min(dawdlers, key=lambda c: c.opened))
            self._open[sock] = _Connection(sock, self.clock())
            return True

    def head_read(self, sock: socket.socket) -> None:
        """The request head is in: from now on the connection is being answered and is not cut."""
        with self._lock:
            if sock in self._open:
                self._open[sock].reading = False

    def was_cut(self, sock: socket.socket) -> bool:
        with self._lock:
            found = self._open.get(sock)
            return found is not None and found.cut

    def release(self, sock: socket.socket) -> None:
        """Forget ``sock`` before it is closed: the gate never shuts a socket whose number may be reused."""
        with self._lock:
            self._open.pop(sock, None)

    def expire(self) -> None:
        """Cut every connection whose request head has taken longer than the timeout."""
        now = self.clock()
        with self._lock:
            for connection in self._open.values():
                if connection.reading and not connection.cut and now - connection.opened > self.timeout:
                    self._cut(connection)

    def cut_all(self) -> None:
        with self._lock:
            for connection in self._open.values():
                if not connection.cut:
                    self._cut(connection)

    @staticmethod
    def _cut(connection: _Connection) -> None:
        # Shutting the socket wakes its handler thread out of a blocking read, on Windows as elsewhere.
        connection.cut = True
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the client


class HeadReader:
    """The handler's ``rfile``: counts the request head's bytes against MAX_HEAD_BYTES, and turns a cut by
    the gate into a timeout, which the standard library's handler ends quietly."""

    def __init__(self, raw: BufferedIOBase, *, was_cut: Callable[[], bool], limit: int = MAX_HEAD_BYTES) -> None:
        self.raw = raw
        self.was_cut = was_cut
        self.left = limit
        self.lines = 0

    def readline(self, size: int = -1) -> bytes:
        cap = self.left + 1 if size < 0 else min(size, self.left + 1)
        line = self._checked(self.raw.readline(cap))
        self.left -= len(line)
        if self.left < 0:
            raise HeadTooLarge()
        self.lines += 1
        return line

    def read(self, size: int = -1) -> bytes:
        return self._checked(self.raw.read(size))

    def _checked(self, data: bytes) -> bytes:
        if self.was_cut():  # the read ended because the gate shut the socket, not because the client did
            raise TimeoutError("the request was not sent in time")
        return data

    def close(self) -> None:
        self.raw.close()
