"""Call grpc-greeter through discovery: the generated stub on a DiscoveryChannel.

    python examples/grpc_greeter_client.py [--etcd 127.0.0.1:2379] [--count 4] [--aio]

Each call goes to an instance picked through discovery; SayHello is idempotent, so a call
an instance dropped is sent to another one.
"""

from __future__ import annotations

import argparse
import asyncio

import greeter_pb2
import greeter_pb2_grpc

from fyerreg.contrib.grpc import AsyncDiscoveryChannel, DiscoveryChannel
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry

IDEMPOTENT = {"/greeter.Greeter/SayHello"}


def call(discovery: Discovery, count: int) -> None:
    with DiscoveryChannel(discovery, "grpc-greeter", "1.0.0", idempotent_methods=IDEMPOTENT) as channel:
        stub = greeter_pb2_grpc.GreeterStub(channel)
        for i in range(count):
            reply = stub.SayHello(greeter_pb2.HelloRequest(name=f"request-{i}"), timeout=5)
            print(reply.message, flush=True)
        for reply in stub.SayHelloStream(greeter_pb2.HelloRequest(name="stream", count=2), timeout=5):
            print(reply.message, flush=True)


async def call_aio(discovery: Discovery, count: int) -> None:
    async with AsyncDiscoveryChannel(discovery, "grpc-greeter", "1.0.0", idempotent_methods=IDEMPOTENT) as channel:
        stub = greeter_pb2_grpc.GreeterStub(channel)
        replies = await asyncio.gather(*(stub.SayHello(greeter_pb2.HelloRequest(name=f"request-{i}"), timeout=5)
                                         for i in range(count)))
        for reply in replies:
            print(reply.message, flush=True)
        async for reply in stub.SayHelloStream(greeter_pb2.HelloRequest(name="stream", count=2), timeout=5):
            print(reply.message, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", default="127.0.0.1:2379")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--aio", action="store_true", help="call with grpc.aio")
    args = parser.parse_args()

    with EtcdRegistry(endpoints=args.etcd.split(",")) as registry, Discovery(registry) as discovery:
        if args.aio:
            asyncio.run(call_aio(discovery, args.count))
        else:
            call(discovery, args.count)


if __name__ == "__main__":
    main()
