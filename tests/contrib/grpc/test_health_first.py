"""The gRPC health service is the probe of a gRPC server: it answers NOT_SERVING before the
deregistration begins, for the threaded and the asyncio server (what a load balancer's gRPC health
check needs to see first on SIGTERM)."""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from typing import List, Optional, Tuple

import grpc
import pytest

from fyerreg import MemoryRegistry
from fyerreg.contrib.grpc import AsyncServerRegistration, ServerRegistration
from fyerreg.naming import Instance
from fyerreg.serving import InstanceSpec
from tests.helpers import no_fyerreg_thread_left, wait_until

from .test_server import NOT_SERVING, SERVING, health_of


class WatchedRegistry(MemoryRegistry):
    """A MemoryRegistry noting, as each deregistration begins, what the server's health service answers."""

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.at_deregister: List[Tuple[Optional[int], List[str]]] = []

    def deregister(self, instance: Instance, timeout: Optional[float] = None) -> None:
        listed = [i.address for i in self.list_services(instance.service)]
        self.at_deregister.append((health_of(self.port), listed))
        super().deregister(instance, timeout=timeout)


def test_a_threaded_grpc_server_is_not_serving_before_its_record_is_removed() -> None:
    with WatchedRegistry() as registry, no_fyerreg_thread_left("stop"):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        registration = ServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0",
                                                                         drain_delay=0.2),
                                          grace=1.0, deregister_at_exit=False)
        registry.port = port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        registration.start(port)
        wait_until(lambda: health_of(port) == SERVING, timeout=10)
        registration.stop()
    assert registry.at_deregister == [(NOT_SERVING, [f"127.0.0.1:{port}"])]


def test_an_aio_grpc_server_is_not_serving_before_its_record_is_removed() -> None:
    async def run(registry: WatchedRegistry) -> int:
        server = grpc.aio.server()
        registration = AsyncServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0",
                                                                              drain_delay=0.2),
                                               grace=1.0, deregister_at_exit=False)
        registry.port = port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await registration.start(port)
        await asyncio.to_thread(wait_until, lambda: health_of(port) == SERVING, 10)
        await registration.stop()
        return port

    with WatchedRegistry() as registry, no_fyerreg_thread_left("stop"):
        port = asyncio.run(run(registry))
    assert registry.at_deregister == [(NOT_SERVING, [f"127.0.0.1:{port}"])]


def test_unready_delay_keeps_the_record_while_the_health_service_already_says_not_serving() -> None:
    with WatchedRegistry() as registry, no_fyerreg_thread_left("stop"):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        registration = ServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0",
                                                                         drain_delay=0.0),
                                          grace=1.0, deregister_at_exit=False, unready_delay=1.5)
        registry.port = port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        registration.start(port)
        wait_until(lambda: health_of(port) == SERVING, timeout=10)
        stopper = threading.Thread(target=registration.stop)
        stopper.start()
        try:
            wait_until(lambda: health_of(port) == NOT_SERVING, timeout=5)
            # A health check polling now sees NOT_SERVING while clients still find the record.
            assert [i.address for i in registry.list_services("greeter")] == [f"127.0.0.1:{port}"]
            assert registry.at_deregister == []
        finally:
            stopper.join(10)
    assert registry.at_deregister == [(NOT_SERVING, [f"127.0.0.1:{port}"])]


def test_unready_delay_is_validated() -> None:
    with MemoryRegistry() as registry:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        with pytest.raises(ValueError, match="unready_delay"):
            ServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0"), unready_delay=-1)
