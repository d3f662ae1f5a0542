"""An in-process etcd: a revisioned key-value store with leases and watches, shared by MemoryRegistry objects."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Set, Tuple

from .._threads import join_thread, start_thread
from ..naming import Instance
from .kv._ops import (
    Compare,
    Delete,
    Get,
    KeyValue,
    Op,
    OpResult,
    Put,
    RangeResult,
    Txn,
    TxnResult,
    WatchBatch,
    WatchEvent,
)
from .kv._records import lease_hex
from .kv._surface import LeaseNotFoundError
from .layouts import FyerRpcLayout

if TYPE_CHECKING:
    from ._memory_client import MemoryClient

__all__ = ["MemoryStore", "LAYOUT"]

log = logging.getLogger("fyerreg.registry.memory")

LAYOUT = FyerRpcLayout("fyerrpc")
"""Where MemoryRegistry keeps its records in a store: etcd's default layout."""

_JOIN_TIMEOUT = 5.0

Apply = Callable[[WatchBatch], bool]
"""Receives each watch response in the writer's thread; False ends the watch."""


@dataclasses.dataclass
class _Lease:
    owner: int
    ttl: float  # 0: never expires
    deadline: Optional[float]
    keys: Set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class _Watcher:
    client: MemoryClient
    prefix: str
    apply: Apply
    reload: Callable[[], None]


class _Expiry:
    __slots__ = ("thread", "stopped")

    def __init__(self) -> None:
        self.thread: Optional[threading.Thread] = None
        self.stopped = False


