"""api.Server over real HTTP: routing, JSON errors with status codes, keep-alive, graceful stop."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any, Iterator, Optional, Tuple

import pytest

from fyerreg.api import Server, ServerOptions
from fyerreg.serving.address import advertise_address, split_host_port
from tests.helpers import fyerreg_threads

from .services import GreeterService


@pytest.fixture
def greeter() -> GreeterService:
    return GreeterService("g1")


@pytest.fixture
def server(greeter: GreeterService) -> Iterator[Server]:
    srv = Server(ServerOptions(address="127.0.0.1:0", max_body=1024))
    srv.register(greeter)
    srv.start()
    yield srv
    greeter.release.set()
    srv.stop(grace=2)


def connect(srv: Server) -> http.client.HTTPConnection:
    host, port = split_host_port(srv.address or "", field="address")
    return http.client.HTTPConnection(host, port, timeout=10)


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> Tuple[int, Any]:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_dataclass_request_and_response_round_trip(server: Server) -> None:
    status, body = post(connect(server), "/GreeterService/SayHello", b'{"name": "World"}')
    assert (status, body) == (200, {"message": "Hello World", "answered_by": "g1"})


def test_malformed_body_is_a_400_json_error_and_the_connection_keeps_working(server: Server) -> None:
    conn = connect(server)
    status, body = post(conn, "/GreeterService/SayHello", b'{"name": ')
    assert status == 400
    assert body["type"] == "BadRequest" and "not JSON" in body["message"]
    status, body = post(conn, "/GreeterService/SayHello", b"\xff\xfe")
    assert status == 400 and body["type"] == "BadRequest"
    assert post(conn, "/GreeterService/SayHello", b'{"name": "again"}')[0] == 200


def test_body_that_does_not_fit_the_request_type_is_a_400_naming_the_field(server: Server) -> None:
    status, body = post(connect(server), "/GreeterService/SayHello", b'{"nam": "x"}')
    assert status == 400
    assert body == {"type": "BadRequest", "message": "HelloRequest has no field 'nam'"}
    status, body = post(connect(server), "/GreeterService/SayHello", b"[1, 2]")
    assert status == 400 and "JSON object" in body["message"]


@pytest.mark.parametrize("path", ["/GreeterService/Nope", "/Nobody/SayHello", "/GreeterService/_private",
                                  "/GreeterService", "/GreeterService/SayHello/extra"])
def test_unknown_method_is_a_404_json_error(server: Server, path: str) -> None:
    status, body = post(connect(server), path, b"{}")
    assert status == 404
    assert body["type"] == "MethodNotFound" and path in body["message"]


def test_other_verbs_than_post_get_405(server: Server) -> None:
    conn = connect(server)
    conn.request("GET", "/GreeterService/SayHello")
    resp = conn.getresponse()
    assert resp.status == 405 and resp.getheader("Allow") == "POST"
    assert json.loads(resp.read())["type"] == "MethodNotAllowed"


def test_remote_exception_is_a_500_with_its_type_and_message(server: Server) -> None:
    status, body = post(connect(server), "/GreeterService/Fail", b'{"key": "user-42"}')
    assert status == 500
    assert body == {"type": "KeyError", "message": "'user-42'"}


def test_unserializable_result_is_a_500_not_a_crash(server: Server) -> None:
    conn = connect(server)
    status, body = post(conn, "/GreeterService/NotJson", b"")
    assert status == 500 and body["type"] == "UnserializableResponse"
    assert post(conn, "/GreeterService/SayHello", b'{"name": "still up"}')[0] == 200


def test_body_over_max_body_is_a_413(server: Server) -> None:
    status, body = post(connect(server), "/GreeterService/SayHello", b'{"name": "' + b"x" * 2000 + b'"}')
    assert status == 413 and body["type"] == "PayloadTooLarge"


def test_connections_are_kept_alive_between_calls(server: Server) -> None:
    conn = connect(server)
    post(conn, "/GreeterService/SayHello", b'{"name": "1"}')
    first = conn.sock
    post(conn, "/GreeterService/Fail", b"{}")
    post(conn, "/GreeterService/SayHello", b'{"name": "2"}')
    assert first is not None and conn.sock is first


def test_stop_waits_for_calls_in_flight_then_refuses_connections(greeter: GreeterService) -> None:
    srv = Server(ServerOptions(address="127.0.0.1:0"))
    srv.register(greeter)
    srv.start()
    host, port = split_host_port(srv.address or "", field="address")
    greeter.release.clear()
    result: dict = {}

    def call() -> None:
        result["answer"] = post(connect(srv), "/GreeterService/Block", b"{}")

    caller = threading.Thread(target=call)
    caller.start()
    assert greeter.entered.wait(10)
    stopper = threading.Thread(target=srv.stop, kwargs={"grace": 30})
    stopper.start()
    assert not srv.wait(0.3), "stop() returned while a call was still in flight"
    greeter.release.set()
    stopper.join(10)
    caller.join(10)
    assert srv.wait(0)
    assert result["answer"] == (200, "g1")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=2).close()
    assert fyerreg_threads() == []


def test_stop_closes_idle_keep_alive_connections(server: Server) -> None:
    conn = connect(server)
    post(conn, "/GreeterService/SayHello", b'{"name": "x"}')
    server.stop(grace=2)
    assert conn.sock is not None and conn.sock.recv(1) == b""
    assert fyerreg_threads() == []


def test_register_exposes_public_methods_only_and_rejects_clashes(greeter: GreeterService) -> None:
    srv = Server()
    assert srv.register(greeter) == ["GreeterService.Block", "GreeterService.Fail", "GreeterService.NotJson",
                                     "GreeterService.SayHello"]
    with pytest.raises(ValueError, match="already registered"):
        srv.register(GreeterService())
    assert srv.register(GreeterService(), name="Other")[0] == "Other.Block"


def test_options_name_the_bad_field() -> None:
    with pytest.raises(ValueError, match="address"):
        ServerOptions(address="no-port")
    with pytest.raises(ValueError, match="registry"):
        ServerOptions(enable_registry=True, service_name="greeter", registry="127.0.0.1:2379")  # type: ignore[arg-type]
    # No registry: the server connects one from the FYERREG_* environment (tests/test_config.py); a
    # malformed variable is refused here already.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FYERREG_TTL", "abc")
        with pytest.raises(ValueError, match="FYERREG_TTL"):
            ServerOptions(enable_registry=True, service_name="greeter")
    with pytest.raises(ValueError, match="advertise_address"):
        ServerOptions(advertise_address="0.0.0.0:80")


@pytest.mark.parametrize(("bind", "advertise", "expected"), [
    ("127.0.0.1", None, "127.0.0.1:8000"),
    ("10.1.2.3", "svc.example:9000", "svc.example:9000"),
    ("", "10.9.9.9", "10.9.9.9:8000"),
    ("::1", None, "[::1]:8000"),
])
def test_advertised_address(bind: str, advertise: Optional[str], expected: str) -> None:
    assert advertise_address(bind, 8000, advertise) == expected


@pytest.mark.parametrize("bind", ["", "0.0.0.0"])
def test_binding_every_interface_advertises_a_dialable_ip_never_0_0_0_0(bind: str) -> None:
    host, port = split_host_port(advertise_address(bind, 8000, None), field="x")
    assert port == 8000
    assert host not in ("", "0.0.0.0", "::")
    socket.inet_aton(host)


def test_server_on_every_interface_answers_on_its_advertised_address(greeter: GreeterService) -> None:
    with Server(ServerOptions(address="0.0.0.0:0")) as srv:
        srv.register(greeter)
        assert srv.instance is not None and not srv.instance.address.startswith("0.0.0.0")
        host, port = split_host_port(srv.instance.address, field="address")
        conn = http.client.HTTPConnection(host, port, timeout=10)
        assert post(conn, "/GreeterService/SayHello", b'{"name": "x"}')[0] == 200
