"""ServerRegistration / AsyncServerRegistration with real grpc servers and the standard health stub:
NOT_SERVING until registered, SERVING while registered, NOT_SERVING as soon as shutdown begins;
deregistered before the server stops serving."""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from typing import Any, List, Optional

import greeter_pb2_grpc
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fyerreg import MemoryRegistry
from fyerreg.contrib.grpc import AsyncServerRegistration, ServerRegistration
from fyerreg.naming import Endpoint
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.serving import InstanceSpec
from tests.helpers import loop_ticks_while, no_fyerreg_thread_left, wait_until

from ..procs import some_thread_inside
from .servers import Greeter, hello

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_of(port: int, service: str = "") -> Optional[int]:
    """The status the server's grpc.health.v1 Check answers (None when the server does not answer)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return int(health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2).status)
        except grpc.RpcError:
            return None


def says_hello(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return bool(greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("x"), timeout=2).message)
        except grpc.RpcError:
            return False


def test_health_follows_the_registration_and_the_server_serves_through_the_drain() -> None:
    with MemoryRegistry() as registry, no_fyerreg_thread_left("stop"):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter("a"), server)
        registration = ServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0",
                                                                         drain_delay=1.0),
                                          grace=1.0, health_services=["greeter.Greeter"], deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        assert health_of(port) == health_of(port, "greeter.Greeter") == NOT_SERVING
        assert registry.list_services("greeter") == []
        registration.start(port)
        assert registration.wait_registered(5)
        [listed] = registry.list_services("greeter")
        assert listed.address == f"127.0.0.1:{port}" and listed.id == registration.instance.id
        assert health_of(port) == health_of(port, "greeter.Greeter") == SERVING

        stopper = threading.Thread(target=registration.stop)
        stopper.start()
        wait_until(lambda: registry.list_services("greeter") == [], timeout=5)
        assert health_of(port) == health_of(port, "greeter.Greeter") == NOT_SERVING
        assert says_hello(port), "deregistered first: the server still serves while clients learn of it"
        stopper.join(10)
        assert not stopper.is_alive()
        assert health_of(port) is None and not says_hello(port)


def test_a_server_never_registered_stops_not_serving() -> None:
    with MemoryRegistry() as registry:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        registration = ServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0"),
                                          grace=0.0, deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        registration.stop()
        assert health_of(port) is None and not registration.registered


def test_a_spec_naming_other_endpoints_registers_its_address_as_the_grpc_one() -> None:
    with MemoryRegistry() as registry:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        spec = InstanceSpec("greeter", address="127.0.0.1:0", drain_delay=0.0, endpoints={"http": ":8080"})
        registration = ServerRegistration(server, registry, spec, grace=0.0, deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        with registration:
            registration.start(port)
            assert registration.wait_registered(5)
            [listed] = registry.list_services("greeter")
        assert dict(listed.endpoints) == {"http": Endpoint("127.0.0.1:8080"), "grpc": Endpoint(f"127.0.0.1:{port}")}


def test_an_aio_server_has_the_same_lifecycle() -> None:
    async def run(registry: MemoryRegistry) -> List[Any]:
        seen: List[Any] = []
        server = grpc.aio.server()
        registration = AsyncServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0",
                                                                              drain_delay=0.5),
                                               grace=1.0, deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        seen.append(await asyncio.to_thread(health_of, port))
        await registration.start(port)
        await asyncio.to_thread(wait_until, lambda: registration.registered, 5)
        await asyncio.to_thread(wait_until, lambda: health_of(port) == SERVING, 5)
        seen.append([i.address for i in registry.list_services("greeter")])
        stopping = asyncio.ensure_future(registration.stop())
        await asyncio.to_thread(wait_until, lambda: registry.list_services("greeter") == [], 5)
        seen.append(await asyncio.to_thread(health_of, port))
        seen.append(await loop_ticks_while(stopping))
        seen.append(await asyncio.to_thread(health_of, port))
        return [port, *seen]

    with MemoryRegistry() as registry, no_fyerreg_thread_left("stop"):
        port, before, listed, stopping, ticks, after = asyncio.run(run(registry))
    assert before == NOT_SERVING and listed == [f"127.0.0.1:{port}"] and stopping == NOT_SERVING
    assert ticks >= 10, "the drain ran in a thread: the loop went on"
    assert after is None


@pytest.mark.etcd
def test_an_aio_server_on_a_hung_etcd_never_blocks_the_loop(etcd_server: Any) -> None:
    registry = EtcdRegistry(endpoints=etcd_server.endpoints, dial_timeout=1.0)

    async def run() -> int:
        server = grpc.aio.server()
        registration = AsyncServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0"),
                                               grace=0.0, deregister_at_exit=False, timeout=1.0)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        etcd_server.pause()
        await registration.start(port)
        await asyncio.to_thread(wait_until, lambda: some_thread_inside("register"), 5)  # the attempt hangs
        return await loop_ticks_while(registration.stop())

    with no_fyerreg_thread_left("stop, then the registry's close"):
        try:
            ticks = asyncio.run(run())
        finally:
            etcd_server.resume()
            registry.close()
    assert ticks >= 50, "the registration in flight was waited for in a thread"


def test_bad_arguments_are_refused_before_the_server_is_touched() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    with MemoryRegistry() as registry:
        with pytest.raises(TypeError, match="registry"):
            ServerRegistration(server, object(), InstanceSpec("greeter"))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="spec"):
            ServerRegistration(server, registry, "greeter")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="health_services"):
            ServerRegistration(server, registry, InstanceSpec("greeter"), health_services="greeter.Greeter")
        with pytest.raises(ValueError, match="grace"):
            ServerRegistration(server, registry, InstanceSpec("greeter"), grace=-1.0)
    server.stop(0)
