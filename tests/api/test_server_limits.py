"""api.Server against many and slow clients: connections are capped, requests must arrive in time."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Callable, Iterator, List

import pytest

from fyerreg import MemoryRegistry
from fyerreg.api import Client, ClientOptions, Server, ServerOptions
from fyerreg.discovery import Discovery
from fyerreg.serving.address import split_host_port
from tests.helpers import fyerreg_threads, wait_until

from .services import GreeterService

STEP = 0.2  # seconds between two trickled bytes


def start(greeter: GreeterService, **options: object) -> Server:
    srv = Server(ServerOptions(address="127.0.0.1:0", **options))  # type: ignore[arg-type]
    srv.register(greeter)
    srv.start()
    return srv


def open_socket(srv: Server) -> socket.socket:
    sock = socket.create_connection(split_host_port(srv.address or "", field="address"), timeout=10)
    return sock


def conn_threads() -> List[str]:
    return [name for name in fyerreg_threads() if name.endswith("-conn")]


def closed_after(sock: socket.socket) -> float:
    """Seconds until the server ends the connection (what it sent first is skipped)."""
    start_at = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start_at


def highest_within(window: float, value: Callable[[], int]) -> int:
    """The highest ``value()`` seen polling it for ``window`` seconds: an invariant checked over time."""
    end = time.monotonic() + window
    highest = value()
    while time.monotonic() < end:
        time.sleep(0.01)
        highest = max(highest, value())
    return highest


class Trickler:
    """Sends ``data`` on ``sock`` one byte per STEP from a thread, until done, stopped or refused."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(sock, data), daemon=True)
        self.thread.start()

    def _run(self, sock: socket.socket, data: bytes) -> None:
        try:
            for i in range(len(data)):
                if self.stop.wait(STEP):
                    return
                sock.sendall(data[i:i + 1])
        except OSError:  # the server closed the connection
            pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def greeter() -> Iterator[GreeterService]:
    service = GreeterService("g")
    yield service
    service.release.set()
    assert not fyerreg_threads()


