"""Go fyer-rpc's example GreeterService.SayHello, served over JSON/HTTP and registered in etcd.

    python examples/greeter_server.py --port 8001 --name a [--etcd 127.0.0.1:2379]

It registers "greeter-service" 1.0.0 only once it answers, and on SIGTERM or Ctrl-C
deregisters first, finishes the calls in flight, then exits.
"""

from __future__ import annotations

import argparse
import dataclasses

from fyerreg.api import Server, ServerOptions
from fyerreg.registry.etcd import EtcdRegistry


@dataclasses.dataclass
class HelloRequest:
    name: str


@dataclasses.dataclass
class HelloResponse:
    message: str


class GreeterService:
    def __init__(self, name: str) -> None:
        self.name = name

    def SayHello(self, req: HelloRequest) -> HelloResponse:
        return HelloResponse(message=f"Hello {req.name}, from greeter {self.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="0: any free port")
    parser.add_argument("--name", default="a")
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="comma-separated etcd endpoints")
    parser.add_argument("--ttl", type=int, default=5, help="lease TTL: how fast a killed server disappears")
    args = parser.parse_args()

    with EtcdRegistry(endpoints=args.etcd.split(","), ttl=args.ttl) as registry:
        server = Server(ServerOptions(
            address=f"127.0.0.1:{args.port}",
            enable_registry=True,
            registry=registry,
            service_name="greeter-service",
            service_version="1.0.0",
            weight=100,
            metadata={"region": "cn-shanghai", "name": args.name},
        ))
        server.register(GreeterService(args.name))
        server.start()
        print(f"greeter {args.name} serving and registered at {server.instance.address}", flush=True)
        server.serve_forever(grace=5)  # returns after SIGTERM/SIGINT, once stopped gracefully
        print(f"greeter {args.name} stopped", flush=True)


if __name__ == "__main__":
    main()
