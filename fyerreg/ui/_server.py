"""The dashboard's HTTP server: the page, its JSON, and the event stream, read-only.

Built on the standard library's ``http.server``. The accept loop blocks on a selector
with a wake-up socket (no timer), each connection has its own ``fyerreg-ui-conn`` thread,
and :meth:`DashboardServer.close` ends the event streams, shuts every connection and
joins every thread. Every request is checked by the :class:`~fyerreg.ui._auth.Guard`
first; only GET and HEAD are served.
"""

from __future__ import annotations

import http.server
import logging
import selectors
import socket
import socketserver
import threading
import time
from typing import Any, Callable, Dict, Optional, Set
from urllib.parse import parse_qs

from .._threads import join_thread, start_thread
from ..errors import RegistryError
from ..serving.address import family_for
from . import _page
from ._auth import Guard, check_token
from ._state import Board, encode

__all__ = ["DashboardServer", "Leases", "KEEPALIVE", "MAX_CONNECTIONS"]

log = logging.getLogger("fyerreg.ui")

KEEPALIVE = 15.0
"""Seconds between comment lines on an idle event stream, so a page that went away is noticed."""
MAX_CONNECTIONS = 64
"""Connections served at once; more are closed as they come."""
WRITE_TIMEOUT = 10.0
"""Seconds a connection may take to read what is written to it (and to send its request)."""

Leases = Callable[[Optional[str]], Dict[str, Any]]

_SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fyerreg-ui"
    sys_version = ""
    timeout = WRITE_TIMEOUT
    disable_nagle_algorithm = True
    server: DashboardServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        verdict = self.server.guard.check(path, query, self.headers.get("Host"), self.headers.get("Authorization"),
                                          self.headers.get("Cookie"))
        if verdict.status == 303:
            self._send(303, "text/plain; charset=utf-8", b"signed in\n",
                       [("Location", verdict.location or "/"), ("Set-Cookie", verdict.cookie or "")])
            return
        if not verdict.allowed:
            extra = [("WWW-Authenticate", 'Bearer realm="fyerreg ui"')] if verdict.status == 401 else []
            self._send(verdict.status, "text/plain; charset=utf-8", (verdict.message + "\n").encode(), extra)
            return
        route = _ROUTES.get(path)
        if route is None:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
            return
        route(self, query)

    do_HEAD = do_GET

    def _refuse_method(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"the dashboard is read-only\n", [("Allow", "GET, HEAD")])

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    # -- routes ----------------------------------------------------------------------------------

    def _page(self, query: str) -> None:
        self._send(200, "text/html; charset=utf-8", _page.HTML.encode())

    def _script(self, query: str) -> None:
        self._send(200, "text/javascript; charset=utf-8", _page.SCRIPT.encode())

    def _style(self, query: str) -> None:
        self._send(200, "text/css; charset=utf-8", _page.STYLE.encode())

    def _icon(self, query: str) -> None:
        self._send(204, "text/plain", b"")

    def _state(self, query: str) -> None:
        self._json(200, self.server.board.state())

    def _leases(self, query: str) -> None:
        service = parse_qs(query).get("service", [None])[0]
        try:
            self._json(200, self.server.leases(service))
        except (RegistryError, ValueError) as exc:
            # A fyerreg error names etcd's endpoint and what failed, never the credentials.
            self._json(503 if isinstance(exc, RegistryError) else 400, {"error": str(exc)})

    def _events(self, query: str) -> None:
        listener = self.server.board.listen()
        if listener is None:
            self._send(503, "text/plain; charset=utf-8", b"too many pages are watching; try again later\n",
                       [("Retry-After", "5")])
            return
        self.close_connection = True
        connection = self.connection

        def drop() -> None:  # unblocks a write stuck on a page that stopped reading
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        listener.on_drop(drop)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Connection", "close")
            self.send_header("X-Accel-Buffering", "no")
            for name, value in _SECURITY_HEADERS:
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.flush()
            while True:
                message = listener.next(KEEPALIVE)
                if message is None:
                    return
                self.wfile.write(message or b": keepalive\n\n")
                self.wfile.flush()
        except OSError:
            pass  # the page went away, or was dropped for lagging
        finally:
            listener.end()

    # -- plumbing --------------------------------------------------------------------------------

    def _json(self, status: int, data: Any) -> None:
        self._send(status, "application/json", encode(data).encode("utf-8"))

    def _send(self, status: int, content_type: str, body: bytes, extra: Any = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (*_SECURITY_HEADERS, *extra):
            self.send_header(name, value)
        if self.server.closing:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds the query, where a ?token= may be: log the path only.
        log.debug("%s %s %s", self.address_string(), getattr(self, "command", "-"),
                  getattr(self, "path", "-").partition("?")[0])

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.debug("%s %s %s -> %s", self.address_string(), getattr(self, "command", "-"),
                  getattr(self, "path", "-").partition("?")[0], code)


_ROUTES: Dict[str, Callable[[_Handler, str], None]] = {
    "/": _Handler._page,
    "/app.js": _Handler._script,
    "/app.css": _Handler._style,
    "/favicon.ico": _Handler._icon,
    "/events": _Handler._events,
    "/api/state": _Handler._state,
    "/api/leases": _Handler._leases,
}


class DashboardServer(http.server.HTTPServer):
    """Serves the dashboard of ``board`` on ``host:port`` (port 0: any free port) once :meth:`start` ran."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, host: str, port: int, board: Board, leases: Leases, *, token: Optional[str] = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        if token is not None:
            check_token(token)  # before binding: nothing to release on a bad token
        self.address_family = family_for(host)
        self.board = board
        self.leases = leases
        self.max_connections = max_connections
        self.closing = False
        self._conns: Set[socket.socket] = set()
        self._threads: Set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._serve_thread: Optional[threading.Thread] = None
        super().__init__((host, port), _Handler)
        self.guard = Guard(token, bind_host=host, port=self.port)
        self._wake_r, self._wake_w = socket.socketpair()

    def server_bind(self) -> None:
        # http.server's own looks the host's name up in DNS (socket.getfqdn): slow or hung on a closed network.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    @property
    def port(self) -> int:
        """The port bound."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Accept connections in a thread of its own."""
        self.socket.setblocking(False)
        self._serve_thread = start_thread("ui-http", self._serve)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.closing:
                if any(key.fileobj is self._wake_r for key, _ in selector.select()):
                    return
                self._handle_request_noblock()  # type: ignore[attr-defined]

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setblocking(True)  # accepted sockets may inherit the listener's non-blocking mode
        with self._lock:
            if self.closing or len(self._conns) >= self.max_connections:
                full = True
            else:
                full = False
                self._conns.add(request)
                self._threads.add(start_thread("ui-conn", self._serve_connection, request, client_address))
        if full:
            log.warning("refusing a connection from %s: %d connections already open", client_address[0],
                        self.max_connections)
            self.shutdown_request(request)

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            log.debug("connection from %s failed", client_address[0], exc_info=True)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._conns.discard(request)
                self._threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address[0], exc_info=True)

    def close(self, timeout: float) -> None:
        """Stop accepting, end the event streams and every connection, join every thread."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self.closing:
                return
            self.closing = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._serve_thread is not None:
            join_thread(self._serve_thread, timeout)
        self.server_close()
        self.board.hub.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            try:
                # A handler waiting for its next request reads EOF; one writing gets an error at once.
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            if not join_thread(thread, max(deadline - time.monotonic(), 0.05)):
                log.warning("thread %s did not end at close", thread.name)
        self._wake_r.close()
        self._wake_w.close()
