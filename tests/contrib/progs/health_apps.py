"""Servers whose health check the test steers through a file, for the health-gated registration tests.

    python health_apps.py flask PORT      # Flask under werkzeug, HEALTH_CHECK as "module:callable"
    python health_apps.py grpc            # grpc.server with ServerRegistration(health_check=...)
    uvicorn --app-dir tests/contrib/progs health_apps:asgi_app   # ASGIRegistration(health_check=...)
    gunicorn -c tests/contrib/progs/gunicorn_health.conf.py      # GunicornRegistration(health_check="/healthz")

Environment: FYERREG_ETCD (endpoints), SERVICE, HEALTH_STATE (a file holding ``ok``, ``fail``,
``raise`` or ``hang``: what the next check does), HEALTH_INTERVAL, HEALTH_TIMEOUT,
HEALTH_FAILURES, HEALTH_SUCCESSES. Prints ``port N`` once serving (gRPC) and ``check N``
on each run of the check.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict

from fyerreg.serving.health import HealthCheck

_runs = 0


def healthy() -> bool:
    """What HEALTH_STATE says: ``ok`` passes, ``fail`` fails, ``raise`` raises, ``hang`` never returns."""
    global _runs
    _runs += 1
    with open(os.environ["HEALTH_STATE"]) as f:
        state = f.read().strip()
    print(f"check {_runs} {state}", flush=True)
    if state == "raise":
        raise RuntimeError("the check was told to raise")
    if state == "hang":
        threading.Event().wait(3600)
    return state == "ok"


def _options() -> Dict[str, Any]:
    return {"interval": float(os.environ["HEALTH_INTERVAL"]), "timeout": float(os.environ["HEALTH_TIMEOUT"]),
            "failures": int(os.environ["HEALTH_FAILURES"]), "successes": int(os.environ["HEALTH_SUCCESSES"])}


def _registry() -> Dict[str, Any]:
    return {"endpoints": os.environ["FYERREG_ETCD"].split(","), "ttl": 5, "dial_timeout": 2}


def flask_main(port: int) -> None:
    from flask import Flask

    from fyerreg.contrib.flask import FyerReg

    app = Flask("health-flask")
    options = _options()
    app.config.update(FYERREG_SERVICE_NAME=os.environ["SERVICE"], FYERREG_ADDRESS=f"127.0.0.1:{port}",
                      FYERREG_REGISTER=True, FYERREG_REGISTRY=_registry(), FYERREG_DRAIN_DELAY=0,
                      FYERREG_HEALTH_CHECK="health_apps:healthy", FYERREG_HEALTH_INTERVAL=options["interval"],
                      FYERREG_HEALTH_TIMEOUT=options["timeout"], FYERREG_HEALTH_FAILURES=options["failures"],
                      FYERREG_HEALTH_SUCCESSES=options["successes"], FYERREG_HANDLE_SIGNALS=True)

    @app.get("/")
    def index() -> str:
        return "ok"

    FyerReg(app)
    app.run(host="127.0.0.1", port=port, use_reloader=False)


def grpc_main() -> None:
    from concurrent import futures

    import grpc

    from fyerreg import EtcdRegistry
    from fyerreg.contrib.grpc import ServerRegistration
    from fyerreg.serving import InstanceSpec

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    registry = EtcdRegistry(**_registry())
    spec = InstanceSpec(os.environ["SERVICE"], address="127.0.0.1:0", drain_delay=0)
    registration = ServerRegistration(server, registry, spec, grace=0, handle_signals=True,
                                      health_check=HealthCheck(healthy, **_options()))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    registration.start(port)
    print(f"port {port}", flush=True)
    server.wait_for_termination()
    registry.close()


def _asgi_app() -> Any:
    from fyerreg.contrib.asgi import ASGIRegistration, RegistrationMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    registration = ASGIRegistration(os.environ["SERVICE"], registry=_registry(), drain_delay=0,
                                    health_check=HealthCheck(healthy, **_options()))
    return RegistrationMiddleware(app, registration)


def wsgi_app(environ: Dict[str, Any], start_response: Any) -> Any:
    """GET /healthz answers 200 while :func:`healthy` passes, 503 otherwise (and 500 when it raises)."""
    if environ.get("PATH_INFO") != "/healthz":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    try:
        status = "200 OK" if healthy() else "503 Service Unavailable"
    except RuntimeError:
        status = "500 Internal Server Error"
    start_response(status, [("Content-Length", "0")])
    return []


if "HEALTH_STATE" in os.environ and os.environ.get("HEALTH_ASGI"):
    asgi_app = _asgi_app()

if __name__ == "__main__":
    if sys.argv[1] == "flask":
        flask_main(int(sys.argv[2]))
    else:
        grpc_main()
