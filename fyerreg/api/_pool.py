"""Keep-alive HTTP connections per instance address, bounded, checked before reuse."""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from typing import Dict, List, Optional, Tuple

from ..serving.address import split_host_port
from ._deadline import deadline_file


class Connection(http.client.HTTPConnection):
    """An HTTP connection whose response (status line, headers and body) is read by ``deadline``.

    ``deadline`` is a ``time.monotonic()`` value (None: each read waits the socket's timeout).
    """

    deadline: Optional[float] = None

    # http.client builds each response by calling response_class(sock, ...): a method is such a factory too.
    def response_class(  # type: ignore[override]
        self, sock: socket.socket, debuglevel: int = 0, method: Optional[str] = None, url: Optional[str] = None
    ) -> http.client.HTTPResponse:
        response = http.client.HTTPResponse(sock, debuglevel, method, url)
        response.fp.close()  # the plain socket file it opened: nothing was read from it yet
        response.fp = deadline_file(sock, deadline=self.deadline, idle=sock.gettimeout())
        return response


_Idle = Tuple[Connection, float]


def is_dead(conn: Connection) -> bool:
    """True when the peer has closed an idle connection (or sent something unexpected on it).

    An idle keep-alive connection has nothing to read; readable means EOF or garbage.
    """
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class ConnectionPool:
    """Idle connections per ``host:port``: at most ``maxsize`` kept per address, none older than ``max_idle``.

    Connections beyond ``maxsize`` are closed after use instead of kept; callers never
    wait for a free connection. Thread-safe.
    """

    def __init__(self, *, maxsize: int = 8, max_idle: float = 30.0) -> None:
        if maxsize < 0:
            raise ValueError("pool_size must be >= 0")
        self._maxsize = maxsize
        self._max_idle = max_idle
        self._idle: Dict[str, List[_Idle]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._purged = time.monotonic()

    def get(self, address: str, timeout: float) -> Tuple[Connection, bool]:
        """A connection to ``address`` and whether it is a reused one (not yet connected when new)."""
        now = time.monotonic()
        if now - self._purged > self._max_idle:
            self._purge(now)
        while True:
            with self._lock:
                stack = self._idle.get(address)
                item = stack.pop() if stack else None
            if item is None:
                break
            conn, since = item
            if now - since > self._max_idle or is_dead(conn):
                conn.close()
                continue
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        host, port = split_host_port(address, field="address")
        return Connection(host, port, timeout=timeout), False

    def _purge(self, now: float) -> None:
        # Instances that left the service are never asked for again: close their idle connections too.
        stale: List[Connection] = []
        with self._lock:
            self._purged = now
            for address, stack in list(self._idle.items()):
                stale.extend(conn for conn, since in stack if now - since > self._max_idle)
                stack[:] = [(conn, since) for conn, since in stack if now - since <= self._max_idle]
                if not stack:
                    del self._idle[address]
        for conn in stale:
            conn.close()

    def put(self, address: str, conn: Connection) -> None:
        """Return a connection whose last response was read completely."""
        with self._lock:
            if not self._closed and conn.sock is not None:
                stack = self._idle.setdefault(address, [])
                if len(stack) < self._maxsize:
                    stack.append((conn, time.monotonic()))
                    return
        conn.close()

    def discard(self, address: str) -> None:
        """Close every idle connection to ``address`` (its instance failed or left)."""
        with self._lock:
            stack = self._idle.pop(address, [])
        for conn, _ in stack:
            conn.close()

    def idle_count(self, address: Optional[str] = None) -> int:
        """How many idle connections are kept (to ``address``, or in total)."""
        with self._lock:
            if address is not None:
                return len(self._idle.get(address, ()))
            return sum(len(s) for s in self._idle.values())

    def close(self) -> None:
        """Close every idle connection; later returns are closed at once."""
        with self._lock:
            self._closed = True
            stacks, self._idle = list(self._idle.values()), {}
        for stack in stacks:
            for conn, _ in stack:
                conn.close()


def set_timeout(conn: http.client.HTTPConnection, timeout: float) -> None:
    """Bound the next socket operation of ``conn`` (connect, send or receive) by ``timeout`` seconds."""
    conn.timeout = timeout
    if conn.sock is not None:
        try:
            conn.sock.settimeout(timeout)
        except OSError:
            pass

