"""Snapshots of a service's instances and the latest-wins queue that delivers them."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, List, Optional

from .._wakers import waker
from ..naming import Instance

__all__ = ["Snapshot", "Subscription", "DEFAULT_SUBSCRIPTION_SIZE"]

DEFAULT_SUBSCRIPTION_SIZE = 8
"""How many snapshots a subscription holds before it drops the oldest pending one."""
NOTHING = object()


def _order(inst: Instance) -> Any:
    return (inst.id, inst.version)


class Snapshot(List[Instance]):
    """The full set of instances of a (service, version) at one backend revision.

    A ``list`` of :class:`Instance`, sorted by id, that also says which ``revision``
    of the backend it reflects, when it was ``taken_at`` (``time.time()``), and
    whether it is ``stale``: served from a local cache while the backend is unreachable.
    """

    __slots__ = ("revision", "taken_at", "stale")

    def __init__(
        self,
        instances: Iterable[Instance] = (),
        *,
        revision: int = 0,
        taken_at: Optional[float] = None,
        stale: bool = False,
    ) -> None:
        super().__init__(sorted(instances, key=_order))
        self.revision = revision
        self.taken_at = time.time() if taken_at is None else taken_at
        self.stale = stale

    def __repr__(self) -> str:
        return (f"Snapshot({list.__repr__(self)}, revision={self.revision}, "
                f"taken_at={self.taken_at:.3f}, stale={self.stale})")

    @classmethod
    def _presorted(cls, instances: Iterable[Instance], *, revision: int, stale: bool = False) -> Snapshot:
        """A snapshot of ``instances`` that are already in snapshot order (by id, then version): no sort."""
        snapshot = cls.__new__(cls)
        list.__init__(snapshot, instances)
        snapshot.revision = revision
        snapshot.taken_at = time.time()
        snapshot.stale = stale
        return snapshot

    def copy(self) -> Snapshot:  # type: ignore[override]
        """A shallow copy with the same revision, time and staleness."""
        return Snapshot(self, revision=self.revision, taken_at=self.taken_at, stale=self.stale)


class _LatestWins(queue.Queue[Optional[Snapshot]]):
    """The queue under a :class:`Subscription`: a put never blocks and drops the oldest
    pending snapshot when full; the end is one ``None`` after the last snapshot.

    Defined here rather than used as a plain ``queue.Queue`` so that its locks are
    fyerreg's own, which :mod:`fyerreg._fork` renews in a forked child.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.ended = False
        self.conflated = 0
        self.delivered = 0
        self._wakers: List[Callable[[], None]] = []

    def _wake_all(self) -> None:
        wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def wake_when_ready(self, wake: Callable[[], None]) -> bool:
        """Call ``wake`` (once, in the producer's thread) when the next item is queued; False when one already is."""
        with self.mutex:
            if self._qsize() or self.ended:
                return False
            self._wakers.append(wake)
            return True

    def forget(self, wake: Callable[[], None]) -> None:
        with self.mutex:
            if wake in self._wakers:
                self._wakers.remove(wake)

    def take(self) -> Any:
        """The next item without blocking; ``NOTHING`` when none is queued (None: the end)."""
        with self.mutex:
            if not self._qsize():
                return NOTHING
            item = self._get()
            self.not_full.notify()
            return item

    def offer(self, snapshot: Snapshot) -> bool:
        with self.mutex:
            if self.ended:
                return False
            while self._qsize() >= self.maxsize:
                self._get()
                self.conflated += 1
                self.unfinished_tasks -= 1
            self._put(snapshot)
            self.delivered += 1
            self.unfinished_tasks += 1
            self.not_empty.notify()
            self._wake_all()
            return True

    def end(self) -> bool:
        with self.mutex:
            if self.ended:
                return False
            self.ended = True
            self._put(None)  # may exceed maxsize by one: the sentinel is never dropped
            self.unfinished_tasks += 1
            self.not_empty.notify_all()
            self._wake_all()
            return True

    def drain(self) -> Optional[Snapshot]:
        latest: Optional[Snapshot] = None
        with self.mutex:
            while self._qsize():
                item = self._get()
                self.unfinished_tasks -= 1
                if item is not None:
                    latest = item
            if self.unfinished_tasks <= 0:
                self.unfinished_tasks = 0
                self.all_tasks_done.notify_all()
        return latest

    def peek(self) -> List[Optional[Snapshot]]:
        with self.mutex:
            return list(self.queue)

    def next_item(self) -> Optional[Snapshot]:
        """Block for the next item; None at the sentinel, or at once when it was already consumed."""
        with self.not_empty:
            while not self._qsize():
                if self.ended:
                    return None
                self.not_empty.wait()
            item = self._get()
            self.not_full.notify()
            return item


