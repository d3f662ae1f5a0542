"""Helpers of the contrib tests: example programs run as processes, the records they leave in etcd."""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from fyerreg.testing import make_certificates
from tests.helpers import Proc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def python(*args: str, **kw: Any) -> Proc:
    return Proc([sys.executable, *args], **kw)


def instances(etcd_client: Any, service: str) -> List[Dict[str, Any]]:
    """The records of ``service`` in etcd, read raw (Go fyer-rpc's key layout)."""
    return [json.loads(value) for value, _ in etcd_client.get_prefix(f"/fyerrpc/services/{service}/")]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def ask_concurrently(ask: Callable[[], None], times: int = 4) -> None:
    """Run ``ask`` in ``times`` threads at once: with gunicorn's sync workers, a busy worker leaves
    some requests to the others (sequential requests may all land on one worker)."""
    askers = [threading.Thread(target=ask) for _ in range(times)]
    for t in askers:
        t.start()
    for t in askers:
        t.join(30)


def some_thread_inside(function: str) -> bool:
    """True while some thread of this process runs ``function`` (anywhere in its stack)."""
    for frame in sys._current_frames().values():
        walk: Optional[FrameType] = frame
        while walk is not None:
            if walk.f_code.co_name == function:
                return True
            walk = walk.f_back
    return False



@contextlib.contextmanager
def serve_https(directory: str) -> Iterator[Tuple[str, str]]:
    """A local HTTPS server (threads of this process) answering ``{"tls": true}`` to every GET:
    yields its address and the file of the CA that signed its certificate."""
    certs = make_certificates(directory)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"tls": isinstance(self.connection, ssl.SSLSocket)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", certs.ca
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
