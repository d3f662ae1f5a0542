"""Instances that misbehave at the TCP level, for failover tests."""

from __future__ import annotations

import socket
import threading
from typing import Callable, Tuple

from fyerreg import Instance, Registry


def fake_instance(
    registry: Registry, service: str, handler: Callable[[socket.socket], None], connections: int = 1
) -> Tuple[Instance, threading.Thread, threading.Semaphore]:
    """Register in ``registry`` a raw TCP listener handling ``connections`` connections with ``handler``, one at a time.

    The semaphore is released each time a handled connection has been closed.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    closed = threading.Semaphore(0)

    def run() -> None:
        with listener:
            for _ in range(connections):
                conn, _ = listener.accept()
                with conn:
                    handler(conn)
                closed.release()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    inst = Instance.new(service, "1.0.0", f"127.0.0.1:{port}", id="0-fake")
    registry.register(inst)
    return inst, thread, closed


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int({k.strip().lower(): v for k, v in headers.items()}.get(b"content-length", b"0"))
    while len(body) < length:
        body += conn.recv(65536)
    return data
