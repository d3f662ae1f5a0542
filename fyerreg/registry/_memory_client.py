"""One MemoryRegistry's connection to a MemoryStore, speaking the etcd client's surface.

The registration and watch code of the etcd backend runs unchanged over it. Calls never
wait on I/O, so deadlines have nothing to bound. While unavailable (fault injection),
every call raises RegistryUnavailableError and the watches receive nothing.
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Iterator, Optional, Tuple

from ..errors import RegistryClosedError, RegistryUnavailableError
from ..retry import Retry
from ._memory_store import Apply, MemoryStore
from .base import MAX_TTL
from .kv._ops import Deadline, KeyValue, RangeResult, Txn, TxnResult, WatchBatch

__all__ = ["MemoryClient", "UNAVAILABLE"]

UNAVAILABLE = "registry unavailable"
"""What a call says while unavailability is injected (and what ``last_error`` then reads)."""


class _NoStream:
    """The watch of a memory client delivers in the writer's thread (:meth:`MemoryClient.watch_in_place`)."""

    endpoint = "memory"

    def __iter__(self) -> Iterator[WatchBatch]:
        raise RegistryUnavailableError("a memory watch delivers in place; it has no stream")

    def cancel(self) -> None:
        """Nothing to end."""


class MemoryClient:
    """The etcd surface of :class:`~fyerreg.registry.kv._surface.KVClient` on a :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore, *, retry: Retry) -> None:
        self.store = store
        self.retry = retry
        self.available = True
        self.closing = False  # set by close(): its removals go through even while unavailable
        self._closed = False
        self._lock = threading.Lock()
        self.id = store._connect(self)

    def _check(self) -> None:
        if self._closed:
            raise RegistryClosedError("the memory client is closed")
        if not (self.available or self.closing):
            raise RegistryUnavailableError(UNAVAILABLE)

    def set_available(self, available: bool) -> None:
        """Lose (False) or regain (True) the store; on regaining, every watch catches up once."""
        with self._lock:
            if self.available == available:
                return
            self.available = available
        if available:
            self.store._caught_up(self)

    # -- the KVClient surface --------------------------------------------------------------------

    def get_prefix(self, prefix: str, *, deadline: Optional[Deadline] = None,
                   stop: Optional[threading.Event] = None) -> RangeResult:
        """Every key under ``prefix`` and the revision of the read."""
        self._check()
        return self.store._range(prefix)

    def get(self, key: str, *, deadline: Optional[Deadline] = None,
            retry: Optional[Retry] = None) -> Tuple[int, Optional[KeyValue]]:
        """The store revision and ``key``'s KeyValue (None when absent)."""
        self._check()
        return self.store._get(key)

    def txn(self, txn: Txn, *, deadline: Optional[Deadline] = None) -> TxnResult:
        """Run a transaction; LeaseNotFoundError when a put names an unknown lease."""
        self._check()
        return self.store._txn(txn)

    def grant(self, ttl: float, *, deadline: Optional[Deadline] = None) -> int:
        """A new lease of ``ttl`` seconds (0: one that never expires); its id."""
        self._check()
        return self.store._grant(self.id, ttl)

    def refresh(self, lease_id: int, *, deadline: Optional[Deadline] = None, retry: Optional[Retry] = None) -> int:
        """Refresh a lease; its TTL in whole seconds (at least 1), 0 when it is gone."""
        self._check()
        return _seconds(self.store._refresh(lease_id))

    def revoke(self, lease_id: int, *, deadline: Optional[Deadline] = None) -> bool:
        """Revoke a lease (its keys go with it); False when it was already gone."""
        self._check()
        return self.store._revoke(lease_id)

    def time_to_live(self, lease_id: int, *, deadline: Optional[Deadline] = None) -> int:
        """Seconds left on a lease (rounded up); -1 when it is gone."""
        self._check()
        left = self.store._time_to_live(lease_id)
        return -1 if left < 0 else _seconds(left)

    def watch(self, prefix: str, start_revision: int) -> _NoStream:
        """No stream: a memory watch is set up with :meth:`watch_in_place`."""
        self._check()
        return _NoStream()

    def watch_in_place(self, prefix: str, start_revision: int, apply: Apply,
                       reload: Callable[[], None]) -> Callable[[], None]:
        """Deliver each later write under ``prefix`` to ``apply`` before the write returns;
        ``reload`` runs when the client is available again. Returns the call that ends it."""
        self._check()
        return self.store._watch(self, prefix, start_revision, apply, reload)

    def close(self) -> None:
        """Disconnect: the watches end and this client's leases (and their keys) go (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.store._disconnect(self.id)


def _seconds(ttl: float) -> int:
    if ttl <= 0:
        return 0
    return MAX_TTL if math.isinf(ttl) else max(1, math.ceil(ttl))
