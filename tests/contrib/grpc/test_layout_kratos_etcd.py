"""End to end in Kratos' layout: a fyerreg gRPC server registers as a Kratos service instance, and the
fyerreg gRPC client calls it and a server registered as Kratos' etcd registry writes it (see
tests/registry/etcd/test_layout_kratos.py for what was read in Kratos' source)."""

from __future__ import annotations

import json
import uuid
from concurrent import futures
from typing import Any, Iterator, List

import greeter_pb2_grpc
import grpc
import pytest

from fyerreg.contrib.grpc import DiscoveryChannel, ServerRegistration
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.registry.layouts import KratosLayout
from fyerreg.serving import InstanceSpec
from tests.helpers import wait_until

from .servers import SERVICE, Greeter, greeters, hello

pytestmark = pytest.mark.etcd


@pytest.fixture
def namespace(etcd_client: Any) -> Iterator[str]:
    ns = f"/kratos-{uuid.uuid4().hex[:10]}"
    yield ns
    etcd_client.delete_prefix(ns + "/")


def test_a_fyerreg_grpc_server_in_kratos_layout_is_called_beside_a_kratos_one(
        etcd_endpoints: List[str], etcd_client: Any, namespace: str) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter("python"), server)
    lease = etcd_client.lease(15)  # as Kratos' Register: a lease of its own for the marshalled instance
    try:
        with EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=KratosLayout(namespace)) as registry, \
                greeters("kratos") as [kratos_server]:
            registration = ServerRegistration(server, registry, InstanceSpec(SERVICE, "1.0.0", address="127.0.0.1:0",
                                                                              drain_delay=0))
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            registration.start(port)
            assert registration.wait_registered(30)
            ours = registration.instance
            raw, meta = etcd_client.get(f"{namespace}/{SERVICE}/{ours.id}")
            record = json.loads(raw)
            assert meta.lease_id and record["endpoints"] == [f"grpc://127.0.0.1:{port}"]
            assert (record["id"], record["name"], record["version"]) == (ours.id, SERVICE, "1.0.0")

            etcd_client.put(f"{namespace}/{SERVICE}/k1", json.dumps(
                {"id": "k1", "name": SERVICE, "version": "1.0.0", "metadata": None,
                 "endpoints": [f"grpc://127.0.0.1:{kratos_server.port}", "http://127.0.0.1:1"]},
                separators=(",", ":")), lease=lease)
            with EtcdRegistry(endpoints=etcd_endpoints, layout=KratosLayout(namespace)) as client_registry, \
                    Discovery(client_registry) as discovery, DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
                stub = greeter_pb2_grpc.GreeterStub(channel)
                answered = {stub.SayHello(hello(f"call-{n}"), timeout=10).message for n in range(6)}
                assert answered == {"python", "kratos"}
                registration.stop()  # deregisters, then stops the server
                assert not etcd_client.get(f"{namespace}/{SERVICE}/{ours.id}")[0]
                wait_until(lambda: [i.id for i in discovery.instances(SERVICE, "1.0.0")] == ["k1"])
                assert {stub.SayHello(hello("after"), timeout=10).message for _ in range(3)} == {"kratos"}
    finally:
        lease.revoke()
        server.stop(0).wait(5)  # stopped already, unless the test failed before
