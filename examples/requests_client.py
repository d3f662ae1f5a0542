"""Call hello-flask by name with requests: http://hello-flask/... resolved through discovery.

    python examples/requests_client.py [--etcd 127.0.0.1:2379] [--count 4]
"""

from __future__ import annotations

import argparse

from fyerreg.contrib.requests import session
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", default="127.0.0.1:2379")
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()

    with EtcdRegistry(endpoints=args.etcd.split(",")) as registry, Discovery(registry) as discovery, \
            session(discovery, {"hello-flask": "1.0.0"}) as http:
        for i in range(args.count):
            reply = http.get(f"http://hello-flask/hello/request-{i}", timeout=5)
            reply.raise_for_status()
            print(reply.json()["message"], "answered by pid", reply.json()["pid"], flush=True)


if __name__ == "__main__":
    main()
