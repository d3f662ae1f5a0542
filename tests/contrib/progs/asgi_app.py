"""ASGI apps for the uvicorn tests (``--app-dir tests/contrib/progs``).

``asgi_app:fastapi_app``: FastAPI with the ``lifespan=`` helper around a lifespan of its own.
``asgi_app:raw_app``: a bare ASGI app that does not speak lifespan, in
RegistrationMiddleware.

Environment: FYERREG_ETCD, ASGI_SERVICE (the service name), ASGI_TTL and ASGI_DRAIN
(seconds), ASGI_ADDRESS (default: found from the listening socket). Each record carries
the pid of the process that registered it.
GET /pid answers with the pid serving it.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, AsyncIterator, Dict

from fastapi import FastAPI

from fyerreg.contrib.asgi import ASGIRegistration, RegistrationMiddleware


def _registration(service: str) -> ASGIRegistration:
    return ASGIRegistration(
        os.environ.get("ASGI_SERVICE", service), "1.0.0",
        registry={"endpoints": os.environ["FYERREG_ETCD"].split(","), "ttl": float(os.environ.get("ASGI_TTL", "5")),
                  "dial_timeout": 1},
        address=os.environ.get("ASGI_ADDRESS"),
        metadata={"pid": str(os.getpid())},
        drain_delay=float(os.environ.get("ASGI_DRAIN", "0.5")),
    )


@contextlib.asynccontextmanager
async def own_lifespan(app: Any) -> AsyncIterator[Dict[str, Any]]:
    print(f"app {os.getpid()} starting", flush=True)
    yield {"greeting": "Hello"}
    print(f"app {os.getpid()} stopped", flush=True)


fastapi_app = FastAPI(lifespan=_registration("asgi-fastapi").lifespan(own_lifespan))


@fastapi_app.get("/pid")
async def pid() -> Dict[str, Any]:
    return {"pid": os.getpid()}


async def bare(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http", "no lifespan here"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"pid": os.getpid()}).encode()})


raw_app = RegistrationMiddleware(bare, _registration("asgi-raw"))
