"""api.Client against real Servers found through a MemoryRegistry and Discovery."""

from __future__ import annotations

import socket
import threading
from typing import Dict, Iterator, List, Tuple

import pytest

from fyerreg import MemoryRegistry, NoInstanceAvailableError
from fyerreg.api import (
    CallConnectionError,
    CallTimeoutError,
    Client,
    ClientOptions,
    RemoteError,
    Server,
    ServerOptions,
)
from fyerreg.discovery import Discovery
from tests.helpers import fyerreg_threads, wait_until

from .fakes import fake_instance, read_request
from .services import GreeterService, HelloRequest, HelloResponse

SERVICE = "greeter-service"


class Cluster:
    """Greeter servers registered in one MemoryRegistry, and clients calling them."""

    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.discovery = Discovery(self.registry, balancer="round_robin")
        self.servers: List[Server] = []
        self.clients: List[Client] = []

    def serve(self, label: str, *, registered_by_server: bool = True) -> Tuple[Server, GreeterService]:
        """Start a greeter. With ``registered_by_server`` False it is registered on its behalf, so that
        stopping it leaves a dead instance in the registry (as a SIGKILLed process does until its lease ends)."""
        service = GreeterService(label)
        server = Server(ServerOptions(address="127.0.0.1:0", enable_registry=registered_by_server,
                                      registry=self.registry, service_name=SERVICE, drain_delay=0.05))
        server.register(service)
        server.start()
        if not registered_by_server:
            assert server.instance is not None
            self.registry.register(server.instance.replace(service=SERVICE))
        self.servers.append(server)
        return server, service

    def client(self, **options: object) -> Client:
        client = Client(ClientOptions(discovery=self.discovery, service_name=SERVICE,  # type: ignore[arg-type]
                                      **options))
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop(grace=2)
        self.discovery.close()
        self.registry.close()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.close()
    assert fyerreg_threads() == []


def test_call_with_dataclasses_in_and_out(cluster: Cluster) -> None:
    cluster.serve("a")
    client = cluster.client()
    reply = client.call("GreeterService", "SayHello", HelloRequest(name="World"), response_type=HelloResponse)
    assert reply == HelloResponse(message="Hello World", answered_by="a")
    assert client.call("GreeterService", "SayHello", {"name": "dict"}) == {"message": "Hello dict",
                                                                           "answered_by": "a"}


def test_remote_errors_carry_type_message_and_status(cluster: Cluster) -> None:
    server, _ = cluster.serve("a")
    client = cluster.client()
    with pytest.raises(RemoteError) as err:
        client.call("GreeterService", "Fail", {"key": "user-42"})
    assert (err.value.remote_type, err.value.remote_message, err.value.status) == ("KeyError", "'user-42'", 500)
    assert server.instance is not None and err.value.address == server.instance.address
    with pytest.raises(RemoteError) as err:
        client.call("GreeterService", "Nope", {})
    assert (err.value.remote_type, err.value.status) == ("MethodNotFound", 404)
    with pytest.raises(RemoteError) as err:
        client.call("GreeterService", "SayHello", {"nom": "x"})
    assert (err.value.remote_type, err.value.status) == ("BadRequest", 400)


def test_timeout_bounds_the_call(cluster: Cluster) -> None:
    _, service = cluster.serve("a")
    service.release.clear()
    client = cluster.client(timeout=0.3)
    with pytest.raises(CallTimeoutError):
        client.call("GreeterService", "Block", {})
    service.release.set()
    assert client.call("GreeterService", "SayHello", {"name": "after"})["message"] == "Hello after"


def test_no_instance(cluster: Cluster) -> None:
    with pytest.raises(NoInstanceAvailableError, match=SERVICE):
        cluster.client().call("GreeterService", "SayHello", {"name": "x"})


