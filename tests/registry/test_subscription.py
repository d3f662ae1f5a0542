"""Snapshot and the latest-wins Subscription queue, without any backend."""

from __future__ import annotations

import queue
import threading
from typing import List

import pytest

from fyerreg import Instance, Snapshot, Subscription


def snap(revision: int, *ids: str) -> Snapshot:
    return Snapshot([Instance(id=i, service="s", version="v1", address="h:1") for i in ids], revision=revision)


def test_snapshot_is_a_sorted_list_with_revision_time_and_staleness():
    s = Snapshot([Instance(id=i, service="s", version=v, address="h:1") for i, v in
                  [("b", "v1"), ("a", "v2"), ("a", "v1")]], revision=9, taken_at=12.5, stale=True)
    assert [(i.id, i.version) for i in s] == [("a", "v1"), ("a", "v2"), ("b", "v1")]
    assert (s.revision, s.taken_at, s.stale) == (9, 12.5, True)
    copy = s.copy()
    assert copy == s and copy is not s and (copy.revision, copy.taken_at, copy.stale) == (9, 12.5, True)
    assert Snapshot().taken_at > 0 and Snapshot().stale is False
    assert "revision=9" in repr(s)


def test_items_come_out_in_order_when_there_is_room():
    sub = Subscription("s", None, maxsize=4)
    for rev in (1, 2, 3):
        assert sub.publish(snap(rev))
    assert [sub.get_nowait().revision for _ in range(3)] == [1, 2, 3]
    assert sub.conflated == 0 and sub.delivered == 3


def test_latest_wins_when_full_the_oldest_pending_is_dropped():
    sub = Subscription("s", "v1", maxsize=2)
    for rev in range(1, 6):
        sub.put(snap(rev), block=True, timeout=0.01)  # never blocks
    assert sub.qsize() == 2
    assert [sub.get_nowait().revision for _ in range(2)] == [4, 5]
    assert sub.conflated == 3 and sub.delivered == 5
    sub.put_nowait(snap(6))
    assert sub.get_nowait().revision == 6


def test_sentinel_is_never_dropped_and_comes_once_after_the_last_snapshot():
    sub = Subscription("s", None, maxsize=1)
    sub.publish(snap(1))
    sub.close()
    sub.close()
    assert not sub.publish(snap(2)), "nothing is queued after the end"
    sub.put(snap(3))
    assert sub.closed
    assert sub.get_nowait().revision == 1
    assert sub.get_nowait() is None
    with pytest.raises(queue.Empty):
        sub.get_nowait()


def test_publishing_none_ends_the_subscription_without_the_close_callback():
    calls: List[Subscription] = []
    sub = Subscription("s", None, on_close=calls.append)
    assert not sub.publish(None)
    assert sub.closed and sub.get_nowait() is None
    sub.close()
    assert calls == []


def test_close_callback_runs_once_with_the_subscription():
    calls: List[Subscription] = []
    sub = Subscription("s", None, on_close=calls.append)
    threads = [threading.Thread(target=sub.close) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    sub.close()
    assert calls == [sub]
    with Subscription("s", None, on_close=calls.append) as other:
        pass
    assert calls == [sub, other]


def test_drain_returns_the_newest_and_consumes_the_sentinel():
    sub = Subscription("s", None, maxsize=8)
    assert sub.drain() is None
    for rev in (1, 2, 3):
        sub.publish(snap(rev))
    newest = sub.drain()
    assert newest is not None and newest.revision == 3
    assert sub.qsize() == 0
    sub.publish(snap(4))
    sub.close()
    newest = sub.drain()
    assert newest is not None and newest.revision == 4
    assert sub.closed and sub.qsize() == 0
    sub.join()  # every consumed item counts as done


def test_peek_shows_what_is_queued_oldest_first_without_consuming_it():
    sub = Subscription("s", None, maxsize=2)
    assert sub.peek() == [] and sub.empty() and not sub.full()
    for rev in (1, 2, 3):
        sub.publish(snap(rev))
    assert [s.revision for s in sub.peek() if s is not None] == [2, 3]
    assert sub.qsize() == 2 and sub.full() and sub.maxsize == 2
    sub.close()
    assert sub.peek()[-1] is None, "the end shows as the sentinel, after the last snapshot"
    assert sub.get_nowait().revision == 2, "peeking consumed nothing"
    sub.task_done()


def test_iteration_yields_until_the_sentinel():
    sub = Subscription("s", None)
    sub.publish(snap(1, "a"))
    sub.publish(snap(2, "a", "b"))
    sub.close()
    assert [s.revision for s in sub] == [1, 2]
    assert list(sub) == []  # ended and empty: stops at once instead of blocking


def test_iteration_wakes_up_for_later_items_and_the_end():
    sub = Subscription("s", None)
    got: List[int] = []
    consumer = threading.Thread(target=lambda: got.extend(s.revision for s in sub))
    consumer.start()
    sub.publish(snap(1))
    sub.publish(snap(2))
    sub.close()
    consumer.join(timeout=10)
    assert not consumer.is_alive()
    assert got == [1, 2]


def test_a_blocked_get_returns_the_sentinel_on_close():
    sub = Subscription("s", None)
    got: List[object] = []
    consumer = threading.Thread(target=lambda: got.append(sub.get(timeout=30)))
    consumer.start()
    sub.close()
    consumer.join(timeout=10)
    assert got == [None]


def test_maxsize_must_be_positive_and_repr_is_informative():
    with pytest.raises(ValueError, match="maxsize"):
        Subscription("s", None, maxsize=0)
    sub = Subscription("orders", None)
    assert "orders/*" in repr(sub) and "closed=False" in repr(sub)
