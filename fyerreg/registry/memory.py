"""An in-process registry with the etcd backend's semantics, plus fault injection for tests."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

from .._threads import join_thread, start_thread
from ..errors import AlreadyRegisteredError, NotRegisteredError, RegistryUnavailableError
from ..metrics import Metrics, Stats, StatsBuilder
from ..naming import Instance
from ._memory_store import MemoryStore, _Lease, _log_extra
from .base import MAX_TTL, STATS_COUNTERS, RegistrationState, Registry
from .subscription import Subscription

__all__ = ["MemoryRegistry", "MemoryStore"]

log = logging.getLogger(__name__)

_Key = Tuple[str, str, str]
_JOIN_TIMEOUT = 5.0


@dataclasses.dataclass
class _Owned:
    """This registry's view of one instance it registered."""

    instance: Instance
    lease_id: int
    active: bool = True
    last_refresh: Optional[float] = None
    reregistrations: int = 0
    last_error: Optional[str] = None


class MemoryRegistry(Registry):
    """A thread-safe registry kept in memory, with the same contract as the etcd backend.

    Registries sharing one :class:`MemoryStore` see each other (like processes sharing
    an etcd); without ``store`` the registry gets a private one. With ``ttl`` (seconds)
    each registered instance is bound to a lease that expires ``ttl`` seconds after its
    last refresh; a ``fyerreg-memory-keepalive`` thread refreshes this registry's leases
    every ``ttl / 3`` and re-registers an instance whose lease was lost. Without ``ttl``
    instances live until deregistered or until the registry is closed.

    Fault injection for an application's own tests: :meth:`expire`,
    :meth:`suspend_keepalive` / :meth:`resume_keepalive`, :meth:`set_available` and
    :meth:`unavailable`. Calls never wait on I/O, so ``timeout`` arguments are accepted
    and have nothing to bound.
    """

    def __init__(self, *, store: Optional[MemoryStore] = None, ttl: Optional[float] = None) -> None:
        if store is not None and not isinstance(store, MemoryStore):
            raise TypeError(f"store must be a MemoryStore, got {type(store).__name__}")
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
                raise TypeError(f"ttl must be a number of seconds or None, got {type(ttl).__name__}")
            if not 0 < ttl <= MAX_TTL:
                raise ValueError(f"ttl must be > 0 and <= {MAX_TTL} seconds (etcd's maximum lease TTL), got {ttl!r}")
        super().__init__()
        self._store = store if store is not None else MemoryStore()
        self._ttl = None if ttl is None else float(ttl)
        self._lock = threading.RLock()
        self._owned: Dict[_Key, _Owned] = {}
        self._subscriptions: List[Subscription] = []
        self._ended_delivered = 0
        self._ended_conflated = 0
        self._metrics = Metrics()
        self._keepalive_stop = threading.Event()
        self._keepalive_thread: Optional[threading.Thread] = None
        self._keepalive_suspended = False
        self._client = self._store._connect()

    @property
    def store(self) -> MemoryStore:
        """The store this registry is a client of."""
        return self._store

    @property
    def ttl(self) -> Optional[float]:
        """Lease time-to-live in seconds (None: instances never expire)."""
        return self._ttl

    @property
    def available(self) -> bool:
        """False while unavailability is injected with :meth:`set_available`."""
        return self._client.available

    # -- fault injection -----------------------------------------------------------------

    def expire(self, instance: Instance) -> bool:
        """Make the lease of ``instance`` (registered by any registry on the store) run out now.

        Watchers see it removed. Its owner re-registers it on its next keepalive unless
        keepalive is suspended (or the owner has no ``ttl``: then on its next
        ``update_service``). Returns False when the instance is not in the store.
        """
        self._check_open()
        return self._store.expire(instance)

    def suspend_keepalive(self) -> None:
        """Stop refreshing this registry's leases, as if the process hung: with ``ttl``, its instances expire."""
        self._check_open()
        self._keepalive_suspended = True
        log.warning("Keepalive suspended (fault injected)")

    def resume_keepalive(self) -> None:
        """Refresh leases again; instances that expired meanwhile are re-registered on the next keepalive."""
        self._check_open()
        self._keepalive_suspended = False
        log.info("Keepalive resumed")

    def set_available(self, available: bool) -> None:
        """Make this registry lose (False) or regain (True) its connection to the store.

        While unavailable, register, deregister, update_service, list_services and
        subscribe raise :class:`~fyerreg.errors.RegistryUnavailableError`, keepalives
        fail (with ``ttl`` the instances expire), and subscriptions receive nothing,
        keeping their last state. When available again, each subscription whose
        instances changed meanwhile receives one fresh snapshot. Local calls
        (unsubscribe, registration_state, stats, close) keep working; close still
        deregisters this registry's instances.
        """
        self._check_open()
        with self._lock:
            if self._client.available == bool(available):
                return
            self._store._set_available(self._client, bool(available))
        if available:
            log.info("Registry available again (fault injection ended)")
        else:
            log.warning("Registry unavailable (fault injected)")

    @contextlib.contextmanager
    def unavailable(self) -> Iterator[MemoryRegistry]:
        """Context manager: unavailable inside the block, available again on exit."""
        self.set_available(False)
        try:
            yield self
        finally:
            if not self.closed:
                self.set_available(True)

    # -- the Registry contract -----------------------------------------------------------

    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None:
        with self._lock:
            self._check_live()
            previous = self._owned.get(instance.key)
            stored, lease_id, taken_over = self._store._put(
                self._client, instance, ttl=self._ttl, exclusive=exclusive
            )
            self._owned[instance.key] = _Owned(
                stored, lease_id, last_refresh=time.time(),
                reregistrations=previous.reregistrations if previous is not None else 0,
            )
            self._metrics.inc("registrations")
            if taken_over:
                self._metrics.inc("takeovers")
            if self._ttl is not None and self._keepalive_thread is None:
                self._keepalive_thread = start_thread("memory-keepalive", self._keepalive_loop)
        extra = _log_extra(instance, self._lease(lease_id))
        if taken_over:
            log.warning("Took over %s/%s/%s from another registry", instance.service, instance.version,
                        instance.id, extra=extra)
        elif previous is None or not previous.active:
            log.info("Registered %s/%s/%s at %s", instance.service, instance.version, instance.id,
                     instance.address, extra=extra)

    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None:
        with self._lock:
            self._check_live()
            owned = self._owned.pop(instance.key, None)
            if owned is None:
                # Not registered here: another registry's record stays, as on etcd.
                log.debug("deregister of %s/%s/%s: not registered through this registry",
                          instance.service, instance.version, instance.id, extra=_log_extra(instance))
                return
            removed = self._store._delete(instance.key, lease_id=owned.lease_id) if owned.active else None
            if removed is not None:
                self._metrics.inc("deregistrations")
        if removed is not None:
            log.info("Deregistered %s/%s/%s", instance.service, instance.version, instance.id,
                     extra=_log_extra(instance))

    def _do_update(self, instance: Instance, *, timeout: Optional[float]) -> None:
        with self._lock:
            self._check_live()
            owned = self._owned.get(instance.key)
            if owned is None:
                raise NotRegisteredError(
                    f"{instance.service}/{instance.version}/{instance.id} is not registered through this "
                    "registry; register it first"
                )
            if not owned.active:
                raise _lost_error(owned)
            state, stored = self._store._update(owned.lease_id, instance)
            if stored is not None:
                owned.instance = stored
                owned.last_refresh = time.time()
                owned.last_error = None
                return
            if state is _Lease.EXPIRED:
                owned.instance = instance
                if self._reregister_locked(owned):
                    return
            else:
                self._lose_locked(owned, state)
        raise _lost_error(owned)

    def _do_list(self, service: str, version: Optional[str], *, timeout: Optional[float]) -> List[Instance]:
        self._check_live()
        instances, _ = self._store._list(service, version)
        return sorted(instances, key=lambda inst: (inst.id, inst.version))

    def _do_subscribe(
        self, service: str, version: Optional[str], *, maxsize: int, timeout: Optional[float]
    ) -> Subscription:
        subscription = Subscription(service, version, maxsize=maxsize, on_close=self._subscription_closed)
        with self._lock:
            self._check_live()
            self._subscriptions.append(subscription)
            self._store._watch(self._client, subscription)
        return subscription

    def _do_unsubscribe(self, service: str, version: Optional[str]) -> None:
        with self._lock:
            ending = [s for s in self._subscriptions if s.service == service and s.version == version]
        for subscription in ending:
            subscription.close()

    def _do_registration_state(self, instance: Instance) -> RegistrationState:
        with self._lock:
            owned = self._owned.get(instance.key)
            if owned is None:
                return RegistrationState(registered=False)
            registered = owned.active
            if owned.active and self._client.available:
                state = self._store._lease_state(owned.lease_id)
                if state is _Lease.TAKEN_OVER:
                    self._lose_locked(owned, state)
                registered = state is _Lease.ALIVE
            return RegistrationState(
                registered=registered,
                lease_id=self._lease(owned.lease_id),
                last_refresh=owned.last_refresh,
                reregistrations=owned.reregistrations,
                last_error=owned.last_error,
            )

    def _do_stats(self) -> Stats:
        with self._lock:
            delivered = self._ended_delivered + sum(s.delivered for s in self._subscriptions)
            conflated = self._ended_conflated + sum(s.conflated for s in self._subscriptions)
            registered = sum(1 for o in self._owned.values() if o.active)
            subscriptions = len(self._subscriptions)
        counted = {"snapshots_delivered": delivered, "snapshots_conflated": conflated}
        stats = StatsBuilder()
        for name in STATS_COUNTERS:  # no watch or cache here: those stay 0
            stats.counter(name, counted.get(name, int(self._metrics.counter(name))))
        stats.gauge("instances_registered", registered)
        stats.gauge("subscriptions", subscriptions)
        stats.gauge("cached_services", 0)
        return stats.build()

    def _do_close(self, *, timeout: Optional[float]) -> None:
        limit = _JOIN_TIMEOUT if timeout is None else timeout
        self._keepalive_stop.set()
        with self._lock:
            thread = self._keepalive_thread
        if thread is not None and not join_thread(thread, limit):
            log.warning("Keepalive thread did not stop within %.1f s", limit)
        with self._lock:
            removed = self._store._disconnect(self._client)
            self._owned.clear()
            ending = list(self._subscriptions)
        for instance in removed:
            self._metrics.inc("deregistrations")
            log.info("Deregistered %s/%s/%s (registry closed)", instance.service, instance.version,
                     instance.id, extra=_log_extra(instance))
        for subscription in ending:
            subscription.close()

    # -- internals -------------------------------------------------------------------------

    def _check_live(self) -> None:
        self._check_open()
        if not self._client.available:
            raise RegistryUnavailableError(
                "MemoryRegistry is unavailable (injected with set_available(False) or unavailable())"
            )

    def _lease(self, lease_id: int) -> Optional[int]:
        return lease_id if self._ttl is not None else None

    def _subscription_closed(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
                self._ended_delivered += subscription.delivered
                self._ended_conflated += subscription.conflated
            self._store._unwatch(self._client, subscription)

    def _reregister_locked(self, owned: _Owned) -> bool:
        """Write ``owned`` again after its lease was lost; False when another registry holds it now."""
        inst = owned.instance
        self._metrics.inc("lease_losses")
        try:
            stored, lease_id, _ = self._store._put(self._client, inst, ttl=self._ttl, exclusive=True)
        except AlreadyRegisteredError:
            self._lose_locked(owned, _Lease.TAKEN_OVER)
            return False
        owned.instance, owned.lease_id = stored, lease_id
        owned.reregistrations += 1
        owned.last_refresh = time.time()
        owned.last_error = None
        self._metrics.inc("reregistrations")
        log.warning("Lease of %s/%s/%s was lost; re-registered it", inst.service, inst.version, inst.id,
                    extra=_log_extra(inst, self._lease(lease_id)))
        return True

    def _lose_locked(self, owned: _Owned, state: _Lease) -> None:
        """Stop maintaining an instance another registry took over or removed."""
        owned.active = False
        owned.last_error = state.value
        inst = owned.instance
        log.warning("%s/%s/%s was %s; no longer keeping it alive", inst.service, inst.version, inst.id,
                    state.value, extra=_log_extra(inst, self._lease(owned.lease_id)))

    def _keepalive_loop(self) -> None:
        assert self._ttl is not None
        while not self._keepalive_stop.wait(self._ttl / 3):
            if self._keepalive_suspended:
                continue
            with self._lock:
                if self.closed:
                    return
                for owned in list(self._owned.values()):
                    if owned.active:
                        self._keepalive_one_locked(owned)

    def _keepalive_one_locked(self, owned: _Owned) -> None:
        if not self._client.available:
            owned.last_error = "registry unavailable"
            return
        state = self._store._refresh(owned.lease_id)
        if state is _Lease.ALIVE:
            owned.last_refresh = time.time()
            owned.last_error = None
        elif state is _Lease.EXPIRED:
            self._reregister_locked(owned)
        else:
            self._lose_locked(owned, state)


def _lost_error(owned: _Owned) -> NotRegisteredError:
    inst = owned.instance
    return NotRegisteredError(
        f"{inst.service}/{inst.version}/{inst.id} was {owned.last_error}; register it again to take it back"
    )
