"""OpenTelemetry traces of calls through fyerreg: one span per call, one child per attempt, the trace
carried to the instance (api.Server continues it), trace ids in JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from typing import Iterator, List, Tuple

import httpx
import pytest
import requests
from flask import Flask, request
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.serving import BaseWSGIServer, make_server

import fyerreg.logging
from fyerreg import Instance, MemoryRegistry
from fyerreg.api import Client, ClientOptions, RemoteError, Server, ServerOptions
from fyerreg.contrib.httpx import AsyncDiscoveryTransport, DiscoveryTransport
from fyerreg.contrib.requests import session
from fyerreg.discovery import Discovery
from tests.api.services import GreeterService, HelloRequest
from tests.helpers import free_port
from tests.otel import FirstById, Spans, attributes, ids, spans

__all__ = ["spans"]

SERVICE = "greeter-service"


@pytest.fixture
def registry() -> Iterator[Tuple[MemoryRegistry, Discovery]]:
    with MemoryRegistry() as reg, Discovery(reg, balancer=FirstById) as discovery:
        reg.register(Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{free_port()}", id="a-dead"))
        yield reg, discovery


@pytest.fixture
def server(registry: Tuple[MemoryRegistry, Discovery]) -> Iterator[Server]:
    srv = Server(ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=registry[0],
                               service_name=SERVICE, instance_id="b-live", drain_delay=0.0))
    srv.register(GreeterService("live"))
    srv.start()
    yield srv
    srv.stop(grace=1)


def call_with_two_attempts(spans: Spans, name: str) -> Tuple[object, List[object]]:
    """The one ``fyerreg <service> call`` span, checked to have two attempt children: the dead
    instance's (failed) and the live one's (OK)."""
    [parent] = spans.named(name)
    assert parent.kind is SpanKind.INTERNAL
    attempts = spans.children(parent)
    assert len(attempts) == 2, [s.name for s in spans.finished()]
    dead, live = attempts
    assert [attributes(s)["fyerreg.attempt"] for s in attempts] == [1, 2]
    assert [attributes(s)["fyerreg.instance.id"] for s in attempts] == ["a-dead", "b-live"]
    assert all(s.kind is SpanKind.CLIENT for s in attempts)
    assert dead.status.status_code is StatusCode.ERROR and "error.type" in attributes(dead)
    assert live.status.status_code is not StatusCode.ERROR
    assert parent.status.status_code is not StatusCode.ERROR
    assert attributes(parent)["fyerreg.attempts"] == 2
    assert attributes(live)["server.port"] == int(attributes(live)["fyerreg.instance.address"].rsplit(":", 1)[1])
    return parent, attempts


def test_a_client_call_that_fails_over_is_one_span_with_two_attempts_and_the_server_continues_it(
        spans: Spans, registry: Tuple[MemoryRegistry, Discovery], server: Server) -> None:
    with Client(ClientOptions(discovery=registry[1], service_name=SERVICE)) as client:
        assert client.call("GreeterService", "SayHello", HelloRequest("x"))["message"] == "Hello x"
    parent, (dead, live) = call_with_two_attempts(spans, f"fyerreg {SERVICE} call")
    assert live.name == dead.name == "GreeterService/SayHello"
    assert attributes(live)["rpc.system"] == "fyerreg"
    assert attributes(live)["rpc.method"] == "SayHello"
    assert attributes(live)["fyerreg.service"] == SERVICE and attributes(live)["fyerreg.version"] == "1.0.0"
    [served] = [s for s in spans.named("GreeterService/SayHello") if s.kind is SpanKind.SERVER]
    assert served.parent is not None and served.parent.span_id == live.context.span_id
    assert served.context.trace_id == parent.context.trace_id


def test_a_failed_call_and_a_method_that_raises_set_error_status(
        spans: Spans, registry: Tuple[MemoryRegistry, Discovery], server: Server) -> None:
    with Client(ClientOptions(discovery=registry[1], service_name=SERVICE)) as client, \
            pytest.raises(RemoteError):
        client.call("GreeterService", "Fail", {"key": "k"})
    [parent] = spans.named(f"fyerreg {SERVICE} call")
    assert parent.status.status_code is StatusCode.ERROR
    assert attributes(parent)["error.type"] == "RemoteError"
    [served] = [s for s in spans.named("GreeterService/Fail") if s.kind is SpanKind.SERVER]
    assert served.status.status_code is StatusCode.ERROR and attributes(served)["error.type"] == "KeyError"


def test_json_log_lines_carry_the_trace_and_span_ids_inside_a_span_only(
        spans: Spans, registry: Tuple[MemoryRegistry, Discovery], server: Server) -> None:
    out = io.StringIO()
    fyerreg.logging.configure(json=True, stream=out)
    try:
        logging.getLogger("fyerreg.tests").info("outside")
        with Client(ClientOptions(discovery=registry[1], service_name=SERVICE)) as client, \
                pytest.raises(RemoteError):
            client.call("GreeterService", "Fail", {"key": "k"})  # the server logs "... raised KeyError"
        with spans.tracer.start_as_current_span("work") as span:
            logging.getLogger("fyerreg.tests").info("inside")
    finally:
        fyerreg.logging.reset()
    lines = {line["message"].split()[-1]: line for line in map(json.loads, out.getvalue().splitlines())}
    assert "trace_id" not in lines["outside"] and "span_id" not in lines["outside"]
    assert (lines["inside"]["trace_id"], lines["inside"]["span_id"]) == (
        f"{span.get_span_context().trace_id:032x}", f"{span.get_span_context().span_id:016x}")
    [served] = [s for s in spans.named("GreeterService/Fail") if s.kind is SpanKind.SERVER]
    assert (lines["KeyError"]["trace_id"], lines["KeyError"]["span_id"]) == ids(served)


class EchoApp:
    """A Flask app at a port that answers with the ``traceparent`` it was sent."""

    def __init__(self) -> None:
        app = Flask("echo")

        @app.route("/echo", methods=["GET", "POST"])
        def echo() -> dict:
            return {"traceparent": request.headers.get("traceparent", "")}

        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="echo-app")
        self.thread.start()
        self.address = f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


@pytest.fixture
def echo(registry: Tuple[MemoryRegistry, Discovery]) -> Iterator[Discovery]:
    app = EchoApp()
    registry[0].register(Instance.new(SERVICE, "1.0.0", app.address, id="b-live"))
    yield registry[1]
    app.close()


def traceparent_of(span: object) -> str:
    """The version, trace id and span id of the ``traceparent`` naming ``span`` (the flags vary)."""
    trace_id, span_id = ids(span)  # type: ignore[arg-type]
    return f"00-{trace_id}-{span_id}"


def check_http_call(spans: Spans, answer: dict, method: str) -> None:
    _, (dead, live) = call_with_two_attempts(spans, f"fyerreg {SERVICE} call")
    assert live.name == method
    assert attributes(live)["http.request.method"] == method
    assert attributes(live)["http.response.status_code"] == 200
    assert attributes(live)["http.request.resend_count"] == 1 and "http.request.resend_count" not in attributes(dead)
    assert answer["traceparent"].rsplit("-", 1)[0] == traceparent_of(live)


def test_a_requests_call_that_fails_over_is_one_span_with_two_attempts(spans: Spans, echo: Discovery) -> None:
    with session(echo, {SERVICE: "1.0.0"}) as http:
        answer = http.post(f"http://{SERVICE}/echo", timeout=5).json()
    check_http_call(spans, answer, "POST")


def test_an_httpx_call_that_fails_over_is_one_span_with_two_attempts(spans: Spans, echo: Discovery) -> None:
    with httpx.Client(transport=DiscoveryTransport(echo, version="1.0.0")) as http:
        answer = http.post(f"http://{SERVICE}/echo", timeout=5).json()
    check_http_call(spans, answer, "POST")


def test_an_async_httpx_call_that_fails_over_is_one_span_with_two_attempts(spans: Spans, echo: Discovery) -> None:
    async def main() -> dict:
        async with httpx.AsyncClient(transport=AsyncDiscoveryTransport(echo, version="1.0.0")) as http:
            return (await http.get(f"http://{SERVICE}/echo", timeout=5)).json()  # type: ignore[no-any-return]

    answer = asyncio.run(main())
    check_http_call(spans, answer, "GET")


def test_a_call_whose_every_attempt_fails_is_a_failed_span_of_failed_attempts(
        spans: Spans, registry: Tuple[MemoryRegistry, Discovery]) -> None:
    with session(registry[1], {SERVICE: "1.0.0"}, retries=2) as http, pytest.raises(requests.ConnectionError):
        http.get(f"http://{SERVICE}/echo", timeout=5)
    [parent] = spans.named(f"fyerreg {SERVICE} call")
    assert parent.status.status_code is StatusCode.ERROR and attributes(parent)["error.type"] == "ConnectionError"
    attempts = spans.children(parent)
    assert [attributes(s)["fyerreg.attempt"] for s in attempts] == [1, 2, 3]
    assert all(s.status.status_code is StatusCode.ERROR for s in attempts)
    assert {attributes(s)["error.type"] for s in attempts} == {"ConnectionError"}
