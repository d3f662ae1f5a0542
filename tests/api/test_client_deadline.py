"""api.Client against instances that answer too slowly or too much: the timeout is a deadline, the size capped."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Iterator, Tuple

import pytest

from fyerreg import MemoryRegistry
from fyerreg.api import CallTimeoutError, Client, ClientOptions, RemoteError, Server, ServerOptions
from fyerreg.discovery import Discovery
from tests.helpers import fyerreg_threads

from .fakes import fake_instance, read_request
from .services import GreeterService

SERVICE = "greeter-service"
STEP = 0.3  # seconds between two bytes of a trickled answer


class Env:
    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.discovery = Discovery(self.registry)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def instance(self, handler: Callable[[socket.socket], None]) -> None:
        _, thread, _ = fake_instance(self.registry, SERVICE, handler)
        self.threads.append(thread)

    def trickle(self, head: bytes, body: bytes = b"") -> Callable[[socket.socket], None]:
        """A handler sending ``head`` at once, then ``body`` one byte per STEP (``head`` too when ``body`` is empty)."""
        def handle(conn: socket.socket) -> None:
            read_request(conn)
            at_once, slowly = (head, body) if body else (b"", head)
            try:
                conn.sendall(at_once)
                for i in range(len(slowly)):
                    if self.stop.wait(STEP):
                        return
                    conn.sendall(slowly[i:i + 1])
            except OSError:  # the client gave up and closed
                pass
        return handle

    def client(self, **options: object) -> Client:
        return Client(ClientOptions(discovery=self.discovery, service_name=SERVICE,  # type: ignore[arg-type]
                                    **options))

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.discovery.close()
        self.registry.close()


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.close()
    assert fyerreg_threads() == []


def timed_call(client: Client) -> Tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(Exception) as err:
        client.call("GreeterService", "SayHello", {"name": "x"})
    return err.value, time.monotonic() - start


def test_a_body_trickled_byte_by_byte_times_out_within_the_timeout(env: Env) -> None:
    body = b'{"message": "' + b"x" * 40 + b'"}'
    env.instance(env.trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body), body))
    with env.client(timeout=2, retries=0) as client:
        error, took = timed_call(client)
    assert isinstance(error, CallTimeoutError), repr(error)
    assert took < 2 + 1.5, f"the call took {took:.1f}s with timeout=2"
    assert client.stats()["counters"]["timeouts"] == 1


def test_a_status_line_and_headers_trickled_byte_by_byte_time_out_within_the_timeout(env: Env) -> None:
    env.instance(env.trickle(b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 40 + b"\r\nContent-Length: 2\r\n\r\n{}"))
    with env.client(timeout=2, retries=0) as client:
        error, took = timed_call(client)
    assert isinstance(error, CallTimeoutError), repr(error)
    assert took < 2 + 1.5, f"the call took {took:.1f}s with timeout=2"


def test_an_answer_announcing_more_than_max_response_is_refused_without_reading_it(env: Env) -> None:
    env.instance(env.trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n", b"{"))
    with env.client(timeout=5, retries=0, max_response=1024 * 1024) as client:
        error, took = timed_call(client)
    assert isinstance(error, RemoteError), repr(error)
    assert error.remote_type == "ResponseTooLarge" and "max_response=1048576" in str(error)
    assert took < 2.5


def test_an_answer_without_length_growing_past_max_response_is_refused(env: Env) -> None:
    def flood(conn: socket.socket) -> None:
        read_request(conn)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b" " * (3 * 1024 * 1024))
        except OSError:  # refused part way: the client closed
            pass

    env.instance(flood)
    with env.client(timeout=5, retries=0, max_response=1024 * 1024) as client:
        error, _ = timed_call(client)
    assert isinstance(error, RemoteError) and error.remote_type == "ResponseTooLarge", repr(error)


def test_answers_within_max_response_and_keep_alive_still_work() -> None:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=registry,
                                      service_name=SERVICE, drain_delay=0))
        server.register(GreeterService("a"))
        with server, Client(ClientOptions(discovery=discovery, service_name=SERVICE, max_response=64)) as client:
            for _ in range(3):
                assert client.call("GreeterService", "SayHello", {"name": "x"})["message"] == "Hello x"
            assert client.stats()["gauges"]["idle_connections"] == 1
            with pytest.raises(RemoteError, match="ResponseTooLarge"):
                client.call("GreeterService", "SayHello", {"name": "x" * 100})


def test_max_response_must_be_a_positive_int() -> None:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="max_response"):
                ClientOptions(discovery=discovery, service_name=SERVICE, max_response=bad)  # type: ignore[arg-type]
