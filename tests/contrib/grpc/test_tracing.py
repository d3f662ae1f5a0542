"""OpenTelemetry traces of calls through the gRPC channels: one span per call, one child per attempt,
the trace context in the call's metadata."""

from __future__ import annotations

import asyncio
from concurrent import futures
from typing import Any, Iterator, List, Tuple

import greeter_pb2
import greeter_pb2_grpc
import grpc
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from fyerreg import Instance, MemoryRegistry
from fyerreg.contrib.grpc import AsyncDiscoveryChannel, DiscoveryChannel
from fyerreg.discovery import Discovery
from tests.helpers import free_port, wait_until
from tests.otel import FirstById, Spans, attributes, ids, spans

from .servers import SERVICE, Greeter, Served, hello

__all__ = ["spans"]

NAME = "greeter.Greeter/SayHello"


class Tracing(Greeter):
    """A greeter that answers with the ``traceparent`` its call carried."""

    def SayHello(self, request: Any, context: grpc.ServicerContext) -> Any:
        super().SayHello(request, context)
        return greeter_pb2.HelloReply(message=dict(context.invocation_metadata()).get("traceparent", ""))

    def SayHelloStream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        for _ in super().SayHelloStream(request, context):
            yield greeter_pb2.HelloReply(message=dict(context.invocation_metadata()).get("traceparent", ""))


class _Served(Served):
    """A running :class:`Tracing` greeter."""

    def __init__(self, name: str) -> None:
        self.servicer = Tracing(name)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        greeter_pb2_grpc.add_GreeterServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.instance = Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{self.port}", id=name)


@pytest.fixture
def discovery() -> Iterator[Discovery]:
    served = _Served("b-live")
    with MemoryRegistry() as registry, Discovery(registry, balancer=FirstById) as disc:
        registry.register(Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{free_port()}", id="a-dead"))
        registry.register(served.instance)
        yield disc
    served.stop()


def attempts_of_one_call(spans: Spans) -> Tuple[Any, List[Any]]:
    [parent] = spans.named(f"fyerreg {SERVICE} call")
    assert parent.kind is SpanKind.INTERNAL and parent.status.status_code is not StatusCode.ERROR
    children = spans.children(parent)
    assert [s.name for s in children] == [NAME, NAME]
    assert [attributes(s)["fyerreg.instance.id"] for s in children] == ["a-dead", "b-live"]
    assert [attributes(s)["fyerreg.attempt"] for s in children] == [1, 2]
    dead, live = children
    assert dead.status.status_code is StatusCode.ERROR and attributes(dead)["error.type"] == "UNAVAILABLE"
    assert attributes(dead)["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert attributes(live)["rpc.grpc.status_code"] == 0
    assert attributes(live)["rpc.system"] == "grpc" and attributes(live)["rpc.service"] == "greeter.Greeter"
    assert attributes(live)["rpc.method"] == "SayHello"
    assert all(s.kind is SpanKind.CLIENT for s in children)
    return parent, children


def test_a_grpc_call_that_fails_over_is_one_span_with_two_attempts(spans: Spans, discovery: Discovery) -> None:
    with DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
        reply = greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("x"), timeout=5)
    _, (_, live) = attempts_of_one_call(spans)
    trace_id, span_id = ids(live)
    assert reply.message.startswith(f"00-{trace_id}-{span_id}-")


def test_an_asyncio_grpc_call_that_fails_over_is_one_span_with_two_attempts(spans: Spans,
                                                                            discovery: Discovery) -> None:
    async def call() -> str:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            return str((await greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("x"), timeout=5)).message)

    message = asyncio.run(call())
    _, (_, live) = attempts_of_one_call(spans)
    trace_id, span_id = ids(live)
    assert message.startswith(f"00-{trace_id}-{span_id}-")


def test_a_response_stream_that_fails_over_is_one_span_with_two_attempts(spans: Spans,
                                                                        discovery: Discovery) -> None:
    with DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
        replies = [r.message for r in greeter_pb2_grpc.GreeterStub(channel).SayHelloStream(hello("x", 2), timeout=5)]
    assert len(replies) == 2
    wait_until(lambda: len(spans.finished()) >= 3, timeout=5)  # attempts end in gRPC's callbacks
    [parent] = spans.named(f"fyerreg {SERVICE} call")
    children = spans.children(parent)
    assert [attributes(s)["fyerreg.instance.id"] for s in children] == ["a-dead", "b-live"]
    assert [s.status.status_code is StatusCode.ERROR for s in children] == [True, False]
    assert all(s.name == "greeter.Greeter/SayHelloStream" for s in children)
    trace_id, span_id = ids(children[1])
    assert replies[0].startswith(f"00-{trace_id}-{span_id}-")


def test_a_future_goes_to_one_instance_and_its_span_ends_with_the_call(spans: Spans, discovery: Discovery) -> None:
    with DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
        future = greeter_pb2_grpc.GreeterStub(channel).SayHello.future(hello("x"), timeout=5)
        assert future.exception(timeout=10) is not None
    wait_until(lambda: len(spans.finished()) >= 2, timeout=5)
    [parent] = spans.named(f"fyerreg {SERVICE} call")
    [attempt] = spans.children(parent)
    assert attributes(attempt)["fyerreg.instance.id"] == "a-dead"
    assert parent.status.status_code is attempt.status.status_code is StatusCode.ERROR
    assert attributes(parent)["error.type"] == "UNAVAILABLE"


def test_an_asyncio_response_stream_that_fails_over_is_one_span_with_two_attempts(
        spans: Spans, discovery: Discovery) -> None:
    async def read() -> List[str]:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            return [r.message async for r in stub.SayHelloStream(hello("x", 2), timeout=5)]

    replies = asyncio.run(read())
    [parent] = spans.named(f"fyerreg {SERVICE} call")
    children = spans.children(parent)
    assert [attributes(s)["fyerreg.instance.id"] for s in children] == ["a-dead", "b-live"]
    assert [s.status.status_code is StatusCode.ERROR for s in children] == [True, False]
    trace_id, span_id = ids(children[1])
    assert len(replies) == 2 and replies[0].startswith(f"00-{trace_id}-{span_id}-")
