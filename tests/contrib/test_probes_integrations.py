"""PROBES in the Flask and Django integrations, ASGIRegistration's probes, and a gunicorn master's
probes reaching the apps it registers: off by default, paths configurable, bad settings named."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from flask import Flask

from fyerreg import MemoryRegistry
from fyerreg.contrib import _integration
from fyerreg.contrib.asgi import ASGIRegistration, RegistrationMiddleware
from fyerreg.contrib.flask import FyerReg
from fyerreg.serving.probes import ProbeAnswer
from tests.helpers import Proc

PROGS = Path(__file__).parent / "progs"


def flask_app(registry: MemoryRegistry, port: int, **config: Any) -> Flask:
    app = Flask("probed")
    app.config.update({"FYERREG_SERVICE_NAME": "probed", "FYERREG_ADDRESS": f"127.0.0.1:{port}",
                       "FYERREG_REGISTRY": registry, "FYERREG_REGISTER": True, "FYERREG_DRAIN_DELAY": 0, **config})

    @app.get("/readyz")
    def own() -> str:
        return "the app's own"

    return app


def test_flask_with_probes_answers_them_ready_once_registered_and_not_after_close(
        registry: MemoryRegistry, port: int) -> None:
    app = flask_app(registry, port, FYERREG_PROBES=True, FYERREG_HEALTHZ_PATH="/-/live",
                    FYERREG_UNREADY_DELAY=0.2)
    FyerReg(app)
    state = app.extensions["fyerreg"]
    try:
        assert state.registration.wait_registered(10)
        client = app.test_client()
        assert client.get("/-/live").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
        assert client.get("/healthz").status_code == 404  # moved to /-/live
    finally:
        state.close()
    assert client.get("/readyz").status_code == 503


def test_flask_without_probes_leaves_the_paths_to_the_app(registry: MemoryRegistry, port: int) -> None:
    app = flask_app(registry, port)
    FyerReg(app)
    try:
        assert app.test_client().get("/readyz").get_data() == b"the app's own"
    finally:
        app.extensions["fyerreg"].close()


@pytest.mark.parametrize("key, value", [("PROBES", "yes"), ("HEALTHZ_PATH", "healthz"), ("READYZ_PATH", 5),
                                        ("UNREADY_DELAY", -1)])
def test_a_bad_probe_setting_is_named(registry: MemoryRegistry, port: int, key: str, value: Any) -> None:
    app = flask_app(registry, port, **{f"FYERREG_{key}": value})
    with pytest.raises(ValueError, match=f"FYERREG_{key}"):
        FyerReg(app)


def test_django_with_probes_answers_them_first_whatever_the_host_header_and_the_rest_goes_to_the_site() -> None:
    proc = Proc([sys.executable, str(PROGS / "django_probes.py"), "/ready"])
    try:
        line = proc.wait_for(lambda text: text.startswith("{"), timeout=60)
    finally:
        proc.close()
    result: Dict[str, Any] = json.loads(line)
    assert result["middleware"][0] == "fyerreg.contrib.django.probes.ProbesMiddleware"
    assert result["healthz"] == 200 and result["readyz"] == 200
    assert result["readyz_body"]["status"] == "ready" and result["readyz_body"]["service"] == "probed-django"
    assert result["other"] == 400  # the site itself still checks ALLOWED_HOSTS
    assert result["readyz_after_close"] == 503


class Answers:
    def __init__(self) -> None:
        self.asked: List[str] = []

    def healthz(self) -> ProbeAnswer:
        self.asked.append("healthz")
        return ProbeAnswer(200, {"status": "from the master"})

    def readyz(self) -> ProbeAnswer:
        self.asked.append("readyz")
        return ProbeAnswer(503, {"status": "from the master"})


def test_an_app_a_server_registers_answers_the_servers_probes(registry: MemoryRegistry, port: int) -> None:
    answers = Answers()
    _integration.registered_by_server("a test master", probes=answers)
    try:
        app = flask_app(registry, port, FYERREG_PROBES=True, FYERREG_REGISTER="auto")
        FyerReg(app)
        assert app.extensions["fyerreg"].registration is None
        client = app.test_client()
        assert client.get("/healthz").get_json() == {"status": "from the master"}
        assert client.get("/readyz").status_code == 503
        assert answers.asked == ["healthz", "readyz"]
        app.extensions["fyerreg"].close()
    finally:
        _integration._registered_by_server = None
        _integration._server_probes = None


async def asgi_get(app: Any, path: str) -> Dict[str, Any]:
    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)
    return {"status": sent[0]["status"], "body": b"".join(m.get("body", b"") for m in sent[1:])}


async def inner(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def test_asgi_probes_are_off_by_default_and_answer_starting_before_the_server_binds(
        registry: MemoryRegistry) -> None:
    off = RegistrationMiddleware(inner, ASGIRegistration("svc", registry=registry))
    on = RegistrationMiddleware(inner, ASGIRegistration("svc", registry=registry, probes=True, readyz_path="/ready"))
    assert asyncio.run(asgi_get(off, "/readyz")) == {"status": 200, "body": b"app"}
    got = asyncio.run(asgi_get(on, "/ready"))
    assert got["status"] == 503 and json.loads(got["body"])["status"] == "starting"
    assert asyncio.run(asgi_get(on, "/healthz"))["status"] == 200
    assert asyncio.run(asgi_get(on, "/other")) == {"status": 200, "body": b"app"}
