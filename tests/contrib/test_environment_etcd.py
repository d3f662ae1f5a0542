"""Flask, Django, ASGI and gunicorn configured by the FYERREG_* environment, against a real etcd.

Settings given win; what they leave out comes from the environment; a malformed variable
stops the app when it is set up, naming the variable, before anything is written.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from flask import Flask
from werkzeug.serving import make_server

from fyerreg import ConfigurationError
from fyerreg.contrib.asgi import ASGIRegistration
from fyerreg.contrib.flask import FyerReg
from fyerreg.contrib.gunicorn import GunicornRegistration
from fyerreg.registry.etcd.registry import lease_seconds
from tests.helpers import HEAVY_MODULES, Proc, free_port, fyerreg_threads, imports_in_fresh_interpreter, wait_until

pytestmark = pytest.mark.etcd

PROGS = Path(__file__).resolve().parent / "progs"


@pytest.fixture
def environment(environment: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The test etcd and namespace (the shared fixture), a lease TTL of 5 s and the address to advertise."""
    environment.setenv("FYERREG_TTL", "5")
    environment.setenv("FYERREG_ADVERTISE_ADDRESS", "orders.internal")
    return environment


def record(etcd_client: Any, namespace: str, service: str = "orders") -> Optional[Any]:
    """``(address, granted lease ttl)`` of the one record of ``service`` in ``namespace``, or None."""
    found = list(etcd_client.get_prefix(f"/{namespace}/services/{service}/"))
    if not found:
        return None
    [(value, meta)] = found
    return json.loads(value)["address"], etcd_client.get_lease_info(meta.lease_id).grantedTTL


# -- Flask ---------------------------------------------------------------------------------------


def flask_app(port: int, **config: Any) -> Flask:
    app = Flask("orders")
    app.config.update({"FYERREG_SERVICE_NAME": "orders", "FYERREG_ADDRESS": f"127.0.0.1:{port}",
                       "FYERREG_DRAIN_DELAY": 0, "FYERREG_REGISTER": True, **config})
    return app