def test_connections_beyond_max_connections_wait_in_the_backlog_and_are_served_later(
    greeter: GreeterService,
) -> None:
    greeter.release.clear()
    srv = start(greeter, max_connections=8)
    host, port = split_host_port(srv.address or "", field="address")
    answers: List[object] = []
    sent = threading.Semaphore(0)

    def call() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("POST", "/GreeterService/Block", body=b"{}")
            sent.release()
            answers.append(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    callers = [threading.Thread(target=call) for _ in range(20)]
    try:
        for thread in callers:
            thread.start()
        for _ in callers:
            assert sent.acquire(timeout=10)
        wait_until(lambda: greeter.calls >= 8, message="8 calls in flight")
        # Every request was sent: an uncapped server takes them all within milliseconds.
        assert highest_within(0.5, lambda: max(greeter.calls, len(conn_threads()))) == 8
    finally:
        greeter.release.set()
        for thread in callers:
            thread.join(30)
        srv.stop(grace=2)
    assert answers == ["g"] * 20


def test_a_request_head_trickled_byte_by_byte_is_cut_off_after_request_timeout(greeter: GreeterService) -> None:
    srv = start(greeter, request_timeout=1)
    sock = open_socket(srv)
    sock.sendall(b"POST /GreeterService/SayHello HTTP/1.1\r\n")
    trickler = Trickler(sock, b"X-Padding: " + b"p" * 200 + b"\r\n\r\n")
    try:
        took = closed_after(sock)
    finally:
        trickler.close()
        sock.close()
        srv.stop(grace=2)
    assert took < 1 + 1.5, f"the connection lasted {took:.1f}s with request_timeout=1"


def test_a_request_body_trickled_byte_by_byte_gets_a_408_after_request_timeout(greeter: GreeterService) -> None:
    srv = start(greeter, request_timeout=1)
    sock = open_socket(srv)
    sock.sendall(b"POST /GreeterService/SayHello HTTP/1.1\r\nContent-Length: 200\r\n\r\n")
    trickler = Trickler(sock, b'{"name": "' + b"n" * 188 + b'"}')
    try:
        start_at = time.monotonic()
        first = sock.recv(65536)
        took = time.monotonic() - start_at
    finally:
        trickler.close()
        sock.close()
        srv.stop(grace=2)
    assert first.startswith(b"HTTP/1.1 408 "), first[:100]
    assert took < 1 + 1.5, f"answered after {took:.1f}s with request_timeout=1"


def test_a_connection_that_sends_nothing_is_closed_after_request_timeout(greeter: GreeterService) -> None:
    srv = start(greeter, request_timeout=1, idle_timeout=60)
    sock = open_socket(srv)
    try:
        took = closed_after(sock)
    finally:
        sock.close()
        srv.stop(grace=2)
    assert took < 1 + 1.5, f"the connection lasted {took:.1f}s with request_timeout=1"


def test_a_kept_alive_connection_waits_idle_timeout_not_request_timeout(greeter: GreeterService) -> None:
    srv = start(greeter, request_timeout=0.3, idle_timeout=60)
    host, port = split_host_port(srv.address or "", field="address")
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for _ in range(2):
            conn.request("POST", "/GreeterService/SayHello", body=b'{"name": "x"}')
            assert conn.getresponse().read()
            time.sleep(0.6)  # idle for longer than request_timeout: the scenario, not a synchronisation
        assert conn.sock is not None
    finally:
        conn.close()
        srv.stop(grace=2)


def test_slots_held_by_half_sent_heads_free_up_after_request_timeout() -> None:
    greeter = GreeterService("g")
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        srv = start(greeter, max_connections=8, request_timeout=1, enable_registry=True, registry=registry,
                    service_name="greeter-service", drain_delay=0)
        socks = [open_socket(srv) for _ in range(20)]
        try:
            for sock in socks:
                sock.sendall(b"POST /GreeterService/SayHello HTTP/1.1\r\nContent-")
            wait_until(lambda: len(conn_threads()) == 8, message="8 connections served")
            with Client(ClientOptions(discovery=discovery, service_name="greeter-service", timeout=15)) as client:
                reply = client.call("GreeterService", "SayHello", {"name": "x"})
            assert reply["message"] == "Hello x"
            assert len(conn_threads()) <= 8
        finally:
            for sock in socks:
                sock.close()
            srv.stop(grace=2)
    assert not fyerreg_threads()


def test_stop_at_the_connection_cap_returns_within_grace_and_leaves_no_thread(greeter: GreeterService) -> None:
    srv = start(greeter, max_connections=2, request_timeout=30)
    socks = [open_socket(srv) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(b"POST /GreeterService/SayHello HTTP/1.1\r\n")
        wait_until(lambda: len(conn_threads()) == 2, message="2 connections served")
        start_at = time.monotonic()
        srv.stop(grace=2)
        took = time.monotonic() - start_at
    finally:
        for sock in socks:
            sock.close()
    assert took < 2 + 1.5, f"stop took {took:.1f}s"
    assert not fyerreg_threads()


@pytest.mark.parametrize("field, value", [("max_connections", 0), ("max_connections", 2.5),
                                          ("request_timeout", 0), ("request_timeout", -1)])
def test_limits_are_validated_naming_the_option(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ServerOptions(**{field: value})  # type: ignore[arg-type]


def refuses_connections(srv_address: str) -> bool:
    try:
        socket.create_connection(split_host_port(srv_address, field="address"), timeout=1).close()
    except OSError:
        return True
    return False


def test_stop_lets_a_request_whose_body_is_still_arriving_finish_within_grace(greeter: GreeterService) -> None:
    srv = start(greeter)
    address = srv.address or ""
    body = json.dumps({"name": "late"}).encode()
    sock = open_socket(srv)
    sock.sendall(b"POST /GreeterService/SayHello HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5])
    wait_until(lambda: len(conn_threads()) == 1, message="the connection is served")
    stopper = threading.Thread(target=srv.stop, kwargs={"grace": 5})
    stopper.start()
    try:
        wait_until(lambda: refuses_connections(address), message="stop() closed the listener")
        sock.sendall(body[5:])
        answer = sock.recv(65536)
    finally:
        sock.close()
        stopper.join(10)
    # Answered in full, not as a request cut short by the stop: "expected a JSON object" for half a body.
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert b"Connection: close" in answer and greeter.calls == 1


def test_a_body_the_stop_cuts_off_is_not_answered_from_the_part_that_came(greeter: GreeterService) -> None:
    srv = start(greeter)
    sock = open_socket(srv)
    sock.sendall(b"POST /GreeterService/SayHello HTTP/1.1\r\nContent-Length: 200\r\n\r\n" + b'{"name": "')
    wait_until(lambda: len(conn_threads()) == 1, message="the connection is served")
    try:
        srv.stop(grace=0)  # the rest of the body never comes: cut off once the (1 s) close is over
        answer = sock.recv(65536)
    finally:
        sock.close()
    # A hang-up, which a client reads as a call broken after sending (retried where idempotent),
    # rather than a 400 about a body the client never sent.
    assert answer == b"", answer[:200]
    assert greeter.calls == 0 and not fyerreg_threads()
