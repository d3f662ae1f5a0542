"""DiscoveryChannel with real grpc servers in this process: generated stubs call through it
unchanged; each call goes to a picked instance; failover follows the one Failover policy."""

from __future__ import annotations

import random
import threading
from concurrent import futures
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import greeter_pb2_grpc
import grpc
import pytest

from fyerreg import Instance, MemoryRegistry
from fyerreg.contrib.grpc import DiscoveryChannel, NoInstanceError
from fyerreg.discovery import Discovery, FastestBalancer
from fyerreg.errors import NoInstanceAvailableError
from fyerreg.naming import Endpoint
from fyerreg.testing.tls import make_certificates
from tests.helpers import free_port, no_fyerreg_thread_left, wait_until

from .servers import SAY_HELLO, SERVICE, Greeter, counts, greeters, hello


@pytest.fixture
def setup() -> Iterator[Tuple[MemoryRegistry, Discovery]]:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        yield registry, discovery


def dead_instance(name: str = "dead") -> Instance:
    return Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{free_port()}", id=name)


def test_a_generated_stub_calls_every_instance_through_the_channel(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    with greeters("a", "b") as (a, b), no_fyerreg_thread_left("closing the channel"):
        registry.register(a.instance)
        registry.register(b.instance)
        with DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            replies = [stub.SayHello(hello("x"), timeout=5).message for _ in range(4)]
            response, call = stub.SayHello.with_call(hello("x"), timeout=5)
            assert call.code() is grpc.StatusCode.OK and response.message in ("a", "b")
            assert stub.SayHello.future(hello("x"), timeout=5).result().message in ("a", "b")
            assert sorted(replies) == ["a", "a", "b", "b"]
            assert channel.addresses() == sorted([a.instance.address, b.instance.address])
        assert channel.addresses() == []
        with pytest.raises(ValueError, match="closed channel"):
            stub.SayHello(hello("x"), timeout=5)
    wait_until(lambda: sum(c["calls"] for c in counts(discovery).values()) == 6, timeout=5)


def test_call_latencies_reach_a_latency_aware_balancer(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, _ = setup
    with greeters("fast", "slow") as (fast, slow), \
            Discovery(registry, balancer=FastestBalancer(rng=random.Random(7))) as discovery, \
            DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
        slow.servicer.delay = 0.05
        registry.register(fast.instance)
        registry.register(slow.instance)
        stub = greeter_pb2_grpc.GreeterStub(channel)
        for _ in range(10):
            stub.SayHello(hello("x"), timeout=5)
        replies = [stub.SayHello(hello("x"), timeout=5).message for _ in range(60)]
    assert replies.count("fast") > 45, "the slow instance's latency was heard: it gets far fewer calls"
    assert replies.count("slow") >= 1, "and is not starved"


def test_a_call_never_sent_goes_to_another_instance_and_counts_against_the_first(
        setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    with greeters("a") as (a,):
        dead = dead_instance()
        registry.register(dead)
        registry.register(a.instance)
        with DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            assert [stub.SayHello(hello("x"), timeout=5).message for _ in range(4)] == ["a"] * 4
        assert counts(discovery)["dead"]["errors"] >= 1
        assert counts(discovery)["a"] == {"calls": 4, "errors": 0}


def test_without_retries_the_refused_call_fails_with_unavailable(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    registry.register(dead_instance())
    with DiscoveryChannel(discovery, SERVICE, "1.0.0", retries=0) as channel, \
            pytest.raises(grpc.RpcError) as failed:
        greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("x"), timeout=5)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "failed to connect" in failed.value.details()


def test_an_unavailable_answer_is_sent_again_only_for_an_idempotent_method(
        setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    with greeters("a", "b") as (a, b):
        registry.register(a.instance)
        registry.register(b.instance)
        plain = DiscoveryChannel(discovery, SERVICE, "1.0.0")
        idempotent = DiscoveryChannel(discovery, SERVICE, "1.0.0", idempotent_methods={SAY_HELLO})
        with plain, idempotent:
            with pytest.raises(grpc.RpcError) as failed:
                greeter_pb2_grpc.GreeterStub(plain).SayHello(hello("abort:UNAVAILABLE"), timeout=5)
            assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
            assert a.servicer.calls + b.servicer.calls == 1  # delivered: it may have been processed
            with pytest.raises(grpc.RpcError):
                greeter_pb2_grpc.GreeterStub(idempotent).SayHello(hello("abort:UNAVAILABLE"), timeout=5)
            assert a.servicer.calls + b.servicer.calls == 1 + 3  # the first try and retries=2 more
            assert a.servicer.calls >= 1 and b.servicer.calls >= 1


@pytest.mark.parametrize("code, counted", [("NOT_FOUND", False), ("INVALID_ARGUMENT", False),
                                           ("UNKNOWN", True), ("INTERNAL", True)])
def test_application_errors_do_not_count_against_the_instance_and_server_faults_do(
        setup: Tuple[MemoryRegistry, Discovery], code: str, counted: bool) -> None:
    registry, discovery = setup
    with greeters("a") as (a,):
        registry.register(a.instance)
        with DiscoveryChannel(discovery, SERVICE, "1.0.0", idempotent_methods={SAY_HELLO}) as channel, \
                pytest.raises(grpc.RpcError) as failed:
            greeter_pb2_grpc.GreeterStub(channel).SayHello(hello(f"abort:{code}"), timeout=5)
    assert failed.value.code() is grpc.StatusCode[code]
    assert a.servicer.calls == 1, "only UNAVAILABLE is ever retried"
    assert counts(discovery)["a"] == {"calls": 1, "errors": int(counted)}


def test_a_deadline_exceeded_counts_against_the_instance_and_bounds_the_call(
        setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    with greeters("a") as (a,):
        registry.register(a.instance)
        with DiscoveryChannel(discovery, SERVICE, "1.0.0", idempotent_methods={SAY_HELLO}) as channel, \
                pytest.raises(grpc.RpcError) as failed:
            greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("sleep:1"), timeout=0.2)
    assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert counts(discovery)["a"] == {"calls": 1, "errors": 1}


def test_no_instance_raises_a_grpc_error_that_is_also_fyerregs(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    _, discovery = setup
    with DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel, pytest.raises(NoInstanceError) as failed:
        greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("x"), timeout=5)
    assert isinstance(failed.value, grpc.RpcError) and isinstance(failed.value, NoInstanceAvailableError)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "no instance is registered" in failed.value.details()


def test_instances_of_another_protocol_are_never_picked(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    with greeters("a") as (a,):
        registry.register(Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{free_port()}", id="http-only",
                                       endpoints={"http": f"127.0.0.1:{free_port()}"}))
        registry.register(a.instance.replace(address=f"127.0.0.1:{free_port()}",
                                             endpoints={"grpc": a.instance.address}))
        with DiscoveryChannel(discovery, SERVICE, "1.0.0", retries=0) as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            assert {stub.SayHello(hello("x"), timeout=5).message for _ in range(4)} == {"a"}
            assert channel.addresses() == [a.instance.address]


def test_a_removed_instance_s_channel_closes_once_its_call_in_flight_has_ended(
        setup: Tuple[MemoryRegistry, Discovery], monkeypatch: pytest.MonkeyPatch) -> None:
    registry, discovery = setup
    opened: Dict[str, List[grpc.Channel]] = {}
    plain = grpc.insecure_channel

    def recording(target: str, *args: Any, **kwargs: Any) -> grpc.Channel:
        channel = plain(target, *args, **kwargs)
        opened.setdefault(target, []).append(channel)
        return channel

    def closed(channel: grpc.Channel) -> bool:
        try:
            channel.unary_unary(SAY_HELLO)(b"", timeout=1)
        except ValueError:
            return True
        except grpc.RpcError:
            pass
        return False

    monkeypatch.setattr(grpc, "insecure_channel", recording)
    with greeters("a", "b") as (a, b), DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
        stub = greeter_pb2_grpc.GreeterStub(channel)
        registry.register(a.instance)
        assert stub.SayHello(hello("x"), timeout=5).message == "a"
        a.servicer.gate = threading.Event()
        a.servicer.entered.clear()
        in_flight = stub.SayHello.future(hello("x"), timeout=10)
        assert a.servicer.entered.wait(5)
        registry.register(b.instance)
        registry.deregister(a.instance)
        wait_until(lambda: stub.SayHello(hello("x"), timeout=5).message == "b"
                   and channel.addresses() == [b.instance.address], timeout=5, interval=0.02)
        [a_channel] = opened[a.instance.address]
        assert not closed(a_channel), "a call is still in flight on it"
        a.servicer.gate.set()
        assert in_flight.result(5).message == "a", "the call in flight on the removed instance was not cut"
        stub.SayHello(hello("x"), timeout=5)
        wait_until(lambda: closed(a_channel), timeout=5)
        registry.register(a.instance)
        wait_until(lambda: len(discovery.instances(SERVICE, "1.0.0")) == 2, timeout=5)
        assert {stub.SayHello(hello("x"), timeout=5).message for _ in range(2)} == {"a", "b"}
        assert channel.addresses() == sorted([a.instance.address, b.instance.address])
        assert len(opened[a.instance.address]) == 2, "the instance came back: a new channel"
    assert all(closed(c) for chans in opened.values() for c in chans), "close() closed every channel"


def test_a_response_stream_goes_elsewhere_while_nothing_arrived(setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    with greeters("a") as (a,):
        registry.register(dead_instance())
        registry.register(a.instance)
        with DiscoveryChannel(discovery, SERVICE, "1.0.0") as channel:
            stub = greeter_pb2_grpc.GreeterStub(channel)
            for _ in range(2):  # round robin starts one or both on the dead instance
                stream = stub.SayHelloStream(hello("x", count=3), timeout=5)
                assert [r.message for r in stream] == ["a 0", "a 1", "a 2"]
                assert stream.code() is grpc.StatusCode.OK
        wait_until(lambda: counts(discovery)["a"] == {"calls": 2, "errors": 0}, timeout=5)
        assert counts(discovery)["dead"]["errors"] >= 1


def test_a_response_stream_broken_after_a_response_is_not_sent_again(
        setup: Tuple[MemoryRegistry, Discovery]) -> None:
    registry, discovery = setup
    with greeters("a", "b") as (a, b):
        registry.register(a.instance)
        registry.register(b.instance)
        with DiscoveryChannel(discovery, SERVICE, "1.0.0", idempotent_methods={"/greeter.Greeter/SayHelloStream"}
                              ) as channel:
            stream = greeter_pb2_grpc.GreeterStub(channel).SayHelloStream(hello("sleep:0.1", count=50), timeout=10)
            first = next(stream).message
            (a if first.startswith("a") else b).server.stop(0)
            with pytest.raises(grpc.RpcError) as failed:
                list(stream)
        assert failed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        assert a.servicer.calls + b.servicer.calls == 1


def test_bad_arguments_are_refused_naming_them() -> None:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        with pytest.raises(TypeError, match="discovery"):
            DiscoveryChannel(registry, SERVICE)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="service"):
            DiscoveryChannel(discovery, "")
        with pytest.raises(ValueError, match="retries"):
            DiscoveryChannel(discovery, SERVICE, retries=-1)
        with pytest.raises(TypeError, match="failure_codes"):
            DiscoveryChannel(discovery, SERVICE, failure_codes=["UNAVAILABLE"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="options"):
            DiscoveryChannel(discovery, SERVICE, options={"grpc.lb_policy_name": "pick_first"})  # type: ignore


def test_an_endpoint_marked_tls_is_called_over_tls_with_the_credentials_given(
        setup: Tuple[MemoryRegistry, Discovery], tmp_path: Path) -> None:
    registry, discovery = setup
    certs = make_certificates(str(tmp_path))

    def read(path: str) -> bytes:
        return Path(path).read_bytes()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter("tls"), server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        [(read(certs.server_key), read(certs.server_cert))]))
    server.start()
    try:
        registry.register(Instance.new(SERVICE, "1.0.0", f"127.0.0.1:{free_port()}", id="tls",
                                       endpoints={"grpc": Endpoint(f"127.0.0.1:{port}", tls=True)}))
        trusted = grpc.ssl_channel_credentials(root_certificates=read(certs.ca))
        with DiscoveryChannel(discovery, SERVICE, "1.0.0", credentials=trusted) as channel:
            assert greeter_pb2_grpc.GreeterStub(channel).SayHello(hello("x"), timeout=5).message == "tls"
        with DiscoveryChannel(discovery, SERVICE, "1.0.0", retries=0) as untrusting, \
                pytest.raises(grpc.RpcError) as failed:  # the system's roots do not know the test CA
            greeter_pb2_grpc.GreeterStub(untrusting).SayHello(hello("x"), timeout=5)
        assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)