@contextmanager
def serving_flask(**config: Any) -> Iterator[Tuple[int, Any]]:
    """A Flask app with FyerReg (``config`` added to its settings) served on a free port: yields the port and
    the extension's state; then the server is shut down and the state closed."""
    port = free_port()
    app = flask_app(port, **config)
    FyerReg(app)
    state = app.extensions["fyerreg"]
    try:
        server = make_server("127.0.0.1", port, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield port, state
        finally:
            server.shutdown()
            thread.join(10)
    finally:
        state.close()


def test_a_flask_app_registers_where_the_environment_says(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                          namespace: str) -> None:
    with serving_flask() as (port, state):
        found = wait_until(lambda: record(etcd_client, namespace), timeout=10, message="the app's record")
        assert found == (f"orders.internal:{port}", lease_seconds(5))
        state.close()
        assert record(etcd_client, namespace) is None
    assert fyerreg_threads() == []


def test_flask_settings_win_over_the_environment(environment: pytest.MonkeyPatch, etcd_client: Any) -> None:
    own = f"explicit-{uuid.uuid4().hex[:8]}"
    environment.setenv("FYERREG_TTL", "abc")  # malformed, but TTL is set: never read
    with serving_flask(FYERREG_NAMESPACE=own, FYERREG_TTL=7, FYERREG_ADVERTISE_ADDRESS="given") as (port, _):
        found = wait_until(lambda: record(etcd_client, own), timeout=10, message="the app's record")
        assert found == (f"given:{port}", lease_seconds(7))


@pytest.mark.parametrize(("variable", "value"), [("FYERREG_TTL", "abc"), ("FYERREG_ENDPOINTS", "nohost"),
                                                 ("POD_IP", "bogus"), ("FYERREG_TLS_CERT", "/nonexistent.pem")])
@pytest.mark.parametrize("testing", [False, True], ids=["registering", "TESTING"])
def test_a_flask_app_with_a_malformed_variable_fails_at_init_app_naming_it(
    environment: pytest.MonkeyPatch, etcd_client: Any, namespace: str, variable: str, value: str, testing: bool
) -> None:
    environment.delenv("FYERREG_ADVERTISE_ADDRESS")
    environment.setenv(variable, value)
    app = flask_app(free_port(), FYERREG_ADDRESS="0.0.0.0:8000", TESTING=testing,
                    FYERREG_REGISTER=not testing)
    with pytest.raises(ConfigurationError, match=f"^{variable}") as raised:
        FyerReg(app)
    assert raised.value.variable == variable
    assert record(etcd_client, namespace) is None
    assert fyerreg_threads() == []


# -- Django --------------------------------------------------------------------------------------


def django_site(port: int, settings: Any, procs: List[Any]) -> Proc:
    site = Proc([sys.executable, str(PROGS / "django_env_site.py"), json.dumps(settings), str(port)])
    procs.append(site)
    return site


def test_a_django_site_registers_where_the_environment_says(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                            namespace: str, procs: List[Any]) -> None:
    port = free_port()
    site = django_site(port, {"SERVICE_NAME": "orders", "ADDRESS": f"127.0.0.1:{port}", "REGISTER": True,
                              "DRAIN_DELAY": 0}, procs)
    assert site.next_line() == "serving"
    found = wait_until(lambda: record(etcd_client, namespace), timeout=15,
                       message=f"the site's record\n{site.output()}")
    assert found == (f"orders.internal:{port}", lease_seconds(5))
    assert site.stop() == 0
    assert record(etcd_client, namespace) is None  # deregistered at exit


def test_django_settings_win_over_the_environment(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                  procs: List[Any]) -> None:
    own = f"explicit-{uuid.uuid4().hex[:8]}"
    environment.setenv("FYERREG_TTL", "abc")
    port = free_port()
    site = django_site(port, {"SERVICE_NAME": "orders", "ADDRESS": f"127.0.0.1:{port}", "REGISTER": True,
                              "DRAIN_DELAY": 0, "NAMESPACE": own, "TTL": 7, "ADVERTISE_ADDRESS": "given"}, procs)
    assert site.next_line() == "serving"
    found = wait_until(lambda: record(etcd_client, own), timeout=15, message=f"the site's record\n{site.output()}")
    assert found == (f"given:{port}", lease_seconds(7))
    assert site.stop() == 0


def test_a_django_site_with_a_malformed_variable_fails_at_setup_naming_it(
    environment: pytest.MonkeyPatch, etcd_client: Any, namespace: str, procs: List[Any]
) -> None:
    environment.setenv("FYERREG_TTL", "abc")
    site = django_site(free_port(), {"SERVICE_NAME": "orders", "REGISTER": True}, procs)
    assert site.next_line().startswith("refused: ConfigurationError: FYERREG_TTL='abc': expected a whole number")
    assert site.wait() == 3
    assert record(etcd_client, namespace) is None


# -- ASGI and gunicorn ----------------------------------------------------------------------------


def run_asgi(registration: ASGIRegistration, until: Any) -> Any:
    """Start the registration as a server's lifespan would, wait for ``until()``, shut down; its result."""

    async def lifespan() -> Any:
        await registration.startup()
        try:
            deadline = time.monotonic() + 15
            while not (found := until()):
                assert time.monotonic() < deadline, "the ASGI app's record did not appear"
                await asyncio.sleep(0.05)
            return found
        finally:
            await registration.shutdown()

    return asyncio.run(lifespan())


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def test_an_asgi_app_registers_where_the_environment_says(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                          namespace: str, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    registration = ASGIRegistration("orders", address=f"127.0.0.1:{port}", drain_delay=0, handle_signals=False)
    found = run_asgi(registration, lambda: record(etcd_client, namespace))
    assert found == (f"orders.internal:{port}", lease_seconds(5))
    assert record(etcd_client, namespace) is None
    wait_until(lambda: fyerreg_threads() == [], timeout=10)


def test_an_asgi_registry_dict_wins_over_the_environment(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                         listening: socket.socket) -> None:
    own = f"explicit-{uuid.uuid4().hex[:8]}"
    environment.setenv("FYERREG_TTL", "abc")
    port = listening.getsockname()[1]
    registration = ASGIRegistration("orders", registry={"namespace": own, "ttl": 7}, address=f"127.0.0.1:{port}",
                                    advertise_address="given", drain_delay=0, handle_signals=False)
    assert run_asgi(registration, lambda: record(etcd_client, own)) == (f"given:{port}", lease_seconds(7))
    wait_until(lambda: fyerreg_threads() == [], timeout=10)


@pytest.mark.parametrize(("variable", "value"), [("FYERREG_TTL", "abc"), ("FYERREG_PASSWORD_FILE", "/nonexistent"),
                                                 ("FYERREG_ADVERTISE_ADDRESS", "::")])
@pytest.mark.parametrize("integration", ["asgi", "gunicorn"])
def test_asgi_and_gunicorn_registrations_with_a_malformed_variable_fail_when_made(
    environment: pytest.MonkeyPatch, variable: str, value: str, integration: str
) -> None:
    environment.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=f"^{variable}") as raised:
        if integration == "asgi":
            ASGIRegistration("orders", address="127.0.0.1:8000", handle_signals=False)
        else:
            GunicornRegistration("orders")  # in gunicorn.conf.py, in the master: not later in the registrar
    assert raised.value.variable == variable


@pytest.mark.slow
def test_gunicorn_registers_where_the_environment_says(environment: pytest.MonkeyPatch, etcd_client: Any,
                                                       namespace: str, procs: List[Any]) -> None:
    port = free_port()
    master = Proc([sys.executable, "-m", "gunicorn", "-c", str(PROGS / "gunicorn_env.conf.py")],
                  env={"PORT": str(port)})
    procs.append(master)
    found = wait_until(lambda: record(etcd_client, namespace, "env-app"), timeout=30,
                       message=f"the registrar's record\n{master.output()}")
    assert found == (f"orders.internal:{port}", lease_seconds(5))
    master.signal(signal.SIGTERM)
    assert master.wait(30) == 0, master.output()
    assert record(etcd_client, namespace, "env-app") is None


def test_a_gunicorn_master_checking_the_environment_loads_no_grpc(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("FYERREG_LAYOUT", "kratos")  # every variable set is parsed, none opens a channel
    loaded = imports_in_fresh_interpreter("from fyerreg.contrib.gunicorn import GunicornRegistration\n"
                                          "GunicornRegistration('orders')")
    assert not loaded.intersection({"grpc", "pyetcd"}), sorted(loaded.intersection(HEAVY_MODULES))
