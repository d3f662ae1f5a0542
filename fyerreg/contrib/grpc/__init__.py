"""gRPC with fyerreg: register a ``grpc.server`` with its health service, and call a service
through a channel that picks an instance per call.

Server side, after the server has started on its port::

    registration = ServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0"))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    registration.start(port)      # registered; grpc.health.v1 says SERVING
    ...
    registration.stop(grace=5.0)  # NOT_SERVING, deregister, drain, then server.stop(grace)

Client side, the channel argument of any generated stub::

    with DiscoveryChannel(discovery, "greeter", "1.0.0") as channel:
        reply = GreeterStub(channel).SayHello(HelloRequest(name="you"), timeout=5)

``AsyncServerRegistration`` and ``AsyncDiscoveryChannel`` are the ``grpc.aio`` forms. Needs
the ``grpc`` extra (``grpcio-health-checking``).
"""

from __future__ import annotations

from ._aio import AsyncDiscoveryChannel
from ._channel import DiscoveryChannel
from ._server import AsyncServerRegistration, ServerRegistration
from ._status import INSTANCE_FAILURES, NoInstanceError, undelivered

__all__ = [
    "DiscoveryChannel",
    "AsyncDiscoveryChannel",
    "ServerRegistration",
    "AsyncServerRegistration",
    "NoInstanceError",
    "INSTANCE_FAILURES",
    "undelivered",
]
