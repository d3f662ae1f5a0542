"""Call greeter-service by name: discovery picks an instance, the client fails over.

    python examples/greeter_client.py [--etcd 127.0.0.1:2379] [--count 5]
"""

from __future__ import annotations

import argparse
import dataclasses

from fyerreg.api import Client, ClientOptions
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry


@dataclasses.dataclass
class HelloResponse:
    message: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="comma-separated etcd endpoints")
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()

    with EtcdRegistry(endpoints=args.etcd.split(",")) as registry, \
            Discovery(registry, balancer="round_robin") as discovery:
        client = Client(ClientOptions(
            discovery=discovery,
            service_name="greeter-service",
            service_version="1.0.0",
            timeout=5,
            idempotent_methods={"GreeterService.SayHello"},  # safe to resend if a connection breaks
        ))
        with client:
            for i in range(args.count):
                reply = client.call("GreeterService", "SayHello", {"name": f"World #{i}"},
                                    response_type=HelloResponse)
                print(reply.message, flush=True)


if __name__ == "__main__":
    main()
