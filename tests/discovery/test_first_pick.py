"""First picks on a hung etcd: each service's subscribe is bounded by its own timeout, not queued behind others'."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from fyerreg import Discovery, Subscription
from fyerreg.errors import NoInstanceAvailableError, RegistryClosedError
from fyerreg.registry import etcd as etcd_backend

pytestmark = pytest.mark.etcd

TIMEOUT = 2.0


class CountingRegistry(etcd_backend.EtcdRegistry):
    """An EtcdRegistry counting, per service, the subscribe calls made by the picking threads
    (not those of the discovery's resubscribe thread, which retries with backoff meanwhile)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.subscribes: Dict[str, int] = {}
        self.subscribing = threading.Event()
        self._count_lock = threading.Lock()

    def subscribe(self, service: str, version: Optional[str] = None, **kwargs: Any) -> Subscription:
        self.subscribing.set()
        if threading.current_thread().name.startswith("picker-"):
            with self._count_lock:
                    self.subscribes[service] = self.subscribes.get(service, 0) + 1
        return super().subscribe(service, version, **kwargs)


def first_picks(discovery: Discovery, services: List[str]) -> Dict[int, float]:
    """Pick each of ``services`` in its own thread at once; seconds each pick took (all on a hung etcd)."""
    took: Dict[int, float] = {}
    errors: List[BaseException] = []
    start = threading.Barrier(len(services))

    def pick(n: int, service: str) -> None:
        start.wait()
        t0 = time.monotonic()
        try:
            discovery.select(service, "1")
        except NoInstanceAvailableError:
            took[n] = time.monotonic() - t0
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pick, args=(n, s), name=f"picker-{n}") for n, s in enumerate(services)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(took) == len(services), "a pick neither returned nor raised NoInstanceAvailableError"
    return took


def test_first_picks_of_different_services_do_not_wait_for_each_other(etcd_server) -> None:  # type: ignore[no-untyped-def]
    registry = CountingRegistry(endpoints=etcd_server.endpoints, dial_timeout=1.0)
    try:
        with Discovery(registry, subscribe_timeout=TIMEOUT) as discovery:
            etcd_server.pause()
            try:
                took = first_picks(discovery, ["a", "b", "c", "d"])
            finally:
                etcd_server.resume()
        # Queued behind each other they took 2, 4, 6 and 8 s.
        assert max(took.values()) < TIMEOUT + 1.5, took
        assert registry.subscribes == {"a": 1, "b": 1, "c": 1, "d": 1}
    finally:
        registry.close()


def test_threads_asking_for_the_same_new_service_share_one_subscribe(etcd_server) -> None:  # type: ignore[no-untyped-def]
    registry = CountingRegistry(endpoints=etcd_server.endpoints, dial_timeout=1.0)
    try:
        with Discovery(registry, subscribe_timeout=TIMEOUT) as discovery:
            etcd_server.pause()
            try:
                took = first_picks(discovery, ["same"] * 4)
            finally:
                etcd_server.resume()
        assert max(took.values()) < TIMEOUT + 1.5, took
        assert registry.subscribes.get("same", 0) == 1
    finally:
        registry.close()


def test_close_does_not_wait_for_a_first_subscribe_in_flight(etcd_server) -> None:  # type: ignore[no-untyped-def]
    registry = CountingRegistry(endpoints=etcd_server.endpoints, dial_timeout=1.0)
    discovery = Discovery(registry, subscribe_timeout=TIMEOUT)
    outcome: List[BaseException] = []
    try:
        etcd_server.pause()
        try:
            def pick() -> None:
                try:
                    discovery.select("a", "1")
                except BaseException as exc:
                    outcome.append(exc)

            picker = threading.Thread(target=pick, name="picker-0")
            picker.start()
            assert registry.subscribing.wait(5)  # the first subscribe is under way
            t0 = time.monotonic()
            discovery.close(timeout=1.0)
            closing = time.monotonic() - t0
            picker.join(timeout=TIMEOUT + 5)
        finally:
            etcd_server.resume()
        # It used to wait for the subscribe's whole timeout.
        assert closing < 1.0 + 0.5, closing
        assert [type(e) for e in outcome] == [RegistryClosedError]
        assert discovery.describe()["services"] == []
    finally:
        discovery.close()
        registry.close()
