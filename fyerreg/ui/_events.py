"""Server-sent events to the pages: one bounded queue per page; a page that falls behind is dropped.

A publisher never waits for a page: :meth:`Hub.publish` only appends to each
listener's queue. A listener whose queue is full is dropped at once (its connection is
shut, so a write stuck on a page that stopped reading ends too); the browser's
EventSource connects again and starts from the whole state.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable, Deque, List, Optional, Set

__all__ = ["Hub", "Listener", "DEFAULT_QUEUE", "DEFAULT_LISTENERS"]

DEFAULT_QUEUE = 256
"""Messages a page may have pending before it is dropped."""
DEFAULT_LISTENERS = 32
"""Pages watching at once; the next one is refused until one leaves."""


class Listener:
    """One page's pending messages. ``next()`` blocks for the next one."""

    def __init__(self, hub: Hub, maxsize: int) -> None:
        self._hub = hub
        self._maxsize = maxsize
        self._items: Deque[bytes] = collections.deque()
        self._ready = threading.Condition(threading.Lock())
        self._on_drop: Optional[Callable[[], None]] = None
        self.ended = False
        self.dropped = False

    def on_drop(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the publishing thread) if this listener is dropped for lagging."""
        with self._ready:
            self._on_drop = callback
            dropped = self.dropped
        if dropped:
            callback()

    def offer(self, message: bytes) -> bool:
        """Queue ``message``; False when the listener has ended or was just dropped for being full."""
        with self._ready:
            if self.ended:
                return False
            if len(self._items) >= self._maxsize:
                self.ended = self.dropped = True
                self._items.clear()
                callback = self._on_drop
                self._ready.notify_all()
            else:
                self._items.append(message)
                self._ready.notify()
                return True
        self._hub.drop(self)  # here, once: the listener may leave the hub before the publisher looks again
        if callback is not None:
            callback()
        return False

    def next(self, timeout: Optional[float] = None) -> Optional[bytes]:
        """The next message; ``b""`` when none came within ``timeout``; None once ended."""
        with self._ready:
            if not self._items and not self.ended:
                self._ready.wait(timeout)
            if self._items:
                return self._items.popleft()
            return None if self.ended else b""

    def end(self) -> None:
        """End this listener: :meth:`next` returns None at once; it leaves the hub."""
        with self._ready:
            self.ended = True
            self._items.clear()
            self._ready.notify_all()
        self._hub.discard(self)


class Hub:
    """The pages watching: at most ``max_listeners``, each queue at most ``queue_size`` messages."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE, max_listeners: int = DEFAULT_LISTENERS) -> None:
        self.queue_size = queue_size
        self.max_listeners = max_listeners
        self._listeners: Set[Listener] = set()
        self._closed = False
        self._lock = threading.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._listeners)

    def add(self) -> Optional[Listener]:
        """A new listener; None when the hub is closed or full."""
        with self._lock:
            if self._closed or len(self._listeners) >= self.max_listeners:
                return None
            listener = Listener(self, self.queue_size)
            self._listeners.add(listener)
            return listener

    def discard(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def publish(self, message: bytes) -> None:
        """Queue ``message`` for every listener; one that is full is dropped."""
        with self._lock:
            listeners = list(self._listeners)
        lagging: List[Listener] = [listener for listener in listeners if not listener.offer(message)]
        for listener in lagging:
            listener.end()

    def drop(self, listener: Listener) -> None:
        """Remove ``listener``, dropped for lagging, and count it in :attr:`dropped`."""
        with self._lock:
            self._listeners.discard(listener)
            self.dropped += 1

    def close(self) -> None:
        """End every listener and refuse new ones."""
        with self._lock:
            self._closed = True
            listeners, self._listeners = list(self._listeners), set()
        for listener in listeners:
            listener.end()
