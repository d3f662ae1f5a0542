"""contrib.requests: http://<service>/... through discovery, with real Flask apps behind it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
import requests
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from fyerreg import Endpoint, Instance, MemoryRegistry, NoInstanceAvailableError
from fyerreg.contrib.requests import DiscoveryAdapter, NoInstanceError, session
from fyerreg.discovery import Discovery
from tests.api.fakes import fake_instance, read_request
from tests.helpers import free_port

from .procs import serve_https

SERVICE = "user-service"


def user_app(label: str, status: int = 200) -> Flask:
    app = Flask(label)

    @app.route("/users/<uid>", methods=["GET", "POST"])
    def user(uid: str) -> Tuple[dict, int]:
        return {"uid": uid, "by": label, "method": request.method, "host": request.host}, status

    return app


class Apps:
    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.discovery = Discovery(self.registry, balancer="round_robin")
        self.servers: List[Tuple[BaseWSGIServer, threading.Thread]] = []

    def serve(self, label: str, status: int = 200, *, service: str = SERVICE, version: str = "1.0.0") -> Instance:
        server = make_server("127.0.0.1", 0, user_app(label, status), threaded=True)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        self.servers.append((server, thread))
        inst = Instance.new(service, version, f"127.0.0.1:{server.server_port}", id=label)
        self.registry.register(inst)
        return inst

    def close(self) -> None:
        for server, thread in self.servers:
            server.shutdown()
            thread.join(10)
            server.server_close()
        self.discovery.close()
        self.registry.close()


@pytest.fixture
def apps() -> Iterator[Apps]:
    a = Apps()
    yield a
    a.close()


def test_urls_name_the_service_and_reach_its_instances(apps: Apps) -> None:
    apps.serve("a")
    apps.serve("b")
    with session(apps.discovery, {SERVICE: "1.0.0"}) as http:
        answers = [http.get(f"http://{SERVICE}/users/{i}", timeout=5).json() for i in range(4)]
    assert sorted(a["by"] for a in answers) == ["a", "a", "b", "b"]
    assert [a["uid"] for a in answers] == ["0", "1", "2", "3"]


def test_a_refused_connection_fails_over_even_for_post(apps: Apps) -> None:
    dead = Instance.new(SERVICE, "1.0.0", "127.0.0.1:1", id="dead")
    apps.registry.register(dead)
    apps.serve("b")
    with session(apps.discovery, {SERVICE: "1.0.0"}) as http:
        for _ in range(3):
            assert http.post(f"http://{SERVICE}/users/1", timeout=5).json()["by"] == "b"


def test_a_connection_broken_after_sending_is_retried_for_get_not_for_post(apps: Apps) -> None:
    _, fake, hung_up = fake_instance(apps.registry, SERVICE, read_request, connections=2)
    with session(apps.discovery, {SERVICE: "1.0.0"}) as http:
        with pytest.raises(requests.ConnectionError):
            http.post(f"http://{SERVICE}/users/1", timeout=5)
        assert hung_up.acquire(timeout=10)
        apps.serve("b")
        # Round robin over the fake and b: within two GETs one goes to the fake and is retried on b.
        assert [http.get(f"http://{SERVICE}/users/1", timeout=5).json()["by"] for _ in range(2)] == ["b", "b"]
        assert hung_up.acquire(timeout=10)
    fake.join(10)


def test_5xx_answers_are_returned_and_count_as_failures_for_ejection(apps: Apps) -> None:
    apps.serve("sick", status=503)
    apps.serve("well")
    with session(apps.discovery, {SERVICE: "1.0.0"}) as http:
        statuses = [http.get(f"http://{SERVICE}/users/1", timeout=5).status_code for _ in range(30)]
    assert 503 in statuses
    assert statuses[-10:] == [200] * 10, "the failing instance was never ejected"


def test_no_instance_is_both_a_requests_and_a_fyerreg_error(apps: Apps) -> None:
    with session(apps.discovery, {SERVICE: "1.0.0"}) as http, pytest.raises(NoInstanceError) as err:
        http.get(f"http://{SERVICE}/users/1", timeout=5)
    assert isinstance(err.value, requests.ConnectionError)
    assert isinstance(err.value, NoInstanceAvailableError)


def test_a_port_in_the_url_is_rejected(apps: Apps) -> None:
    http = requests.Session()
    http.mount(f"http://{SERVICE}", DiscoveryAdapter(apps.discovery))
    with pytest.raises(ValueError, match="service name"):
        http.get(f"http://{SERVICE}:80/users/1", timeout=5)


def test_service_names_keep_their_case_and_their_version_mapping(apps: Apps) -> None:
    apps.serve("old", service="UserService", version="1.0.0")
    apps.serve("new", service="UserService", version="2.0.0")
    apps.serve("lower", service="userservice", version="2.0.0")
    with session(apps.discovery, {"UserService": "2.0.0"}) as http:
        answers = {http.get("http://UserService/users/1", timeout=5).json()["by"] for _ in range(4)}
    assert answers == {"new"}

    http = requests.Session()  # a plain session, the adapter mounted by hand, one version for every service
    http.mount("http://", DiscoveryAdapter(apps.discovery, version="1.0.0", services=["UserService"]))
    with http:
        assert http.get("http://UserService/users/1", timeout=5).json()["by"] == "old"


def test_the_host_may_name_the_version_after_the_service(apps: Apps) -> None:
    apps.serve("old", version="1.0.0")
    apps.serve("new", version="2.0.0")
    with session(apps.discovery, {SERVICE: "1.0.0"}) as http:
        assert {http.get(f"http://{SERVICE}.2.0.0/users/1", timeout=5).json()["by"] for _ in range(4)} == {"new"}
        assert {http.get(f"http://{SERVICE}/users/1", timeout=5).json()["by"] for _ in range(4)} == {"old"}


def test_an_instance_naming_endpoints_is_called_at_its_http_one(apps: Apps) -> None:
    served = apps.serve("http")  # registered at its primary address; registered again below, named endpoints
    apps.registry.deregister(served)
    refusing = f"127.0.0.1:{free_port()}"
    apps.registry.register(Instance.new(SERVICE, "1.0.0", refusing, id="both",
                                        endpoints={"grpc": refusing, "http": served.address}))
    apps.registry.register(Instance.new(SERVICE, "1.0.0", refusing, id="grpc-only", endpoints={"grpc": refusing}))
    with session(apps.discovery, {SERVICE: "1.0.0"}) as http:
        answers = [http.get(f"http://{SERVICE}/users/1", timeout=5).json() for _ in range(4)]
    assert {(a["by"], a["host"]) for a in answers} == {("http", served.address)}
    assert all(row["errors"] == 0 for service in apps.discovery.describe()["services"] for row in service["instances"])


def test_an_http_endpoint_marked_tls_is_called_with_https(apps: Apps, tmp_path: Path) -> None:
    with serve_https(str(tmp_path)) as (address, ca):
        apps.registry.register(Instance.new("secure", "1.0.0", f"127.0.0.1:{free_port()}",
                                            endpoints={"http": Endpoint(address, tls=True)}))
        with session(apps.discovery, {"secure": "1.0.0"}) as http:
            assert http.get("http://secure/x", timeout=5, verify=ca).json() == {"tls": True}


def test_service_names_that_differ_only_in_case_are_refused(apps: Apps) -> None:
    with pytest.raises(ValueError, match="'UserService' and 'userService' differ only in case"):
        DiscoveryAdapter(apps.discovery, versions={"UserService": "1.0.0", "userService": "1.0.0"})


def test_a_host_naming_no_known_service_says_how_to_keep_a_names_case(apps: Apps) -> None:
    apps.serve("a", service="UserService")
    http = requests.Session()
    http.mount("http://", DiscoveryAdapter(apps.discovery))
    with http, pytest.raises(NoInstanceError, match="services="):
        http.get("http://UserService/users/1", timeout=5)
