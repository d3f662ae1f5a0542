"""Small helpers shared by the test suite: polling with a deadline, thread inspection."""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterable, List, Optional, TypeVar

from fyerreg import Instance, Snapshot, Subscription

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01) -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def fyerreg_threads() -> List[str]:
    """Names of the live threads the library started (named ``fyerreg-...``)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("fyerreg-") and t.is_alive())


def next_snapshot(
    subscription: Subscription, predicate: Callable[[Snapshot], object] = lambda s: True, timeout: float = 10.0
) -> Snapshot:
    """Read ``subscription`` until a snapshot satisfies ``predicate``; return it.

    Fails when the subscription ends (sentinel) or nothing matching arrives within ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            item = subscription.get(timeout=max(left, 0.001))
        except queue.Empty:
            raise AssertionError(f"no matching snapshot within {timeout} s") from None
        if item is None:
            raise AssertionError("subscription ended before a matching snapshot arrived")
        if predicate(item):
            return item


def pending(subscription: Subscription) -> List[Optional[Snapshot]]:
    """The items queued in ``subscription`` right now, oldest first, without consuming them."""
    with subscription.mutex:
        return list(subscription.queue)


def ids(instances: Iterable[Instance]) -> List[str]:
    """The ids of ``instances``, in order."""
    return [inst.id for inst in instances]
