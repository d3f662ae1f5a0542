"""A WSGI app that builds its registry and Discovery at import, in the gunicorn master (preload_app),
and uses them there before the workers are forked: the workers inherit live gRPC state."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Iterable

from fyerreg import Discovery
from fyerreg.registry.etcd import EtcdRegistry

registry = EtcdRegistry(endpoints=os.environ["FYERREG_ETCD"].split(","), ttl=5)
discovery = Discovery(registry)
MASTER_SAW = [i.address for i in discovery.instances("preloaded", "1.0.0")]  # a subscription, in the master


def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/peers":
        body: Any = {"pid": os.getpid(), "peers": sorted(i.address for i in discovery.instances("preloaded", "1.0.0"))}
    else:
        body = {"pid": os.getpid()}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
