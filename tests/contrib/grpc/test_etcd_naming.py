"""End to end on etcd's gRPC naming layout: a real gRPC server registered by ServerRegistration through
an EtcdRegistry on that layout, called by name through DiscoveryChannel over another one.

Its record is what etcd's resolver reads for ``etcd:///<target>`` (``<target>/<id>`` holding
``{"Op":0,"Addr":...}``, lease-bound); a gRPC-Go client dialing it through etcd's resolver is
``test_etcd_naming_go_client.py``.
"""

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
from fyerreg.registry.layouts import EtcdNamingLayout
from fyerreg.serving import InstanceSpec
from tests.helpers import no_fyerreg_thread_left, wait_until

from .servers import Greeter, hello

pytestmark = pytest.mark.etcd


@pytest.fixture
def root(etcd_client: Any) -> Iterator[str]:
    prefix = f"naming-e2e-{uuid.uuid4().hex[:10]}/"
    yield prefix
    etcd_client.delete_prefix(prefix)


def test_a_grpc_server_registered_in_etcd_naming_is_called_by_name(etcd_endpoints: List[str], etcd_client: Any,
                                                                   root: str) -> None:
    with no_fyerreg_thread_left("stop and close"):
        server_side = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=EtcdNamingLayout(root=root))
        client_side = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=EtcdNamingLayout(root=root))
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter("naming-a"), server)
        registration = ServerRegistration(server, server_side, InstanceSpec("greeter", address="127.0.0.1:0"),
                                          grace=1.0, deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        discovery = Discovery(client_side)
        channel = DiscoveryChannel(discovery, "greeter", "1.0.0")
        try:
            registration.start(port)
            assert registration.wait_registered(10)
            [(value, meta)] = list(etcd_client.get_prefix(f"{root}greeter/"))
            record = json.loads(value)
            assert meta.key.decode() == f"{root}greeter/{registration.instance.id}" and meta.lease_id
            assert (record["Op"], record["Addr"]) == (0, f"127.0.0.1:{port}")

            reply = greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("python"), timeout=10)
            assert reply.message == "naming-a"
            assert channel.addresses() == [f"127.0.0.1:{port}"]

            registration.stop()
            wait_until(lambda: client_side.list_services("greeter") == [], timeout=10)
            assert list(etcd_client.get_prefix(f"{root}greeter/")) == []
        finally:
            channel.close()
            discovery.close()
            registration.stop()
            client_side.close()
            server_side.close()
