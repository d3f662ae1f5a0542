"""Snapshots of a service's instances and the latest-wins queue that delivers them."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, List, Optional

from ..naming import Instance

__all__ = ["Snapshot", "Subscription", "DEFAULT_SUBSCRIPTION_SIZE"]

DEFAULT_SUBSCRIPTION_SIZE = 8
"""How many snapshots a subscription holds before it drops the oldest pending one."""


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


class Subscription(queue.Queue):  # type: ignore[type-arg]
    """A bounded, latest-wins queue of :class:`Snapshot` for one (service, version).

    The first item is the current state; each later item is the full new state after
    a change. When the consumer lags, the oldest pending snapshots are dropped
    (counted in :attr:`conflated`) but the newest one is never lost. When the
    subscription ends (``close()``, ``Registry.unsubscribe`` or ``Registry.close``)
    the sentinel ``None`` is put once, after the last snapshot. Iterating yields
    snapshots until that sentinel (and stops at once on an ended subscription whose
    sentinel was already consumed).
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
        super().__init__(maxsize=maxsize)
        self.service = service
        self.version = version
        self.conflated = 0
        self.delivered = 0
        self._closed = False
        self._on_close = on_close
        self._close_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        """True once the subscription has ended (the sentinel is queued or consumed)."""
        return self._closed

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        """Queue a snapshot without ever blocking, dropping the oldest pending one when full.

        ``block`` and ``timeout`` are accepted for ``queue.Queue`` compatibility and ignored.
        Items put after the subscription ended are discarded.
        """
        self.publish(item)

    def put_nowait(self, item: Any) -> None:
        """Same as :meth:`put`."""
        self.publish(item)

    def publish(self, snapshot: Optional[Snapshot]) -> bool:
        """Queue ``snapshot`` latest-wins; return False when the subscription has ended."""
        if snapshot is None:
            self._end()
            return False
        with self.mutex:
            if self._closed:
                return False
            while self._qsize() >= self.maxsize:
                self._get()
                self.conflated += 1
                self.unfinished_tasks -= 1
            self._put(snapshot)
            self.delivered += 1
            self.unfinished_tasks += 1
            self.not_empty.notify()
            return True

    def _end(self) -> bool:
        with self.mutex:
            if self._closed:
                return False
            self._closed = True
            self._put(None)  # may exceed maxsize by one: the sentinel is never dropped
            self.unfinished_tasks += 1
            self.not_empty.notify_all()
            return True

    def close(self) -> None:
        """End this subscription (idempotent); the backend stops watching for it."""
        with self._close_lock:
            ended = self._end()
            callback, self._on_close = self._on_close, None
        if ended and callback is not None:
            callback(self)

    def _end_after_fork(self) -> None:
        """In a forked child: renew the locks (a parent's thread may have held them) and end.

        The watch feeding this subscription is the parent's; the child subscribes again.
        """
        self.mutex = threading.Lock()
        self.not_empty = threading.Condition(self.mutex)
        self.not_full = threading.Condition(self.mutex)
        self.all_tasks_done = threading.Condition(self.mutex)
        self._close_lock = threading.Lock()
        self._on_close = None
        self._end()

    def drain(self) -> Optional[Snapshot]:
        """Consume every pending item without blocking and return the newest snapshot.

        Returns None when no snapshot was pending. A sentinel found is consumed;
        :attr:`closed` tells the caller the subscription has ended.
        """
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

    def __iter__(self) -> Iterator[Snapshot]:
        while True:
            with self.not_empty:
                while not self._qsize():
                    if self._closed:
                        return  # the sentinel was already consumed (by drain() or get())
                    self.not_empty.wait()
                item = self._get()
                self.not_full.notify()
            if item is None:
                return
            yield item

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Subscription {self.service}/{self.version or '*'} pending={self.qsize()} "
                f"closed={self._closed}>")
