"""contrib.flask.FyerReg with a real Flask app served by werkzeug."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask, current_app
from werkzeug.serving import make_server

from fyerreg import MemoryRegistry
from fyerreg.contrib.flask import FyerReg
from tests.helpers import free_port, fyerreg_threads, wait_until


def make_app(registry: MemoryRegistry, port: int, **config: Any) -> Flask:
    app = Flask("orders")
    app.config.update(FYERREG_SERVICE_NAME="orders", FYERREG_ADDRESS=f"127.0.0.1:{port}",
                      FYERREG_REGISTRY=registry, FYERREG_DRAIN_DELAY=0, FYERREG_METADATA={"zone": "a"}, **config)

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    return app


def test_app_registers_when_it_serves_and_disappears_when_stopped(registry: MemoryRegistry) -> None:
    port = free_port()
    app = make_app(registry, port)
    FyerReg(app)
    state = app.extensions["fyerreg"]
    assert registry.list_services("orders") == []
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        [inst] = wait_until(lambda: registry.list_services("orders", "1.0.0"), timeout=10)
        assert inst.address == f"127.0.0.1:{port}" and dict(inst.metadata) == {"zone": "a"}
        with app.app_context():
            assert current_app.extensions["fyerreg"].discovery.instances("orders", "1.0.0") == [inst]
        state.close()  # what the interpreter's exit runs
        assert registry.list_services("orders") == []
    finally:
        server.shutdown()
        thread.join(10)
        state.close()
    assert fyerreg_threads() == []


def test_testing_apps_do_not_register(registry: MemoryRegistry) -> None:
    app = make_app(registry, free_port(), TESTING=True)
    FyerReg(app)
    try:
        assert app.extensions["fyerreg"].registration is None
    finally:
        app.extensions["fyerreg"].close()


def test_unknown_config_key_is_named(registry: MemoryRegistry) -> None:
    app = make_app(registry, free_port(), FYERREG_SERVICE_VERSON="2")
    with pytest.raises(ValueError, match="FYERREG_SERVICE_VERSON"):
        FyerReg(app)
