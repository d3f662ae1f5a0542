"""An HTTP server that counts what it is asked, registered in etcd, for the httpx tests.

    python http_counter.py ETCD SERVICE VERSION ID [--sick]

Registers ``ID`` with its HTTP port as the ``http`` endpoint and, as its primary address,
a port that refuses connections (where a gRPC server would be), then prints
"ready <port>"; SIGTERM deregisters it and exits. Every request is counted by
"METHOD /path" (``GET /count`` answers the counts and is not counted). ``/drop`` reads
the request and closes the connection without answering; anything else answers JSON
naming this instance, the Host header and the body, after 5 s for ``/slow``, else after
``?delay=`` seconds (0 by default), with 503 for every request when ``--sick``.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict
from urllib.parse import parse_qs, urlsplit

from fyerreg import EtcdRegistry, Instance

COUNTS: Dict[str, int] = collections.Counter()
LOCK = threading.Lock()


def handler(ident: str, sick: bool) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) \
                if "chunked" not in (self.headers.get("Transfer-Encoding") or "") else self.read_chunked()
            url = urlsplit(self.path)
            if url.path == "/count":
                with LOCK:
                    self.reply(200, dict(COUNTS))
                return
            with LOCK:
                COUNTS[f"{self.command} {url.path}"] += 1
            if url.path == "/drop":
                self.close_connection = True
                return
            time.sleep(5 if url.path == "/slow" else float(parse_qs(url.query).get("delay", ["0"])[0]))
            self.reply(503 if sick else 200, {"by": ident, "method": self.command, "host": self.headers["Host"],
                                              "body": body.decode()})

        def read_chunked(self) -> bytes:
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return data
                data += chunk

        def reply(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = answer

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # two dozen callers connect at once: no SYN may wait out a full backlog


def main() -> None:
    etcd, service, version, ident = sys.argv[1:5]
    server = Server(("127.0.0.1", 0), handler(ident, "--sick" in sys.argv))
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
    port = server.server_address[1]
    registry = EtcdRegistry(endpoints=etcd.split(","), ttl=30)
    registry.register(Instance.new(service, version, f"127.0.0.1:{refusing.getsockname()[1]}", id=ident,
                                   endpoints={"http": f"127.0.0.1:{port}"}))
    signal.signal(signal.SIGTERM, lambda *_: (registry.close(), os._exit(0)))  # deregistered: gone at once
    print("ready", port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
