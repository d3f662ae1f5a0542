"""The shared state behind MemoryRegistry: records, leases, a revision counter and watches."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import logging
import threading
import time
from typing import Dict, List, Optional, Tuple

from .._log import instance_extra
from .._threads import join_thread, start_thread
from ..errors import AlreadyRegisteredError
from ..naming import Instance
from .subscription import Snapshot, Subscription

__all__ = ["MemoryStore"]

log = logging.getLogger("fyerreg.registry.memory")

_Key = Tuple[str, str, str]
_JOIN_TIMEOUT = 5.0


class _Lease(enum.Enum):
    """What the owner of a lease learns when it refreshes it."""

    ALIVE = "alive"
    EXPIRED = "expired"
    TAKEN_OVER = "taken over by another registry"


@dataclasses.dataclass
class _Record:
    instance: Instance
    owner: int
    lease_id: int
    ttl: Optional[float]
    deadline: Optional[float]


class _Client:
    """One registry's connection to a store."""

    __slots__ = ("id", "available", "watches")

    def __init__(self, client_id: int) -> None:
        self.id = client_id
        self.available = True
        self.watches: List[_Watch] = []


class _Watch:
    __slots__ = ("client", "subscription", "last")

    def __init__(self, client: _Client, subscription: Subscription) -> None:
        self.client = client
        self.subscription = subscription
        self.last: Optional[List[Instance]] = None


class _Expiry:
    __slots__ = ("thread", "stopped")

    def __init__(self) -> None:
        self.thread: Optional[threading.Thread] = None
        self.stopped = False


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_extra(inst: Instance, lease_id: Optional[int] = None) -> Dict[str, object]:
    return {**instance_extra(inst), "lease_id": lease_id}


