"""AsyncDiscoveryChannel under asyncio, against real grpc servers: stubs await through it, picks
never block the loop, failover and feedback as with the sync channel, cancellation counts nothing."""

from __future__ import annotations

import asyncio
from typing import Any, Iterator, List, Tuple

import greeter_pb2_grpc
import grpc
import pytest

from fyerreg import Instance, MemoryRegistry
from fyerreg.contrib.grpc import AsyncDiscoveryChannel, NoInstanceError
from fyerreg.discovery import Discovery
from tests.helpers import free_port, no_fyerreg_thread_left

from .servers import SAY_HELLO, SERVICE, counts, greeters, hello


@pytest.fixture
def setup() -> Iterator[Tuple[MemoryRegistry, Discovery]]:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        yield registry, discovery


def dead_instance() -> Instance:
    return Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{free_port()}", id="dead")


def test_a_stub_awaits_unary_and_stream_calls_on_every_instance(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup

    async def run() -> Tuple[List[str], List[str], List[str]]:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            replies = [(await stub.SayHello(hello("x"), timeout=5)).message for _ in range(4)]
            streamed = [r.message async for r in stub.SayHelloStream(hello("x", count=2), timeout=5)]
            stream = stub.SayHelloStream(hello("x", count=1), timeout=5)
            read = [(await stream.read()).message]
            assert await stream.read() is grpc.aio.EOF
            assert channel.addresses() == sorted(s.instance.address for s in served)
        assert channel.addresses() == []
        return replies, streamed, read

    with greeters("a", "b") as served, no_fyerreg_thread_left("closing the channel"):
        for one in served:
            registry.register(one.instance)
        replies, streamed, read = asyncio.run(run())
    assert sorted(replies) == ["a", "a", "b", "b"]
    assert streamed in (["a 0", "a 1"], ["b 0", "b 1"]) and read in (["a 0"], ["b 0"])


def test_fifty_tasks_lose_no_call_to_an_instance_that_refuses(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup

    async def run() -> List[str]:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)

            async def task(n: int) -> str:
                return str((await stub.SayHello(hello(f"t{n}"), timeout=5)).message)

            return list(await asyncio.gather(*(task(n) for n in range(50))))

    with greeters("a", "b") as served:
        registry.register(dead_instance())
        for one in served:
            registry.register(one.instance)
        replies = asyncio.run(run())
    assert len(replies) == 50 and set(replies) == {"a", "b"}
    assert counts(discovery)["dead"]["errors"] >= 1
    assert counts(discovery)["a"]["errors"] == counts(discovery)["b"]["errors"] == 0


def test_an_unavailable_answer_is_sent_again_only_for_an_idempotent_method(
        setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup

    async def call(**options: Any) -> grpc.StatusCode:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0", **options) as channel:
            with pytest.raises(grpc.RpcError) as failed:
                await greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("abort:UNAVAILABLE"), timeout=5)
        return failed.value.code()

    with greeters("a", "b") as (a, b):
        registry.register(a.instance)
        registry.register(b.instance)
        assert asyncio.run(call()) is grpc.StatusCode.UNAVAILABLE
        assert a.servicer.calls + b.servicer.calls == 1
        assert asyncio.run(call(idempotent_methods={SAY_HELLO}, retries=1)) is grpc.StatusCode.UNAVAILABLE
        assert a.servicer.calls + b.servicer.calls == 1 + 2


def test_a_cancelled_call_is_not_counted_against_its_instance(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup

    async def run() -> None:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(stub.SayHello(hello("sleep:2"), timeout=10), 0.3)
            assert (await stub.SayHello(hello("x"), timeout=5)).message == "a"

    with greeters("a") as (a,):
        registry.register(a.instance)
        asyncio.run(run())
    assert counts(discovery)["a"] == {"calls": 1, "errors": 0}


def test_no_instance_raises_unavailable_and_streaming_requests_go_to_one_instance(
        setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup

    async def run() -> grpc.StatusCode:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            with pytest.raises(NoInstanceError) as failed:
                await stub.SayHello(hello("x"), timeout=5)
            assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
            with greeters("a") as (a,):
                registry.register(a.instance)
                await stub.SayHello(hello("x"), timeout=5)
                with pytest.raises(grpc.RpcError) as unimplemented:
                    await channel.stream_unary("/greeter.Greeter/Upload")(iter([b""]), timeout=5)
                return unimplemented.value.code()

    assert asyncio.run(run()) is grpc.StatusCode.UNIMPLEMENTED
    assert counts(discovery)["a"] == {"calls": 2, "errors": 0}, "UNIMPLEMENTED is the application's answer"


def test_a_response_stream_goes_elsewhere_while_nothing_arrived(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup

    async def run() -> List[List[str]]:
        async with AsyncDiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            streams = []
            for _ in range(2):  # round robin starts one or both on the dead instance
                streams.append([r.message async for r in stub.SayHelloStream(hello("x", count=2), timeout=5)])
            return streams

    with greeters("a") as (a,):
        registry.register(dead_instance())
        registry.register(a.instance)
        assert asyncio.run(run()) == [["a 0", "a 1"], ["a 0", "a 1"]]
    assert counts(discovery)["dead"]["errors"] >= 1
    assert counts(discovery)["a"] == {"calls": 2, "errors": 0}
