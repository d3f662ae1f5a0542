"""A small threaded HTTP/1.1 WSGI server from the standard library, with keep-alive and graceful close.

``wsgiref`` closes the connection after every request (HTTP/1.0), which defeats the
client's connection pool, so this gateway builds on ``http.server`` instead. It serves
at most ``max_connections`` connections at once (the next ones wait in the listen
backlog) and gives each request ``request_timeout`` seconds to arrive whole, head and
body, however slowly its bytes come.
"""

from __future__ import annotations

import http.server
import io
import logging
import select
import selectors
import socket
import socketserver
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import unquote

from .._threads import join_thread, start_thread
from ..serving.address import family_for
from ._deadline import DeadlineReader

logger = logging.getLogger("fyerreg.api.server")

WsgiApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_MAX_DISCARD = 64 * 1024


class _Input(io.RawIOBase):
    """The request body: at most ``Content-Length`` bytes of the connection's stream."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self.remaining = length
        self.timed_out = False
        self.truncated = False  # the connection ended before Content-Length bytes came

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        data = self._read(self._stream.read, min(len(buffer), self.remaining))
        self.truncated = self.truncated or not data
        buffer[: len(data)] = data
        self.remaining -= len(data)
        return len(data)

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._take(self._stream.read, size, whole=True)

    def readline(self, size: Optional[int] = -1) -> bytes:
        return self._take(self._stream.readline, size, whole=False)

    def _take(self, reader: Callable[[int], bytes], size: Optional[int], *, whole: bool) -> bytes:
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if size <= 0:
            return b""
        data = self._read(reader, size)
        self.remaining -= len(data)
        self.truncated = self.truncated or not data or (whole and len(data) < size)
        return data

    def _read(self, reader: Callable[[int], bytes], size: int) -> bytes:
        try:
            return reader(size)
        except socket.timeout:
            self.timed_out = True
            raise


class _Errors(io.TextIOBase):
    def write(self, text: str) -> int:
        if text.strip():
            logger.error("wsgi.errors: %s", text.rstrip())
        return len(text)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: with Nagle, the body would wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        # The first request is due within request_timeout of the connection; later ones, after idle_timeout.
        self.rfile.close()
        self._reader = DeadlineReader(self.connection, deadline=time.monotonic() + self.server.request_timeout,
                                      idle=self.server.idle_timeout)
        self._buffered = io.BufferedReader(self._reader)
        self.rfile = self._buffered
        self._served = False

    def handle_one_request(self) -> None:
        reader = self._reader
        if self._served:
            reader.deadline = None
        try:
            started = bool(self._buffered.peek(1))
        except OSError:  # request_timeout or idle_timeout passed (socket.timeout), or the peer reset
            started = False
        # A request that starts once close() has begun is not read: close() ends idle
        # connections, and leaves the ones with a request under way to finish it.
        if not started or not self.server.begin_request(self.connection):
            self.close_connection = True
            return
        if self._served:
            reader.deadline = time.monotonic() + self.server.request_timeout
        self._served = True
        try:
            super().handle_one_request()
        finally:
            self.server.end_request(self.connection)

    def _run_wsgi(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._plain(411, b"Content-Length is required")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._plain(400, b"bad Content-Length")
            return
        body_in = _Input(self.rfile, length)
        environ = self._environ(body_in)
        state: Dict[str, Any] = {}

        def start_response(
            status: str, headers: List[Tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            state["status"], state["headers"] = status, headers
            return lambda data: state.setdefault("written", []).append(data)

        try:
            result = self.server.app(environ, start_response)
            try:
                body = b"".join([*state.get("written", []), *result])
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            if body_in.truncated:
                self._unanswered()
                return
            if body_in.timed_out:
                logger.debug("request body of %s %s not received within %.1fs", self.command, self.path,
                             self.server.request_timeout)
                self._plain(408, b"request body not received in time")
                return
            logger.error("WSGI app failed on %s %s", self.command, self.path, exc_info=True)
            self._plain(500, b"internal error")
            return
        if body_in.remaining > _MAX_DISCARD:
            self.close_connection = True
        elif body_in.remaining:
            body_in.read()
        if body_in.truncated:
            self._unanswered()
            return
        self._respond(state["status"], state["headers"], body)

    def _unanswered(self) -> None:
        # The app saw only part of the body: whatever it answered is not the answer to the
        # request the client sent. Hanging up tells the client the call broke (it may retry).
        logger.debug("request body of %s %s ended early; closing without an answer", self.command, self.path)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _run_wsgi

    def _environ(self, body_in: _Input) -> Dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: Dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": self.headers.get("Content-Length", ""),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body_in,
            "wsgi.errors": _Errors(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ["HTTP_" + key] = value
        return environ

    def _respond(self, status: str, headers: List[Tuple[str, str]], body: bytes) -> None:
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason or None)
        names = set()
        for name, value in headers:
            names.add(name.lower())
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        if self.server.draining:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        # Reads left the socket timeout at what remained of the request's time: give the answer its own.
        self.connection.settimeout(self.server.request_timeout)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _plain(self, code: int, message: bytes) -> None:
        self.close_connection = True
        self._respond(f"{code} {http.server.BaseHTTPRequestHandler.responses[code][0]}",
                      [("Content-Type", "text/plain")], message)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)


class HttpServer(socketserver.TCPServer):
    """Serves a WSGI app on one listening socket, one ``fyerreg-`` thread per connection.

    At most ``max_connections`` connections are served at once; the next ones are not
    accepted until one ends, and wait in the listen backlog. A request must arrive
    whole (head and body) within ``request_timeout`` seconds of its first byte (of the
    connection, for its first request); a kept-alive connection waits ``idle_timeout``
    seconds for its next request.
    """

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str, port: int, app: WsgiApp, *, idle_timeout: float = 60.0,
                 request_timeout: float = 30.0, max_connections: int = 256) -> None:
        self.address_family = family_for(host)
        self.app = app
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.draining = False
        self._closing = False
        self._conns: Set[socket.socket] = set()
        self._busy: Set[socket.socket] = set()  # connections with a request under way
        self._threads: Set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._slot_free = threading.Condition(self._lock)
        self._serve_thread: Optional[threading.Thread] = None
        super().__init__((host, port), _Handler)
        self._wake_r, self._wake_w = socket.socketpair()

    @property
    def port(self) -> int:
        """The port actually bound (useful when asked for port 0)."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Start accepting connections in a background thread."""
        self.socket.setblocking(False)
        self._serve_thread = start_thread(f"http-{self.port}", self._serve)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                with self._slot_free:
                    while len(self._conns) >= self.max_connections and not self._closing:
                        self._slot_free.wait()
                    if self._closing:
                        return
                if any(key.fileobj is self._wake_r for key, _ in selector.select()):
                    return
                try:
                    request, client_address = self.socket.accept()
                except (BlockingIOError, InterruptedError):
                    continue  # the connection went away before it was accepted
                except OSError as exc:
                    # Out of file descriptors, say: pause instead of spinning on a listener that stays readable.
                    logger.warning("accept on port %d failed: %s", self.port, exc)
                    if select.select([self._wake_r], [], [], 0.5)[0]:
                        return
                    continue
                self.process_request(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setblocking(True)  # where accepted sockets inherit the listener's non-blocking mode
        with self._lock:
            self._conns.add(request)
            self._threads.add(start_thread(f"http-{self.port}-conn", self._serve_connection, request, client_address))

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            logger.debug("connection from %s failed", client_address, exc_info=True)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._conns.discard(request)
                self._threads.discard(threading.current_thread())
                self._slot_free.notify()

    def begin_request(self, conn: socket.socket) -> bool:
        """A request starts on ``conn``; False once :meth:`close` has begun (it is not served)."""
        with self._lock:
            if self._closing:
                return False
            self._busy.add(conn)
            return True

    def end_request(self, conn: socket.socket) -> None:
        """The request on ``conn`` was answered (or given up)."""
        with self._lock:
            self._busy.discard(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)

    def close(self, timeout: float) -> None:
        """Stop accepting, end idle keep-alive connections and join every thread."""
        deadline = time.monotonic() + timeout
        self.draining = True
        with self._lock:
            self._closing = True
            self._slot_free.notify_all()
        try:
            self._wake_w.send(b"x")
        except OSError:  # already closed by an earlier close()
            pass
        if self._serve_thread is not None:
            join_thread(self._serve_thread, timeout)
        self.server_close()
        self._wake_r.close()
        self._wake_w.close()
        with self._lock:
            idle, threads = [c for c in self._conns if c not in self._busy], list(self._threads)
        # A handler waiting for a request reads EOF and ends; one serving a request finishes it
        # (its answer says Connection: close) until the deadline, when its connection is cut.
        _shut(idle, socket.SHUT_RD)
        for thread in threads:
            join_thread(thread, max(deadline - time.monotonic(), 0.0))
        with self._lock:
            late, threads = list(self._conns), list(self._threads)
        _shut(late, socket.SHUT_RDWR)
        for thread in threads:
            join_thread(thread, 0.05)


def _shut(conns: List[socket.socket], how: int) -> None:
    for conn in conns:
        try:
            conn.shutdown(how)
        except OSError:
            pass
