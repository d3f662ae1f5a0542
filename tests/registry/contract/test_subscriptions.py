"""Contract: subscriptions deliver full, ordered, latest-wins snapshots and end cleanly."""

from __future__ import annotations

import queue
from typing import List, Optional

import pytest

from fyerreg import Snapshot, Status, Subscription
from tests.helpers import ids, next_snapshot, pending, wait_until
from tests.registry.contract.support import SERVICE, make_instance, unstamped

pytestmark = pytest.mark.chosen_ids  # every test here reads back the ids it chose


def _take_all(sub: Subscription) -> List[Optional[Snapshot]]:
    """Consume everything queued now, without waiting."""
    items: List[Optional[Snapshot]] = []
    while True:
        try:
            items.append(sub.get_nowait())
        except queue.Empty:
            return items


def test_first_item_is_current_state_and_changes_follow(backend):
    writer, watcher = backend.new(), backend.new()
    a = make_instance("a")
    writer.register(a)

    sub = watcher.subscribe(SERVICE, "v1")
    first = sub.get_nowait()  # queued before subscribe returned
    assert isinstance(first, Snapshot)
    assert unstamped(first) == [a]
    assert first.stale is False

    b = make_instance("b", port=8001)
    writer.register(b)
    assert unstamped(next_snapshot(sub, lambda s: len(s) == 2)) == [a, b]

    b2 = b.replace(weight=3, status=Status.DISABLED, metadata={"x": "y"})
    writer.update_service(b2)
    assert unstamped(next_snapshot(sub, lambda s: len(s) == 2 and s[1].weight == 3)) == [a, b2]

    writer.deregister(a)
    assert unstamped(next_snapshot(sub, lambda s: len(s) == 1)) == [b2]
    writer.deregister(b2)
    assert next_snapshot(sub, lambda s: not s) == []


def test_subscription_filters_by_version(backend):
    writer, watcher = backend.new(), backend.new()
    only_v1 = watcher.subscribe(SERVICE, "v1")
    every = watcher.subscribe(SERVICE)
    other_service = watcher.subscribe(SERVICE + "-other")
    writer.register(make_instance("x", version="v2"))
    writer.register(make_instance("y", version="v10"))
    writer.register(make_instance("z", version="v1"))
    got = next_snapshot(every, lambda s: len(s) == 3)
    assert [(i.id, i.version) for i in got] == [("x", "v2"), ("y", "v10"), ("z", "v1")]
    assert ids(next_snapshot(only_v1, lambda s: len(s) > 0)) == ["z"]
    writer.register(make_instance("w", service=SERVICE + "-other"))
    assert ids(next_snapshot(other_service, lambda s: len(s) > 0)) == ["w"]
    # Every snapshot the v1 subscription ever got held only v1 instances.
    only_v1.close()
    assert all(inst.version == "v1" for snap in only_v1 for inst in snap)


def test_snapshot_revisions_increase(backend):
    writer, watcher = backend.new(), backend.new()
    sub = watcher.subscribe(SERVICE, maxsize=64)
    inst = make_instance("rev")
    writer.register(inst)
    for weight in range(1, 6):
        writer.update_service(inst.replace(weight=weight))
    writer.register(make_instance("zz-last"))
    wait_until(lambda: any(s is not None and ids(s) == ["rev", "zz-last"] for s in pending(sub)))
    snapshots = [s for s in _take_all(sub) if s is not None]
    revisions = [s.revision for s in snapshots]
    assert len(snapshots) >= 2
    assert all(a < b for a, b in zip(revisions, revisions[1:])), revisions
    assert snapshots[-1][0].weight == 5
    assert all(s.stale is False for s in snapshots)


def test_latest_wins_when_the_consumer_does_not_read(backend):
    writer, watcher = backend.new(), backend.new()
    sub = watcher.subscribe(SERVICE, maxsize=2)
    expected = [f"i{n:02d}" for n in range(12)]
    for n, name in enumerate(expected):
        writer.register(make_instance(name, port=8000 + n))
        assert sub.qsize() <= 2

    wait_until(lambda: ids(pending(sub)[-1] or []) == expected)
    assert sub.qsize() <= 2
    assert sub.conflated > 0

    sub.close()
    items = _take_all(sub)
    assert items[-1] is None and items.count(None) == 1
    assert ids(items[-2] or []) == expected
    assert len(items) <= 3


def test_subscribers_are_independent(backend):
    writer, watcher, elsewhere = backend.new(), backend.new(), backend.new()
    one = watcher.subscribe(SERVICE, "v1")
    two = watcher.subscribe(SERVICE, "v1")
    three = elsewhere.subscribe(SERVICE, "v1")
    writer.register(make_instance("a"))
    writer.register(make_instance("b", port=8001))

    # Reading one to the end takes nothing from the others: each still starts with the initial state.
    assert ids(next_snapshot(one, lambda s: len(s) == 2)) == ["a", "b"]
    assert two.get_nowait() == []
    assert three.get_nowait() == []
    assert ids(next_snapshot(two, lambda s: len(s) == 2)) == ["a", "b"]
    assert ids(next_snapshot(three, lambda s: len(s) == 2)) == ["a", "b"]


def test_subscription_close_ends_only_that_subscription(backend):
    writer, watcher = backend.new(), backend.new()
    closing = watcher.subscribe(SERVICE)
    staying = watcher.subscribe(SERVICE)
    writer.register(make_instance("x"))
    next_snapshot(closing, lambda s: ids(s) == ["x"])

    closing.close()
    closing.close()
    assert closing.closed
    writer.register(make_instance("y", port=8001))
    assert ids(next_snapshot(staying, lambda s: len(s) == 2)) == ["x", "y"]

    items = _take_all(closing)
    assert items == [None], "nothing after the sentinel, and the sentinel exactly once"
    assert list(closing) == []  # iteration of an ended subscription stops


def test_unsubscribe_ends_this_registrys_subscriptions_for_the_pair(backend):
    writer, watcher, elsewhere = backend.new(), backend.new(), backend.new()
    ended = [watcher.subscribe(SERVICE, "v1"), watcher.subscribe(SERVICE, "v1")]
    all_versions = watcher.subscribe(SERVICE)
    other_version = watcher.subscribe(SERVICE, "v2")
    other_registry = elsewhere.subscribe(SERVICE, "v1")
    writer.register(make_instance("before"))
    for sub in ended:
        next_snapshot(sub, lambda s: ids(s) == ["before"])

    watcher.unsubscribe(SERVICE, "v1")
    watcher.unsubscribe(SERVICE, "v1")  # nothing left to end: not an error
    watcher.unsubscribe(SERVICE, "v9")
    writer.register(make_instance("after", port=8001))

    for sub in (all_versions, other_registry):
        assert ids(next_snapshot(sub, lambda s: len(s) == 2)) == ["after", "before"]
    writer.register(make_instance("v2-inst", version="v2"))
    assert ids(next_snapshot(other_version, lambda s: len(s) == 1)) == ["v2-inst"]
    for sub in ended:
        assert sub.closed
        items = _take_all(sub)
        assert items[-1] is None and items.count(None) == 1
        assert all(item is None or ids(item) == ["before"] for item in items)


def test_registry_close_ends_its_subscriptions_after_the_last_snapshot(backend):
    writer, watcher = backend.new(), backend.new()
    sub = watcher.subscribe(SERVICE)
    writer.register(make_instance("a"))
    wait_until(lambda: any(s is not None and ids(s) == ["a"] for s in pending(sub)))
    watcher.close()
    items = _take_all(sub)
    assert items[-1] is None and items.count(None) == 1
    assert ids(items[-2] or []) == ["a"]
