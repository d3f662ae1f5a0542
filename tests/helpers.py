"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import queue
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, List, Optional, TypeVar

from fyerreg import Instance, Snapshot, Subscription

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, message: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate!r}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True when ``pid`` is a live (not zombie) process, read from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def process_cmdline(pid: int) -> Optional[List[str]]:
    """The argv of ``pid`` from /proc (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def etcd_pids(client_url: str) -> List[int]:
    """Pids of live etcd processes listening for clients on exactly ``client_url``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = process_cmdline(int(entry))
        if argv and os.path.basename(argv[0]) == "etcd" and client_url in argv and process_alive(int(entry)):
            pids.append(int(entry))
    return pids


def child_pids(parent: int) -> List[int]:
    """Pids of the live children of ``parent``, read from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] not in ("Z", "X"):
            children.append(int(entry))
    return children


def fyerreg_threads() -> List[str]:
    """Names of the live threads the library started (named ``fyerreg-...``)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("fyerreg-") and t.is_alive())


@contextmanager
def no_fyerreg_thread_left(what: str = "close") -> Iterator[None]:
    """Fail unless every ``fyerreg-`` thread started inside the block has ended when it exits."""
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in threading.enumerate()
              if t not in before and t.name.startswith("fyerreg-") and t.is_alive()]
    assert not leaked, f"threads left running after {what}: {leaked}"


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
    return subscription.peek()


def ids(instances: Iterable[Instance]) -> List[str]:
    """The ids of ``instances``, in order."""
    return [inst.id for inst in instances]
