"""Apps with Kubernetes probes on, for the SIGTERM-order tests (``--app-dir tests/contrib/progs``).

``probes_app:wsgi_app``: a bare WSGI app (under ``gunicorn_probes.conf.py``, whose master registers).
``probes_app:asgi_app``: a bare ASGI app in RegistrationMiddleware with ``probes=True`` (uvicorn).
``probes_app:hello``: that bare ASGI app alone (gunicorn's master registers, uvicorn's workers serve).

Environment: FYERREG_ETCD, PROBES_SERVICE, PROBES_UNREADY and PROBES_DRAIN (seconds).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable

from fyerreg.contrib.asgi import ASGIRegistration, RegistrationMiddleware


def wsgi_app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


async def hello(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "no lifespan here"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def _asgi() -> Any:
    if "PROBES_SERVICE" not in os.environ:  # imported by gunicorn for the WSGI app alone
        return None
    registration = ASGIRegistration(
        os.environ["PROBES_SERVICE"], "1.0.0",
        registry={"endpoints": os.environ["FYERREG_ETCD"].split(","), "ttl": 5, "dial_timeout": 1},
        drain_delay=float(os.environ["PROBES_DRAIN"]), probes=True,
        unready_delay=float(os.environ["PROBES_UNREADY"]),
    )
    return RegistrationMiddleware(hello, registration)


asgi_app = _asgi()