class Subscription:
    """A bounded, latest-wins queue of :class:`Snapshot` for one (service, version).

    The first item is the current state; each later item is the full new state after
    a change. When the consumer lags, the oldest pending snapshots are dropped
    (counted in :attr:`conflated`) but the newest one is never lost. When the
    subscription ends (``close()``, ``Registry.unsubscribe`` or ``Registry.close``)
    the sentinel ``None`` is put once, after the last snapshot. Iterating yields
    snapshots until that sentinel (and stops at once on an ended subscription whose
    sentinel was already consumed); ``async for`` does the same in a coroutine, waiting
    without blocking the event loop.

    Read it like a ``queue.Queue`` (``get``, ``get_nowait`` raising ``queue.Empty``,
    ``qsize``, ``empty``, ``full``, ``task_done``, ``join``), or with :meth:`drain`.
    The backend feeding it calls :meth:`publish`.
    """

    def __init__(
        self,
        service: str,
        version: Optional[str],
        *,
        maxsize: int = DEFAULT_SUBSCRIPTION_SIZE,
        on_close: Optional[Callable[[Subscription], None]] = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.service = service
        self.version = version
        self._queue = _LatestWins(maxsize)
        self._items = self._queue.queue  # the queue's deque, kept for qsize() on every pick
        self._on_close = on_close
        self._close_lock = threading.Lock()

    @property
    def maxsize(self) -> int:
        """How many snapshots are held before the oldest pending one is dropped."""
        return int(self._queue.maxsize)

    @property
    def closed(self) -> bool:
        """True once the subscription has ended (the sentinel is queued or consumed)."""
        return self._queue.ended

    @property
    def conflated(self) -> int:
        """How many snapshots were dropped unread because newer ones replaced them."""
        return self._queue.conflated

    @property
    def delivered(self) -> int:
        """How many snapshots were queued."""
        return self._queue.delivered

    # -- the producer's side ---------------------------------------------------------------

    def publish(self, snapshot: Optional[Snapshot]) -> bool:
        """Queue ``snapshot`` latest-wins (``None`` ends the subscription, without the close
        callback); return False when the subscription has ended."""
        if snapshot is None:
            self._queue.end()
            return False
        return self._queue.offer(snapshot)

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Queue a snapshot without ever blocking, dropping the oldest pending one when full.

        ``block`` and ``timeout`` are accepted for ``queue.Queue`` compatibility and ignored.
        Items put after the subscription ended are discarded.
        """
        self.publish(item)

    def put_nowait(self, item: Any) -> None:
        """Same as :meth:`put`."""
        self.publish(item)

    # -- the consumer's side ---------------------------------------------------------------

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Optional[Snapshot]:
        """The oldest pending item (``None`` once, at the end), as ``queue.Queue.get``:
        raises ``queue.Empty`` when none comes within ``timeout`` (or at once unless ``block``)."""
        return self._queue.get(block, timeout)

    def get_nowait(self) -> Optional[Snapshot]:
        """Same as ``get(block=False)``."""
        return self.get(block=False)

    def drain(self) -> Optional[Snapshot]:
        """Consume every pending item without blocking and return the newest snapshot.

        Returns None when no snapshot was pending. A sentinel found is consumed;
        :attr:`closed` tells the caller the subscription has ended.
        """
        return self._queue.drain()

    def peek(self) -> List[Optional[Snapshot]]:
        """The items queued now, oldest first, without consuming them."""
        return self._queue.peek()

    def qsize(self) -> int:
        """How many items are queued now; takes no lock, so it is the cheap check before :meth:`drain`."""
        return len(self._items)  # a deque's length is read atomically

    def empty(self) -> bool:
        """True when nothing is queued now."""
        return not self.qsize()

    def full(self) -> bool:
        """True when the next snapshot published drops the oldest pending one."""
        return self.qsize() >= self._queue.maxsize

    def task_done(self) -> None:
        """As ``queue.Queue.task_done``: one item taken with :meth:`get` is processed."""
        self._queue.task_done()

    def join(self) -> None:
        """As ``queue.Queue.join``: block until every queued item was taken and processed
        (items consumed by :meth:`drain` count as processed)."""
        self._queue.join()

    def __iter__(self) -> Iterator[Snapshot]:
        while True:
            item = self._queue.next_item()
            if item is None:
                return
            yield item

    async def __aiter__(self) -> AsyncIterator[Snapshot]:
        loop = asyncio.get_running_loop()
        while True:
            item = self._queue.take()
            if item is NOTHING:
                if self._queue.ended:
                    return
                arrived: asyncio.Future[None] = loop.create_future()
                wake = waker(loop, arrived)
                if not self._queue.wake_when_ready(wake):
                    continue
                try:
                    await arrived
                finally:
                    self._queue.forget(wake)
                continue
            if item is None:
                return
            yield item

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """End this subscription (idempotent); the backend stops watching for it."""
        with self._close_lock:
            ended = self._queue.end()
            callback, self._on_close = self._on_close, None
        if ended and callback is not None:
            callback(self)

    def _end_after_fork(self) -> None:
        """In a forked child (its locks already reset by ``fyerreg._fork``): end.

        The watch feeding this subscription is the parent's; the child subscribes again.
        """
        self._on_close = None
        self._queue.end()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Subscription {self.service}/{self.version or '*'} pending={self.qsize()} "
                f"closed={self.closed}>")
