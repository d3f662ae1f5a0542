"""Discovery from coroutines: ``aselect``, ``async with pick``, ``async for`` over a subscription."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List, Optional

import pytest

from fyerreg import Discovery, MemoryRegistry, MemoryStore, Subscription
from fyerreg.errors import NoInstanceAvailableError
from fyerreg.registry import etcd as etcd_backend
from tests.helpers import loop_ticks_while, make_instance, no_fyerreg_thread_left, wait_until


class CountingRegistry(etcd_backend.EtcdRegistry):
    """An EtcdRegistry counting subscribe calls (and which threads made them)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subscribers: List[str] = []

    def subscribe(self, service: str, version: Optional[str] = None, **kwargs: Any) -> Subscription:
        self.subscribers.append(threading.current_thread().name)
        return super().subscribe(service, version, **kwargs)


@pytest.mark.etcd
def test_a_first_aselect_on_a_hung_etcd_never_blocks_the_loop_and_a_cancel_leaves_nothing(etcd_server):  # type: ignore[no-untyped-def]
    with no_fyerreg_thread_left("discovery.close and registry.close"):
        registry = CountingRegistry(endpoints=etcd_server.endpoints, dial_timeout=1.0)
        registry.register(make_instance("a", service="hung"), timeout=5)
        try:
            discovery = Discovery(registry, subscribe_timeout=2.0)
            try:
                etcd_server.pause()
                try:
                    async def cancelled_first_pick() -> None:
                        with pytest.raises(asyncio.TimeoutError):
                            await asyncio.wait_for(discovery.aselect("hung", "v1"), 0.5)

                    ticks = asyncio.run(loop_ticks_while(cancelled_first_pick()))
                finally:
                    etcd_server.resume()
                assert ticks >= 20, f"the loop ran {ticks} ticks of 10 ms in 0.5 s: it was blocked"
                assert registry.subscribers and all(n.startswith("fyerreg-open-") for n in registry.subscribers)

                async def later_pick() -> str:
                    return (await discovery.aselect("hung", "v1")).id

                # The subscribe given up by the cancelled task ran on (it timed out on the hung
                # etcd); the next pick opens the service, and the one after it is local.
                assert wait_until(lambda: _try(lambda: asyncio.run(later_pick())), timeout=15) == "a"
                subscribes = len(registry.subscribers)
                assert asyncio.run(later_pick()) == "a"
                assert len(registry.subscribers) == subscribes
            finally:
                discovery.close()
        finally:
            registry.close()


def _try(call: Any) -> Any:
    try:
        return call()
    except NoInstanceAvailableError:
        return None


@pytest.mark.etcd
def test_many_tasks_asking_for_a_new_service_share_one_subscribe_in_one_thread(etcd_server):  # type: ignore[no-untyped-def]
    registry = CountingRegistry(endpoints=etcd_server.endpoints, namespace="async-many")
    for n in range(3):
        registry.register(make_instance(f"i{n}", service="many", port=8000 + n), timeout=5)
    try:
        with Discovery(registry) as discovery:
            async def main() -> List[str]:
                picks = await asyncio.gather(*(discovery.aselect("many", "v1") for _ in range(200)))
                return [p.id for p in picks]

            picked = asyncio.run(main())
        assert sorted(set(picked)) == ["i0", "i1", "i2"]
        assert len(registry.subscribers) == 1 and registry.subscribers[0].startswith("fyerreg-open-")
    finally:
        registry.close()


@pytest.fixture
def memory() -> Any:
    registry = MemoryRegistry(store=MemoryStore())
    for n in range(2):
        registry.register(make_instance(f"i{n}", port=8000 + n))
    yield registry
    registry.close()


def _instances(discovery: Discovery) -> Any:
    return {i["id"]: i for s in discovery.describe()["services"] for i in s["instances"]}


def test_async_with_pick_reports_latency_errors_and_in_flight_calls(memory: MemoryRegistry):
    with Discovery(memory, balancer="least_requests") as discovery:
        async def main() -> None:
            async with discovery.pick("svc", "v1") as first, discovery.pick("svc", "v1") as second:
                assert second.id != first.id  # the first call is in flight: least requests avoids it
            with pytest.raises(ZeroDivisionError):
                async with discovery.pick("svc", "v1") as third:
                    raise ZeroDivisionError
            assert third.id
        asyncio.run(main())
        counts = _instances(discovery)
        assert sum(c["calls"] for c in counts.values()) == 3
        assert sum(c["errors"] for c in counts.values()) == 1


