"""Slow and stuck consumers: bounded memory, the latest state on waking, no harm to other
subscribers, and consumer code that raises never stopping the flow of snapshots."""

from __future__ import annotations

import threading
from typing import Iterator, List

import pytest

from fyerreg import Instance
from fyerreg.discovery import Discovery
from fyerreg.discovery.filters import where
from fyerreg.testing import raw_client
from tests.helpers import ids, next_snapshot, pending, wait_until
from tests.registry.etcd.support import SERVICE, make_instance

pytestmark = pytest.mark.etcd

WRITES = 300


def _watch_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fyerreg-watch-") and t.is_alive()]


class _Flaky:
    """A writer, a watcher, and a Discovery on the watcher whose filter (consumer code) raises
    while ``broken`` is set."""

    def __init__(self, registries) -> None:
        self.writer, self.watcher = registries.new(), registries.new()
        self.broken = threading.Event()
        self.discovery = Discovery(self.watcher, filters=[where(self._lookup)])

    def _lookup(self, inst: Instance) -> bool:
        if self.broken.is_set():
            raise RuntimeError("the zone service is down")
        return True

    def ids(self) -> List[str]:
        return ids(self.discovery.instances(SERVICE, "v1"))

    def seen(self) -> List[str]:
        """The ids of the last snapshot the Discovery took in, filtered or not."""
        [view] = self.discovery.describe()["services"]
        return sorted(i["id"] for i in view["instances"])


@pytest.fixture
def flaky(registries) -> Iterator[_Flaky]:
    made = _Flaky(registries)
    try:
        yield made
    finally:
        made.discovery.close()


def test_a_subscriber_that_never_reads_holds_at_most_maxsize_and_wakes_to_the_latest(
    registries, etcd_endpoints: List[str]
):
    watcher = registries.new()
    stuck = watcher.subscribe(SERVICE, "v1", maxsize=4)
    reader = watcher.subscribe(SERVICE, "v1")
    prefix = f"/{registries.namespace}/services/{SERVICE}/v1/"
    client = raw_client(etcd_endpoints)
    sizes = []
    try:
        for n in range(WRITES):
            inst = make_instance(f"i{n:03d}", port=8000 + n % 1000)
            client.put(prefix + inst.id, inst.to_json())
            sizes.append(stuck.qsize())
    finally:
        client.close()
    everyone = [f"i{n:03d}" for n in range(WRITES)]

    # The other subscriber (same registry) is not held up by the stuck one.
    next_snapshot(reader, lambda s: ids(s) == everyone, timeout=20)
    wait_until(lambda: stuck.qsize() and ids(pending(stuck)[-1] or []) == everyone, timeout=10)
    assert max(sizes) <= 4 and stuck.qsize() <= 4
    assert stuck.conflated > 0

    latest = stuck.drain()  # the consumer wakes up: what it reads first is the newest state
    assert latest is not None and ids(latest) == everyone
    registries.new().register(make_instance("after-wake", port=9999))
    assert ids(next_snapshot(stuck)) == sorted([*everyone, "after-wake"])


def test_consumer_code_that_raises_stops_neither_the_watch_nor_later_picks(flaky):
    flaky.writer.register(make_instance("a"))
    assert flaky.ids() == ["a"]
    threads = _watch_threads()
    flaky.broken.set()
    flaky.writer.register(make_instance("b", port=8001))

    def picking_fails() -> bool:
        try:
            flaky.discovery.select(SERVICE, "v1")
        except RuntimeError:
            return True  # the consumer's own error, raised to the caller
        return False

    wait_until(picking_fails, timeout=10)
    flaky.writer.register(make_instance("c", port=8002))
    # c's snapshot reaches the Discovery while its filter still raises (else the check after
    # the recovery below would race the watch instead of proving what recovery serves).
    wait_until(lambda: picking_fails() and flaky.seen() == ["a", "b", "c"], timeout=10)
    with pytest.raises(RuntimeError):
        flaky.discovery.select(SERVICE, "v1")
    assert all(t.is_alive() for t in threads)

    flaky.broken.clear()  # the consumer works again: it serves the newest state, not the one before the failure
    assert flaky.ids() == ["a", "b", "c"]
    assert {flaky.discovery.select(SERVICE, "v1").id for _ in range(9)} == {"a", "b", "c"}
    flaky.writer.deregister(make_instance("a"))
    wait_until(lambda: flaky.ids() == ["b", "c"], timeout=10)


def test_consumer_code_that_raises_at_the_first_pick_opens_one_subscription_only(flaky):
    flaky.broken.set()
    flaky.writer.register(make_instance("a"))
    for _ in range(5):
        with pytest.raises(RuntimeError):
            flaky.discovery.select(SERVICE, "v1")
    assert flaky.watcher.stats()["gauges"]["subscriptions"] == 1
    flaky.broken.clear()
    assert flaky.discovery.select(SERVICE, "v1").id == "a"
    flaky.discovery.close()
    assert flaky.watcher.stats()["gauges"]["subscriptions"] == 0


def test_consumer_code_that_raises_while_discovery_resubscribes_does_not_end_its_thread(flaky):
    flaky.writer.register(make_instance("a"))
    assert flaky.ids() == ["a"]
    flaky.broken.set()
    flaky.watcher.unsubscribe(SERVICE, "v1")  # the subscription ends: discovery subscribes again, in its thread
    flaky.ids()  # a pick notices the end
    wait_until(lambda: flaky.watcher.stats()["gauges"]["subscriptions"] == 1, timeout=10,
               message="discovery subscribed again")
    flaky.broken.clear()
    flaky.writer.register(make_instance("b", port=8001))
    wait_until(lambda: flaky.ids() == ["a", "b"], timeout=10)

    flaky.watcher.unsubscribe(SERVICE, "v1")  # and once more: the resubscribing thread is still there
    flaky.ids()
    flaky.writer.register(make_instance("c", port=8002))
    wait_until(lambda: flaky.ids() == ["a", "b", "c"], timeout=10)
