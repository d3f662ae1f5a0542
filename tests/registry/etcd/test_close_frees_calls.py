"""close() frees the gRPC calls of a registry's streams while every thread still runs.

A streaming gRPC call raises itself as its error, and the frames of that error's traceback
hold it: such a call lived on until a garbage collection, often the one at interpreter exit,
where gRPC's finalizer of a call (``_Rendezvous.__del__`` in grpc/_channel.py) takes the
call's lock, which a gRPC thread stopped by the exit can still hold. A script that ended
after closing its registry then never exited (seen with the examples' clients: all output
printed, the process stuck "Garbage-collecting" in that finalizer).
"""

from __future__ import annotations

import gc
import sys
import weakref
from typing import Any, Iterator, List

import pytest

from fyerreg.registry.etcd import EtcdRegistry
from tests.helpers import Proc, make_instance, wait_until

pytestmark = pytest.mark.etcd


@pytest.fixture()
def no_cyclic_gc() -> Iterator[None]:
    """Only reference counts free objects meanwhile, as when nothing triggers a collection."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _first_heartbeat(registry: EtcdRegistry) -> None:
    """Wait until a heartbeat opened the client's keepalive stream."""
    client: Any = registry._client
    wait_until(lambda: client._keepalives._shared is not None, timeout=10)


def _stream_calls(registry: EtcdRegistry) -> List[weakref.ReferenceType[Any]]:
    client: Any = registry._client
    calls = [client._watches._shared._call, client._keepalives._shared._call]
    assert all(call is not None for call in calls)
    return [weakref.ref(call) for call in calls]


def test_close_frees_the_watch_and_keepalive_calls(etcd_endpoints: List[str], namespace: str,
                                                   no_cyclic_gc: None) -> None:
    registry = EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, ttl=3)
    try:
        sub = registry.subscribe("svc")
        registry.register(make_instance("a"))
        _first_heartbeat(registry)
        calls = _stream_calls(registry)
    finally:
        registry.close()
    assert [call() is None for call in calls] == [True, True]
    sub.close()


def test_close_frees_calls_that_ended_with_an_error(etcd_endpoints: List[str], namespace: str,
                                                    no_cyclic_gc: None) -> None:
    registry = EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, ttl=3)
    try:
        registry.subscribe("svc")
        registry.register(make_instance("a"))
        _first_heartbeat(registry)
        client: Any = registry._client
        streams = [client._watches._shared, client._keepalives._shared]
        calls = _stream_calls(registry)
        # Both calls end with an error raised by the call itself, as when etcd goes away.
        for stream in streams:
            stream._call.cancel()
        wait_until(lambda: all(stream.broken is not None for stream in streams), timeout=10)
        assert "CANCELLED" in str(streams[1].broken)
    finally:
        registry.close()
    streams.clear()
    assert [call() is None for call in calls] == [True, True]


SCRIPT = """
import sys
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.naming import Instance
with EtcdRegistry(endpoints=sys.argv[1].split(","), namespace=sys.argv[2], ttl=3) as registry:
    sub = registry.subscribe("svc")
    registry.register(Instance.new("svc", "v1", "127.0.0.1:9", id=sys.argv[3]))
    sub.get(timeout=5)
print("closed", flush=True)
"""


def test_a_script_that_closed_its_registry_exits(etcd_endpoints: List[str], namespace: str) -> None:
    for n in range(5):
        script = Proc([sys.executable, "-c", SCRIPT, ",".join(etcd_endpoints), namespace, f"i{n}"])
        try:
            assert script.wait(30) == 0, script.output()
            assert "closed" in script.lines
        finally:
            script.close()
