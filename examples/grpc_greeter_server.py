"""A gRPC Greeter (examples/protos/greeter.proto) registered in etcd, with the standard health service.

    python examples/grpc_greeter_server.py --name a [--port 0] [--etcd 127.0.0.1:2379] [--ttl 5] [--aio]

It registers "grpc-greeter" 1.0.0 once it serves (grpc.health.v1 then says SERVING) and
prints "greeter a serving and registered at HOST:PORT". On SIGTERM or Ctrl-C it says
NOT_SERVING, deregisters, keeps serving for the drain delay, lets the calls in flight
finish, then stops. ``--aio`` serves the same with grpc.aio.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent import futures
from typing import Iterator

import greeter_pb2
import greeter_pb2_grpc
import grpc

from fyerreg.contrib.grpc import AsyncServerRegistration, ServerRegistration
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.serving import InstanceSpec


class Greeter(greeter_pb2_grpc.GreeterServicer):
    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.delay = delay

    def SayHello(self, request: greeter_pb2.HelloRequest, context: grpc.ServicerContext) -> greeter_pb2.HelloReply:
        time.sleep(self.delay)
        return greeter_pb2.HelloReply(message=f"Hello {request.name}, from greeter {self.name}")

    def SayHelloStream(self, request: greeter_pb2.HelloRequest,
                       context: grpc.ServicerContext) -> Iterator[greeter_pb2.HelloReply]:
        for n in range(request.count):
            yield greeter_pb2.HelloReply(message=f"Hello {request.name} #{n}, from greeter {self.name}")


class AsyncGreeter(greeter_pb2_grpc.GreeterServicer):
    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.delay = delay

    async def SayHello(self, request: greeter_pb2.HelloRequest, context: object) -> greeter_pb2.HelloReply:
        await asyncio.sleep(self.delay)
        return greeter_pb2.HelloReply(message=f"Hello {request.name}, from greeter {self.name}")

    async def SayHelloStream(self, request: greeter_pb2.HelloRequest, context: object):  # type: ignore[no-untyped-def]
        for n in range(request.count):
            yield greeter_pb2.HelloReply(message=f"Hello {request.name} #{n}, from greeter {self.name}")


def spec(args: argparse.Namespace) -> InstanceSpec:
    return InstanceSpec("grpc-greeter", "1.0.0", address=f"127.0.0.1:{args.port}", drain_delay=args.drain,
                        metadata={"name": args.name})


def serve(args: argparse.Namespace, registry: EtcdRegistry) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(args.name, args.delay), server)
    registration = ServerRegistration(server, registry, spec(args), grace=5.0,
                                      health_services=["greeter.Greeter"], handle_signals=True)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    registration.start(port)  # registers once the port answers; health turns SERVING
    registration.wait_registered(30)
    print(f"greeter {args.name} serving and registered at {registration.instance.address}", flush=True)
    try:
        server.wait_for_termination()  # SIGTERM stops it as described above, then ends the process
    except KeyboardInterrupt:  # Ctrl-C: stopped the same way, then Python's own SIGINT handling
        print(f"greeter {args.name} stopped", flush=True)


async def serve_aio(args: argparse.Namespace, registry: EtcdRegistry) -> None:
    server = grpc.aio.server()
    greeter_pb2_grpc.add_GreeterServicer_to_server(AsyncGreeter(args.name, args.delay), server)
    registration = AsyncServerRegistration(server, registry, spec(args), grace=5.0,
                                           health_services=["greeter.Greeter"], handle_signals=True)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    await registration.start(port)
    while not registration.registered:  # the registry calls run in a thread: the loop goes on serving
        await asyncio.sleep(0.02)
    print(f"greeter {args.name} serving and registered at {registration.instance.address}", flush=True)
    await server.wait_for_termination()  # returns once a SIGTERM/SIGINT has stopped it
    print(f"greeter {args.name} stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--name", default="a")
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="comma-separated etcd endpoints")
    parser.add_argument("--ttl", type=int, default=5, help="lease TTL: how fast a killed server disappears")
    parser.add_argument("--drain", type=float, default=0.5, help="seconds served after deregistering")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each SayHello takes")
    parser.add_argument("--aio", action="store_true", help="serve with grpc.aio")
    args = parser.parse_args()

    with EtcdRegistry(endpoints=args.etcd.split(","), ttl=args.ttl) as registry:
        if args.aio:
            asyncio.run(serve_aio(args, registry))
        else:
            serve(args, registry)


if __name__ == "__main__":
    main()