class MemoryStore:
    """The in-process "server" that :class:`~fyerreg.registry.memory.MemoryRegistry` objects share.

    Several registries on one store see each other's instances, like several processes
    on one etcd. The store keeps the records, a revision counter incremented on every
    write, the leases of registries created with a ``ttl`` (removing records whose lease
    ran out) and the watches of subscriptions. A background thread enforces lease expiry
    while at least one registry is connected.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._revision = 0
        self._ids = itertools.count(1)
        self._records: Dict[_Key, _Record] = {}
        self._lease_keys: Dict[int, _Key] = {}
        self._ended: Dict[int, Tuple[int, _Lease]] = {}
        self._clients: Dict[int, _Client] = {}
        self._watches: Dict[str, List[_Watch]] = {}
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
            record = self._records.get(instance.key)
            if record is None:
                return False
            self._remove_locked(record)
            self._notify_locked(record.instance)
        log.info("Lease expired (injected): %s/%s/%s", instance.service, instance.version, instance.id,
                 extra=_log_extra(instance, record.lease_id))
        return True

    def __repr__(self) -> str:
        with self._lock:
            return (f"<MemoryStore revision={self._revision} records={len(self._records)} "
                    f"clients={len(self._clients)}>")

    # -- for MemoryRegistry -------------------------------------------------------------

    def _connect(self) -> _Client:
        with self._lock:
            client = _Client(next(self._ids))
            self._clients[client.id] = client
            return client

    def _disconnect(self, client: _Client) -> List[Instance]:
        """Drop the client's watches, delete its records; return the instances deleted."""
        stopping: Optional[_Expiry] = None
        with self._lock:
            if self._clients.pop(client.id, None) is None:
                return []
            for watch in list(client.watches):
                self._unwatch_locked(watch)
            removed = [r for r in self._records.values() if r.owner == client.id]
            for record in removed:
                self._remove_locked(record)
                self._notify_locked(record.instance)
            self._ended = {lease: end for lease, end in self._ended.items() if end[0] != client.id}
            if not self._clients and self._expiry is not None:
                stopping, self._expiry = self._expiry, None
                stopping.stopped = True
                self._wakeup.notify_all()
        if stopping is not None and stopping.thread is not None and not join_thread(stopping.thread, _JOIN_TIMEOUT):
            log.warning("Lease expiry thread did not stop within %.1f s", _JOIN_TIMEOUT)
        return [r.instance for r in removed]

    def _put(
        self, client: _Client, instance: Instance, *, ttl: Optional[float], exclusive: bool
    ) -> Tuple[Instance, int, bool]:
        """Write ``instance`` for ``client``; return (stored instance, lease id, taken over).

        The client's own record is updated in place under its lease; another client's
        record is taken over (its lease ends) unless ``exclusive``.
        """
        with self._lock:
            key = instance.key
            existing = self._records.get(key)
            taken_over = existing is not None and existing.owner != client.id
            if existing is not None and taken_over:
                if exclusive:
                    raise AlreadyRegisteredError(
                        f"{instance.service}/{instance.version}/{instance.id} is registered by another "
                        "registry; register without exclusive=True to take it over"
                    )
                self._ended[existing.lease_id] = (existing.owner, _Lease.TAKEN_OVER)
                self._lease_keys.pop(existing.lease_id, None)
                existing = None
            lease_id = existing.lease_id if existing is not None else next(self._ids)
            stored = instance.replace(updated_at=_now_ms())
            deadline = None if ttl is None else time.monotonic() + ttl
            self._records[key] = _Record(stored, client.id, lease_id, ttl, deadline)
            self._lease_keys[lease_id] = key
            if deadline is not None:
                self._ensure_expiry_locked()
                self._wakeup.notify_all()
            self._revision += 1
            self._notify_locked(stored)
            return stored, lease_id, taken_over

    def _update(self, lease_id: int, instance: Instance) -> Tuple[_Lease, Optional[Instance]]:
        """Rewrite the record held under ``lease_id`` and refresh the lease, if it is alive."""
        with self._lock:
            key = self._lease_keys.get(lease_id)
            if key is None or key != instance.key:
                return self._lease_state_locked(lease_id), None
            record = self._records[key]
            record.instance = instance.replace(updated_at=_now_ms())
            if record.ttl is not None:
                record.deadline = time.monotonic() + record.ttl
            self._revision += 1
            self._notify_locked(record.instance)
            return _Lease.ALIVE, record.instance

    def _refresh(self, lease_id: int) -> _Lease:
        """Keep a lease alive (like etcd's LeaseKeepAlive); say what happened to it otherwise."""
        with self._lock:
            key = self._lease_keys.get(lease_id)
            if key is None:
                return self._lease_state_locked(lease_id)
            record = self._records[key]
            if record.ttl is not None:
                record.deadline = time.monotonic() + record.ttl
            return _Lease.ALIVE

    def _lease_state(self, lease_id: int) -> _Lease:
        with self._lock:
            return self._lease_state_locked(lease_id)

    def _delete(self, key: _Key, *, lease_id: int) -> Optional[Instance]:
        """Delete the record at ``key`` if it is held under ``lease_id``."""
        with self._lock:
            record = self._records.get(key)
            if record is None or record.lease_id != lease_id:
                return None
            self._remove_locked(record)
            self._notify_locked(record.instance)
            return record.instance

    def _list(self, service: str, version: Optional[str]) -> Tuple[List[Instance], int]:
        with self._lock:
            return self._select_locked(service, version), self._revision

    def _watch(self, client: _Client, subscription: Subscription) -> None:
        """Watch for ``client``; the current state is queued before this returns."""
        with self._lock:
            watch = _Watch(client, subscription)
            client.watches.append(watch)
            self._watches.setdefault(subscription.service, []).append(watch)
            self._publish_locked(watch, self._select_locked(subscription.service, subscription.version))

    def _unwatch(self, client: _Client, subscription: Subscription) -> None:
        with self._lock:
            for watch in client.watches:
                if watch.subscription is subscription:
                    self._unwatch_locked(watch)
                    return

    def _set_available(self, client: _Client, available: bool) -> None:
        """Pause or resume delivery to the client's watches; on resume, catch up on changes."""
        with self._lock:
            client.available = available
            if not available:
                return
            for watch in client.watches:
                current = self._select_locked(watch.subscription.service, watch.subscription.version)
                if current != watch.last:
                    self._publish_locked(watch, current)

    # -- internals (called with the lock held) ------------------------------------------

    def _lease_state_locked(self, lease_id: int) -> _Lease:
        if lease_id in self._lease_keys:
            return _Lease.ALIVE
        end = self._ended.get(lease_id)
        return _Lease.EXPIRED if end is None else end[1]

    def _remove_locked(self, record: _Record) -> None:
        del self._records[record.instance.key]
        self._lease_keys.pop(record.lease_id, None)
        self._revision += 1

    def _select_locked(self, service: str, version: Optional[str]) -> List[Instance]:
        return [
            r.instance for (svc, ver, _), r in self._records.items()
            if svc == service and (version is None or ver == version)
        ]

    def _notify_locked(self, changed: Instance) -> None:
        # Publishing under the lock keeps each subscription's snapshots in revision order.
        selected: Dict[Optional[str], List[Instance]] = {}
        for watch in self._watches.get(changed.service, ()):
            version = watch.subscription.version
            if not watch.client.available or version not in (None, changed.version):
                continue
            if version not in selected:
                selected[version] = self._select_locked(changed.service, version)
            self._publish_locked(watch, selected[version])

    def _publish_locked(self, watch: _Watch, instances: List[Instance]) -> None:
        watch.last = instances
        watch.subscription.publish(Snapshot(instances, revision=self._revision))

    def _unwatch_locked(self, watch: _Watch) -> None:
        watch.client.watches.remove(watch)
        peers = self._watches.get(watch.subscription.service, [])
        if watch in peers:
            peers.remove(watch)
        if not peers:
            self._watches.pop(watch.subscription.service, None)

    def _ensure_expiry_locked(self) -> None:
        if self._expiry is None:
            expiry = _Expiry()
            expiry.thread = start_thread("memory-expiry", self._expiry_loop, expiry)
            self._expiry = expiry

    def _expiry_loop(self, expiry: _Expiry) -> None:
        while True:
            with self._lock:
                if expiry.stopped:
                    return
                expired, next_deadline = self._expire_due_locked()
                if not expired:
                    self._wakeup.wait(None if next_deadline is None else next_deadline - time.monotonic())
            for record in expired:
                inst = record.instance
                log.info("Lease expired: %s/%s/%s", inst.service, inst.version, inst.id,
                         extra=_log_extra(inst, record.lease_id))

    def _expire_due_locked(self) -> Tuple[List[_Record], Optional[float]]:
        now = time.monotonic()
        expired: List[_Record] = []
        next_deadline: Optional[float] = None
        for record in list(self._records.values()):
            if record.deadline is None:
                continue
            if record.deadline <= now:
                self._remove_locked(record)
                self._notify_locked(record.instance)
                expired.append(record)
            elif next_deadline is None or record.deadline < next_deadline:
                next_deadline = record.deadline
        return expired, next_deadline
