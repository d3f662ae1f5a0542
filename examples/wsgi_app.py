"""Any WSGI app, registered in etcd while it serves: wsgiref's server and ServiceRegistration.

    python examples/wsgi_app.py [--port 8000] [--host 127.0.0.1] [--etcd 127.0.0.1:2379]

It registers "user-service" 1.0.0 once its port answers; SIGTERM or Ctrl-C deregisters it
first, then the server stops.
"""

from __future__ import annotations

import argparse
from typing import Callable, Dict, Iterable, List, Tuple
from wsgiref.simple_server import make_server

from fyerreg.contrib.wsgi import ServiceRegistration
from fyerreg.registry.etcd import EtcdRegistry

StartResponse = Callable[[str, List[Tuple[str, str]]], object]


def app(environ: Dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from user-service\n"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0: advertise the outbound address")
    parser.add_argument("--etcd", default="127.0.0.1:2379", help="comma-separated etcd endpoints")
    args = parser.parse_args()

    with EtcdRegistry(endpoints=args.etcd.split(","), ttl=5) as registry, \
            ServiceRegistration(registry, "user-service", "1.0.0", address=f"{args.host}:{args.port}",
                                handle_signals=True) as registration:
        server = make_server(args.host, args.port, app)
        print(f"user-service serving on {args.host}:{args.port}, advertised as "
              f"{registration.instance.address}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