def test_a_cancelled_call_is_not_reported_and_leaves_no_call_in_flight(memory: MemoryRegistry):
    with Discovery(memory, balancer="least_requests") as discovery:
        entered = []

        async def call() -> None:
            async with discovery.pick("svc", "v1") as inst:
                entered.append(inst.id)
                await asyncio.sleep(30)

        balancer = None

        async def main() -> List[int]:
            nonlocal balancer
            tasks = [asyncio.ensure_future(call()) for _ in range(50)]
            while len(entered) < 50:
                await asyncio.sleep(0.001)
            balancer = discovery._views[("svc", "v1")]._balancer
            during = [balancer.in_flight(i) for i in discovery.instances("svc", "v1")]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return during

        during = asyncio.run(main())
        assert sorted(set(entered)) == ["i0", "i1"]
        assert during == [25, 25]
        counts = _instances(discovery)
        assert sum(c["calls"] for c in counts.values()) == 0
        assert sum(c["errors"] for c in counts.values()) == 0
        assert [balancer.in_flight(i) for i in discovery.instances("svc", "v1")] == [0, 0]


def test_aselect_by_endpoint_picks_only_instances_serving_it(memory: MemoryRegistry):
    memory.register(make_instance("g", port=9000).replace(endpoints={"grpc": "127.0.0.1:9001"}))
    memory.register(make_instance("h", port=9002).replace(endpoints={"http": "127.0.0.1:9003"}))
    with Discovery(memory) as discovery:
        async def main(endpoint: str) -> List[str]:
            return [(await discovery.aselect("svc", "v1", endpoint=endpoint)).id for _ in range(12)]

        # i0 and i1 name no endpoints: they answer every protocol at their address.
        assert set(asyncio.run(main("grpc"))) == {"i0", "i1", "g"}
        assert set(asyncio.run(main("http"))) == {"i0", "i1", "h"}
        for n in range(2):
            memory.deregister(make_instance(f"i{n}", port=8000 + n))
        wait_until(lambda: len(discovery.instances("svc", "v1")) == 2)
        assert set(asyncio.run(main("grpc"))) == {"g"}
        assert {discovery.select("svc", "v1", endpoint="http").id for _ in range(6)} == {"h"}
        memory.deregister(make_instance("g", port=9000))
        wait_until(lambda: len(discovery.instances("svc", "v1")) == 1)
        with pytest.raises(NoInstanceAvailableError, match="'grpc' endpoint") as err:
            discovery.select("svc", "v1", endpoint="grpc")
        assert err.value.service == "svc"
        with pytest.raises(NoInstanceAvailableError, match="'grpc' endpoint"):
            asyncio.run(main("grpc"))


def test_async_for_yields_each_change_and_ends_with_the_subscription(memory: MemoryRegistry):
    sub = memory.subscribe("svc", "v1")

    async def main() -> List[List[str]]:
        seen: List[List[str]] = []
        async for snapshot in sub:
            seen.append(sorted(i.id for i in snapshot))
            if len(seen) == 1:
                threading.Thread(target=memory.register, args=(make_instance("i2", port=8002),)).start()
            elif len(seen) == 2:
                threading.Thread(target=sub.close).start()
        return seen

    assert asyncio.run(main()) == [["i0", "i1"], ["i0", "i1", "i2"]]


def test_a_cancelled_async_for_leaves_no_waiter_behind(memory: MemoryRegistry):
    sub = memory.subscribe("svc", "v1")
    sub.drain()

    async def main() -> None:
        async def follow() -> None:
            async for _ in sub:
                pass

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(follow(), 0.05)

    asyncio.run(main())
    assert sub._queue._wakers == []
    memory.register(make_instance("i2", port=8002))  # a producer finds no stale waiter to call
    wait_until(lambda: sub.qsize() == 1)
    sub.close()
    assert sub.closed


def test_async_for_on_an_ended_subscription_stops_at_once(memory: MemoryRegistry):
    sub = memory.subscribe("svc", "v1")
    sub.close()

    async def main() -> int:
        return len([s async for s in sub])

    t0 = time.monotonic()
    assert asyncio.run(main()) == 1  # the snapshot queued before the end, then the end
    assert asyncio.run(main()) == 0
    assert time.monotonic() - t0 < 5