class MemoryStore:
    """The in-process "etcd" that :class:`~fyerreg.registry.memory.MemoryRegistry` objects share.

    Several registries on one store see each other's instances, like several processes
    on one etcd. The store keeps keys with their revisions, a revision counter
    incremented on every write, leases (removing their keys when they run out) and
    watches, which receive each write before the writing call returns. A background
    thread enforces lease expiry while at least one registry is connected.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._revision = 0
        self._ids = itertools.count(1)
        self._kvs: Dict[str, KeyValue] = {}
        self._leases: Dict[int, _Lease] = {}
        self._clients: Dict[int, MemoryClient] = {}
        self._watchers: List[_Watcher] = []
        self._expiry: Optional[_Expiry] = None

    @property
    def revision(self) -> int:
        """The number of writes so far (what snapshots carry as ``revision``)."""
        with self._lock:
            return self._revision

    def expire(self, instance: Instance) -> bool:
        """Fault injection: the lease of the record stored for ``instance`` runs out now.

        Watchers see the instance removed. Its owner re-registers it on its next
        keepalive (when it has a ``ttl`` and keepalive is not suspended) or on its next
        ``update_service``. Returns False when no such record exists.
        """
        with self._lock:
            kv = self._kvs.get(LAYOUT.instance_key(instance))
            if kv is None:
                return False
            if kv.lease:
                self._end_lease_locked(kv.lease)
            else:
                self._write_locked([(kv.key, None)])
        log.info("Lease expired (injected): %s/%s/%s", instance.service, instance.version, instance.id,
                 extra={"service": instance.service, "version": instance.version, "instance_id": instance.id,
                        "lease_id": lease_hex(kv.lease)})
        return True

    def __repr__(self) -> str:
        with self._lock:
            return (f"<MemoryStore revision={self._revision} records={len(self._kvs)} "
                    f"clients={len(self._clients)}>")

    # -- connections (for MemoryClient) -------------------------------------------------------

    def _connect(self, client: MemoryClient) -> int:
        with self._lock:
            client_id = next(self._ids)
            self._clients[client_id] = client
            return client_id

    def _disconnect(self, client_id: int) -> None:
        """Drop the client's watches and leases (and with them its keys)."""
        stopping: Optional[_Expiry] = None
        with self._lock:
            if self._clients.pop(client_id, None) is None:
                return
            self._watchers = [w for w in self._watchers if w.client.id != client_id]
            for lease_id in [lid for lid, lease in self._leases.items() if lease.owner == client_id]:
                self._end_lease_locked(lease_id)
            if not self._clients and self._expiry is not None:
                stopping, self._expiry = self._expiry, None
                stopping.stopped = True
                self._wakeup.notify_all()
        if stopping is not None and stopping.thread is not None and not join_thread(stopping.thread, _JOIN_TIMEOUT):
            log.warning("Lease expiry thread did not stop within %.1f s", _JOIN_TIMEOUT)

    def _caught_up(self, client: MemoryClient) -> None:
        """The client is available again: its watches read the state again (one snapshot if it changed)."""
        with self._lock:
            for watcher in [w for w in self._watchers if w.client is client]:
                watcher.reload()

    # -- keys -----------------------------------------------------------------------------------

    def _range(self, prefix: str) -> RangeResult:
        with self._lock:
            return RangeResult(self._revision, tuple(kv for key, kv in sorted(self._kvs.items())
                                                     if key.startswith(prefix)))

    def _get(self, key: str) -> Tuple[int, Optional[KeyValue]]:
        with self._lock:
            return self._revision, self._kvs.get(key)

    def _txn(self, txn: Txn) -> TxnResult:
        with self._lock:
            writes: List[Tuple[str, Optional[Put]]] = []
            succeeded, results = self._run_locked(txn, writes)
            self._write_locked(writes)
            return TxnResult(succeeded, self._revision, results)

    def _run_locked(self, txn: Txn, writes: List[Tuple[str, Optional[Put]]]) -> Tuple[bool, Tuple[OpResult, ...]]:
        succeeded = all(self._holds_locked(c) for c in txn.compare)
        results: List[OpResult] = []
        for op in (txn.success if succeeded else txn.failure):
            results.append(self._op_locked(op, writes))
        return succeeded, tuple(results)

    def _op_locked(self, op: Op, writes: List[Tuple[str, Optional[Put]]]) -> OpResult:
        if isinstance(op, Txn):
            succeeded, results = self._run_locked(op, writes)
            return TxnResult(succeeded, self._revision, results)
        if isinstance(op, Get):
            return self._kvs.get(op.key)
        if isinstance(op, Put):
            if op.lease and op.lease not in self._leases:
                raise LeaseNotFoundError(f"lease {op.lease:x} not found")
            writes.append((op.key, op))
            return self._kvs.get(op.key)
        assert isinstance(op, Delete)
        if op.key not in self._kvs:
            return 0
        writes.append((op.key, None))
        return 1

    def _holds_locked(self, compare: Compare) -> bool:
        kv = self._kvs.get(compare.key)
        if compare.target == "lease":
            actual = kv.lease if kv is not None else 0
        elif compare.target == "mod":
            actual = kv.mod_revision if kv is not None else 0
        else:
            actual = kv.create_revision if kv is not None else 0
        return actual == compare.value

    def _write_locked(self, writes: List[Tuple[str, Optional[Put]]]) -> None:
        """Apply one transaction's writes at one new revision and tell the watches."""
        if not writes:
            return
        self._revision += 1
        events: List[WatchEvent] = []
        for key, put in writes:
            old = self._kvs.get(key)
            if old is not None and old.lease in self._leases:
                self._leases[old.lease].keys.discard(key)
            if put is None:
                if old is not None:
                    del self._kvs[key]
                    events.append(WatchEvent(True, dataclasses.replace(old, mod_revision=self._revision)))
                continue
            kv = KeyValue(key, put.value, old.create_revision if old is not None else self._revision,
                          self._revision, put.lease)
            self._kvs[key] = kv
            if put.lease:
                self._leases[put.lease].keys.add(key)
            events.append(WatchEvent(False, kv))
        self._notify_locked(events)

    def _notify_locked(self, events: List[WatchEvent]) -> None:
        # Delivered under the lock, so each watch sees the writes in revision order.
        for watcher in list(self._watchers):
            if not watcher.client.available:
                continue
            mine = tuple(ev for ev in events if ev.kv.key.startswith(watcher.prefix))
            if mine and not watcher.apply(WatchBatch(self._revision, mine, False, False, 0, "")):
                self._unwatch_locked(watcher)

    def _watch(self, client: MemoryClient, prefix: str, start_revision: int, apply: Apply,
               reload: Callable[[], None]) -> Callable[[], None]:
        """Deliver every later write under ``prefix`` to ``apply``; returns the call that ends it.

        The store keeps no history: when writes came after ``start_revision - 1`` (the
        read the watcher starts from), ``reload`` catches up on them at once.
        """
        with self._lock:
            watcher = _Watcher(client, prefix, apply, reload)
            self._watchers.append(watcher)
            if start_revision <= self._revision and client.available:
                reload()

        def cancel() -> None:
            with self._lock:
                self._unwatch_locked(watcher)

        return cancel

    def _unwatch_locked(self, watcher: _Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    # -- leases ---------------------------------------------------------------------------------

    def _grant(self, client_id: int, ttl: float) -> int:
        with self._lock:
            lease_id = next(self._ids)
            deadline = time.monotonic() + ttl if ttl > 0 else None
            self._leases[lease_id] = _Lease(client_id, ttl, deadline)
            if deadline is not None:
                self._ensure_expiry_locked()
                self._wakeup.notify_all()
            return lease_id

    def _refresh(self, lease_id: int) -> float:
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None:
                return 0
            if lease.deadline is None:
                return float("inf")
            lease.deadline = time.monotonic() + lease.ttl
            return lease.ttl

    def _time_to_live(self, lease_id: int) -> float:
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None:
                return -1
            return float("inf") if lease.deadline is None else max(0.0, lease.deadline - time.monotonic())

    def _revoke(self, lease_id: int) -> bool:
        with self._lock:
            if lease_id not in self._leases:
                return False
            self._end_lease_locked(lease_id)
            return True

    def _end_lease_locked(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id)
        self._write_locked([(key, None) for key in sorted(lease.keys)])

    def _ensure_expiry_locked(self) -> None:
        if self._expiry is None and self._clients:
            expiry = _Expiry()
            expiry.thread = start_thread("memory-expiry", self._expiry_loop, expiry)
            self._expiry = expiry

    def _expiry_loop(self, expiry: _Expiry) -> None:
        while True:
            with self._lock:
                if expiry.stopped:
                    return
                now = time.monotonic()
                due = [lid for lid, lease in self._leases.items() if lease.deadline is not None
                       and lease.deadline <= now]
                expired = [(lid, sorted(self._leases[lid].keys)) for lid in due]
                for lease_id in due:
                    self._end_lease_locked(lease_id)
                deadlines = [lease.deadline for lease in self._leases.values() if lease.deadline is not None]
                if not due:
                    self._wakeup.wait(min(deadlines) - now if deadlines else None)
            for lease_id, keys in expired:
                for key in keys:
                    log.info("Lease expired: %s", key, extra={"lease_id": lease_hex(lease_id)})