def test_failover_when_an_instance_dies_mid_run_loses_no_call(cluster: Cluster) -> None:
    doomed, _ = cluster.serve("doomed", registered_by_server=False)
    cluster.serve("b")
    cluster.serve("c")
    client = cluster.client(retries=2, idempotent_methods={"GreeterService.SayHello"})
    answers: Dict[str, int] = {}
    failures: List[BaseException] = []
    lock = threading.Lock()
    halfway = threading.Event()

    def caller(n: int) -> None:
        for i in range(150):
            if n == 0 and i == 50:
                halfway.set()
            try:
                who = client.call("GreeterService", "SayHello", {"name": str(i)})["answered_by"]
            except Exception as exc:
                failures.append(exc)
                continue
            with lock:
                answers[who] = answers.get(who, 0) + 1

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    assert halfway.wait(30)
    doomed.stop(grace=0)  # gone, but still registered: clients find a dead port
    for t in threads:
        t.join(60)
    assert failures == []
    assert sum(answers.values()) == 600
    assert answers["doomed"] > 0 and answers["b"] > 0 and answers["c"] > 0
    assert client.stats()["counters"]["retries"] >= 1


def test_a_broken_connection_after_sending_is_retried_only_for_idempotent_methods(cluster: Cluster) -> None:
    # Reads the request, then hangs up.
    _, fake, hung_up = fake_instance(cluster.registry, SERVICE, read_request, connections=2)
    with pytest.raises(CallConnectionError, match="idempotent"):
        cluster.client(retries=2).call("GreeterService", "SayHello", {"name": "x"})
    assert hung_up.acquire(timeout=10)
    cluster.serve("b")
    client = cluster.client(retries=2)
    # Round robin over the fake and b: within two calls one is sent to the fake, and retried on b.
    answers = [client.call("GreeterService", "SayHello", {"name": "x"}, idempotent=True)["answered_by"]
               for _ in range(2)]
    assert answers == ["b", "b"]
    assert hung_up.acquire(timeout=10)
    fake.join(10)


def test_a_refused_connection_is_retried_elsewhere_even_when_not_idempotent(cluster: Cluster) -> None:
    dead, _ = cluster.serve("dead", registered_by_server=False)
    cluster.serve("b")
    dead.stop(grace=0)
    client = cluster.client(retries=1)
    assert [client.call("GreeterService", "SayHello", {"name": "x"})["answered_by"] for _ in range(4)] == ["b"] * 4


def test_every_attempt_refused_is_a_call_connection_error(cluster: Cluster) -> None:
    for label in ("x", "y"):
        dead, _ = cluster.serve(label, registered_by_server=False)
        dead.stop(grace=0)
    with pytest.raises(CallConnectionError, match="attempts failed"):
        cluster.client(retries=3).call("GreeterService", "SayHello", {"name": "x"})


def test_a_pooled_connection_the_peer_closed_is_detected_before_reuse(cluster: Cluster) -> None:
    def answer_then_hang_up(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n"
                     b'"answer"')  # a keep-alive response; then the peer closes the idle connection

    _, fake, closed = fake_instance(cluster.registry, SERVICE, answer_then_hang_up, connections=2)
    client = cluster.client(retries=0)
    assert client.call("GreeterService", "SayHello", {"name": "x"}) == "answer"
    assert closed.acquire(timeout=10)
    assert client.stats()["gauges"]["idle_connections"] == 1
    # Sent on the dead pooled connection, the request would be lost, and with retries=0 the call would fail.
    assert client.call("GreeterService", "SayHello", {"name": "x"}) == "answer"
    assert client.stats()["counters"]["retries"] == 0
    fake.join(10)


def test_pool_is_bounded_and_reused(cluster: Cluster) -> None:
    cluster.serve("a")
    client = cluster.client(pool_size=2)
    threads = [threading.Thread(target=client.call, args=("GreeterService", "SayHello", {"name": str(i)}))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert 1 <= client.stats()["gauges"]["idle_connections"] <= 2
    for _ in range(5):
        client.call("GreeterService", "SayHello", {"name": "seq"})
    assert client.stats()["gauges"]["idle_connections"] <= 2


def test_idle_connections_to_instances_no_longer_called_are_closed(cluster: Cluster) -> None:
    gone, _ = cluster.serve("gone")
    client = cluster.client(max_idle=0.05)
    client.call("GreeterService", "SayHello", {"name": "x"})
    assert client.stats()["gauges"]["idle_connections"] == 1
    gone.stop(grace=1)  # deregistered: never picked again, its pooled connection must not linger
    cluster.serve("b")
    wait_until(lambda: client.call("GreeterService", "SayHello", {"name": "x"})["answered_by"] == "b"
               and client.stats()["gauges"]["idle_connections"] == 1, timeout=10)
