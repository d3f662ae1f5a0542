"""Call hello-flask by name with httpx, sync and async: http://hello-flask/... resolved through discovery.

    python examples/httpx_client.py [--etcd 127.0.0.1:2379] [--count 4]
"""

from __future__ import annotations

import argparse
import asyncio

import httpx

from fyerreg.contrib.httpx import AsyncDiscoveryTransport, DiscoveryTransport
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", default="127.0.0.1:2379")
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()

    with EtcdRegistry(endpoints=args.etcd.split(",")) as registry, Discovery(registry) as discovery:
        transport = DiscoveryTransport(discovery, versions={"hello-flask": "1.0.0"})
        with httpx.Client(transport=transport, timeout=5) as http:
            for i in range(args.count):
                reply = http.get(f"http://hello-flask.1.0.0/hello/sync-{i}")  # or the version in the host
                reply.raise_for_status()
                print(reply.json()["message"], "answered by pid", reply.json()["pid"], flush=True)
        asyncio.run(call_async(discovery, args.count))


async def call_async(discovery: Discovery, count: int) -> None:
    transport = AsyncDiscoveryTransport(discovery, versions={"hello-flask": "1.0.0"})
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        replies = await asyncio.gather(*(http.get(f"http://hello-flask/hello/async-{i}") for i in range(count)))
        for reply in replies:
            reply.raise_for_status()
            print(reply.json()["message"], "answered by pid", reply.json()["pid"], flush=True)


if __name__ == "__main__":
    main()
