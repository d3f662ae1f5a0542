"""The ``list_services`` cache: a watch-kept local state per listed (service, version)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from ...errors import RegistryUnavailableError
from ...metrics import Metrics
from ...naming import Instance
from ..subscription import Snapshot
from ._ops import Deadline
from ._watch import PrefixWatch

__all__ = ["ServiceCache"]

log = logging.getLogger("fyerreg.registry.etcd")

CATCH_UP_WAIT = 0.5
"""How long a cached read waits for the watch to show this registry's own latest write."""

Key = Tuple[str, Optional[str]]


class _Entry:
    def __init__(self, watch: PrefixWatch) -> None:
        self.watch = watch
        self.last_used = time.monotonic()
        self.serving_stale = False
        self.last_read: Optional[Snapshot] = None  # a direct read may be ahead of the watch


class ServiceCache:
    """Answers ``list_services`` from watches; serves the last known state while etcd is unreachable.

    An entry not listed for ``ttl`` seconds is dropped and its watch stopped.
    """

    def __init__(self, make_watch: Callable[[str, Optional[str]], PrefixWatch], metrics: Metrics, *,
                 ttl: float, join_timeout: float) -> None:
        self._make_watch = make_watch
        self._metrics = metrics
        self._ttl = ttl
        self._join_timeout = join_timeout
        self._entries: Dict[Key, _Entry] = {}
        self._own_writes: Dict[Key, int] = {}  # the revision of this registry's last write under each key
        self._lock = threading.Lock()
        self._closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def wrote(self, service: str, version: str, revision: int) -> None:
        """Note this registry's write under ``service``/``version`` at ``revision``: lists of that
        version and of every version answer from a watch only once it shows it."""
        with self._lock:
            for key in ((service, version), (service, None)):
                if revision > self._own_writes.get(key, 0):
                    self._own_writes[key] = revision

    def _store_went_back(self, revision: int) -> None:
        """etcd answered at a revision below our own writes: it was wiped or restored, and
        those writes are gone with the store that held them."""
        with self._lock:
            for key, written in self._own_writes.items():
                if written > revision:
                    self._own_writes[key] = revision

    def list(self, service: str, version: Optional[str], *,
             read: Callable[[], Snapshot], deadline: Deadline) -> List[Instance]:
        """The instances of (service, version): from the watch when it is current and shows this
        registry's last write there, else from ``read()``; when that fails for want of etcd,
        the last known state with a warning."""
        self._evict_idle()
        entry = self._entry(service, version, deadline)
        if entry is None:
            return list(read())
        entry.last_used = time.monotonic()
        watch = entry.watch
        with self._lock:
            min_revision = self._own_writes.get((service, version), 0)
        left = deadline.left()
        catch_up = CATCH_UP_WAIT if left is None else min(CATCH_UP_WAIT, left / 2)  # the rest is the read's
        if watch.connected and (watch.revision >= min_revision or watch.wait_for_revision(min_revision, catch_up)):
            self._metrics.inc("cache_hits")
            entry.serving_stale = False
            return list(watch.snapshot())
        try:
            found = read()
        except RegistryUnavailableError as exc:
            snapshot = watch.snapshot(stale=True)
            if entry.last_read is not None and entry.last_read.revision > snapshot.revision:
                snapshot = entry.last_read
            self._metrics.inc("cache_stale_reads")
            if not entry.serving_stale:  # once per outage, not once per call
                entry.serving_stale = True
                log.warning("etcd unreachable; serving the cached state of %s/%s (revision %d) until it is back: %s",
                            service, version or "*", snapshot.revision, exc,
                            extra={"service": service, "version": version or "*"})
            return list(snapshot)
        entry.serving_stale = False
        entry.last_read = found
        if found.revision < min_revision:
            self._store_went_back(found.revision)
        return list(found)

    def _entry(self, service: str, version: Optional[str], deadline: Deadline) -> Optional[_Entry]:
        key = (service, version)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None or self._closed:
                return entry
        watch = self._make_watch(service, version)
        watch.load(deadline=deadline)  # unreachable etcd: raises, nothing is cached yet
        with self._lock:
            if self._closed or key in self._entries:
                existing = self._entries.get(key)
                racing = True
            else:
                existing = self._entries[key] = _Entry(watch)
                racing = False
        if racing:
            return existing
        watch.start()
        return existing

    def _evict_idle(self) -> None:
        now = time.monotonic()
        with self._lock:
            idle = [key for key, entry in self._entries.items() if now - entry.last_used > self._ttl]
            entries = [self._entries.pop(key) for key in idle]
        for entry in entries:
            entry.watch.stop(self._join_timeout)

    def signal_stop(self) -> None:
        """Ask every watch to end, without waiting (:meth:`close` joins them)."""
        with self._lock:
            watches = [entry.watch for entry in self._entries.values()]
        for watch in watches:
            watch.signal_stop()

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop every watch and join its thread, within ``timeout`` seconds for all of them."""
        with self._lock:
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
        deadline = time.monotonic() + (self._join_timeout if timeout is None else timeout)
        for entry in entries:
            entry.watch.stop(max(0.0, deadline - time.monotonic()))
