"""One gRPC channel per live instance of a (service, version), following the Discovery's view."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Generic, List, Optional, Set, Tuple, TypeVar

from ...naming import Endpoint, Instance
from ._status import ENDPOINT

if TYPE_CHECKING:
    from ...discovery import Discovery

__all__ = ["ChannelPool", "Entry"]

C = TypeVar("C")
Key = Tuple[str, bool]

CLOSED_MESSAGE = "Cannot invoke RPC on closed channel!"  # what grpc raises, as a ValueError, after close()
SYNC_INTERVAL = 0.05
"""Seconds between two comparisons of the pool with the Discovery's candidates (made by calls, no thread)."""


class Entry(Generic[C]):
    """The channel to one instance's gRPC endpoint, with the calls on it in flight."""

    __slots__ = ("key", "channel", "inflight", "callables")

    def __init__(self, key: Key, channel: C) -> None:
        self.key = key
        self.channel = channel
        self.inflight = 0
        self.callables: Dict[object, Any] = {}

    def callable(self, owner: object, make: Callable[[C], Any]) -> Any:
        """This channel's multicallable for ``owner`` (one of ours), made on first use."""
        found = self.callables.get(owner)
        if found is None:
            found = self.callables[owner] = make(self.channel)
        return found


class ChannelPool(Generic[C]):
    """The channels of one (service, version): opened when a pick first needs one, retired when the
    instance leaves the Discovery's candidates (noticed by the first call at least
    ``SYNC_INTERVAL`` after the last look), closed once no call is in flight on it.

    The pool never closes a channel itself: :meth:`acquire`, :meth:`release` and
    :meth:`close` hand back the channels to close, so sync and asyncio callers close
    them their way. Channels freed where closing is not safe (a gRPC callback) wait in
    :meth:`defer` until the next :meth:`acquire`.
    """

    def __init__(self, discovery: Discovery, service: str, version: Optional[str],
                 open_channel: Callable[[Endpoint], C]) -> None:
        self._discovery = discovery
        self._service = service
        self._version = version
        self._open = open_channel
        self._lock = threading.Lock()  # never held across a network call: opening a channel does not connect
        self._entries: Dict[Key, Entry[C]] = {}
        self._seen: List[Instance] = []
        self._sync_after = 0.0  # monotonic time of the next comparison
        self._draining: Set[Entry[C]] = set()  # retired, calls still in flight
        self._deferred: List[C] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def acquire(self, inst: Instance) -> Tuple[Entry[C], List[C]]:
        """The entry of ``inst``'s gRPC endpoint, its call counted in flight, and channels to close now."""
        stale = self._sync()
        endpoint = inst.endpoint(ENDPOINT) or Endpoint(inst.address)
        key = (endpoint.address, endpoint.tls)
        with self._lock:
            if self._closed:
                raise ValueError(CLOSED_MESSAGE)
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = Entry(key, self._open(endpoint))
            entry.inflight += 1
            if self._deferred:
                stale, self._deferred = stale + self._deferred, []
        return entry, stale

    def release(self, entry: Entry[C]) -> Optional[C]:
        """The call on ``entry`` has ended; its channel when it is now to be closed."""
        with self._lock:
            entry.inflight -= 1
            if entry.inflight or entry not in self._draining:
                return None
            self._draining.discard(entry)
            return entry.channel

    def defer(self, channel: Optional[C]) -> None:
        """Close ``channel`` at the next :meth:`acquire` (or :meth:`close`)."""
        if channel is not None:
            with self._lock:
                self._deferred.append(channel)

    def _sync(self) -> List[C]:
        """Retire the channels of instances no longer among the candidates; those idle are returned."""
        now = time.monotonic()
        if now < self._sync_after:
            return []
        self._sync_after = now + SYNC_INTERVAL
        current = self._discovery.instances(self._service, self._version)
        seen = self._seen
        if len(current) == len(seen) and all(a is b for a, b in zip(current, seen)):
            return []  # the same instance objects: the view has not changed
        live = set()
        for inst in current:
            endpoint = inst.endpoint(ENDPOINT)
            if endpoint is not None:
                live.add((endpoint.address, endpoint.tls))
        with self._lock:
            self._seen = current
            gone = [entry for key, entry in self._entries.items() if key not in live]
            for entry in gone:
                del self._entries[entry.key]
                if entry.inflight:
                    self._draining.add(entry)
            return [entry.channel for entry in gone if entry.inflight == 0]

    def addresses(self) -> List[str]:
        """The addresses that have an open channel, sorted."""
        with self._lock:
            return sorted(address for address, _ in self._entries)

    def close(self) -> List[C]:
        """No more calls; every channel, to be closed now (calls still in flight on them are cancelled)."""
        with self._lock:
            self._closed = True
            entries = [*self._entries.values(), *self._draining]
            channels = [entry.channel for entry in entries] + self._deferred
            self._entries, self._draining, self._deferred = {}, set(), []
            return channels
