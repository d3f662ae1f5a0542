"""End to end on go-zero's layout: a real fyerreg gRPC server registered through an EtcdRegistry on it is
called by the fyerreg gRPC client (a DiscoveryChannel over a Discovery on another such registry), and the
record between them is what go-zero's subscriber reads: ``<key>/<lease id>`` holding ``host:port``."""

from __future__ import annotations

import uuid
from concurrent import futures

import greeter_pb2_grpc
import grpc
import pytest

from fyerreg.contrib.grpc import DiscoveryChannel, ServerRegistration
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.serving import InstanceSpec
from tests.helpers import no_fyerreg_thread_left, wait_until

from .servers import Greeter, hello

pytestmark = pytest.mark.etcd


def test_a_grpc_server_registered_in_go_zeros_layout_is_called_through_discovery(etcd_endpoints, etcd_client):
    key = f"gz-{uuid.uuid4().hex[:10]}.rpc"
    with no_fyerreg_thread_left("every registry, discovery and server stopped"), \
            EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout="go-zero") as server_registry, \
            EtcdRegistry(endpoints=etcd_endpoints, layout="go-zero") as client_registry:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter("python"), server)
        registration = ServerRegistration(server, server_registry, InstanceSpec(key, address="127.0.0.1:0"),
                                          grace=0.5, deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            registration.start(port)
            assert registration.wait_registered(10)
            [(value, meta)] = list(etcd_client.get_prefix(f"{key}/"))
            assert (meta.key.decode(), value) == (f"{key}/{meta.lease_id:d}", f"127.0.0.1:{port}".encode())

            with Discovery(client_registry) as discovery, DiscoveryChannel(discovery, key) as channel:
                stub = greeter_pb2_grpc.GreeterStub(channel)
                assert [stub.SayHello(hello("x"), timeout=5).message for _ in range(3)] == ["python"] * 3
                assert channel.addresses() == [f"127.0.0.1:{port}"]
        finally:
            registration.stop()
        wait_until(lambda: list(etcd_client.get_prefix(f"{key}/")) == [], message="deregistered at stop")
