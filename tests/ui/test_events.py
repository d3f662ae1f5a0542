"""The event hub on its own: each page its own bounded queue; one that lags is dropped, the others are not."""

from __future__ import annotations

import threading

from fyerreg.ui._events import Hub


def test_a_page_that_lags_is_dropped_and_its_connection_shut_while_the_others_get_everything() -> None:
    hub = Hub(queue_size=3)
    slow, fast = hub.add(), hub.add()
    assert slow is not None and fast is not None
    shut = threading.Event()
    slow.on_drop(shut.set)
    got = []
    for n in range(5):
        hub.publish(f"m{n}".encode())
        got.append(fast.next(0))  # the fast page reads each message as it comes
    assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert shut.is_set() and slow.dropped
    assert slow.next(0) is None  # ended: its handler stops at once
    assert len(hub) == 1 and hub.dropped == 1


def test_a_publisher_never_waits_for_a_page() -> None:
    hub = Hub(queue_size=1)
    listener = hub.add()
    assert listener is not None
    for _ in range(1000):  # nobody reads: the page is dropped at the second message, nothing blocks
        hub.publish(b"x")
    assert listener.dropped


def test_a_full_hub_refuses_pages_until_one_leaves_and_a_closed_hub_ends_them_all() -> None:
    hub = Hub(max_listeners=2)
    first, second = hub.add(), hub.add()
    assert first is not None and second is not None
    assert hub.add() is None
    first.end()
    third = hub.add()
    assert third is not None
    waiting = threading.Thread(target=lambda: results.append(second.next(None)))
    results: list = []
    waiting.start()
    hub.close()
    waiting.join(5)
    assert not waiting.is_alive() and results == [None]
    assert third.next(0) is None
    assert hub.add() is None


def test_an_idle_page_gets_an_empty_message_after_the_keepalive_wait() -> None:
    listener = Hub().add()
    assert listener is not None
    assert listener.next(0.01) == b""
