"""An in-process registry: the etcd backend's registration and watch code over an in-memory etcd.

:class:`MemoryRegistry` is the same registry as :class:`~fyerreg.registry.etcd.EtcdRegistry`
(:class:`~fyerreg.registry.kv._leased.LeasedRegistry`), built over a
:class:`~._memory_client.MemoryClient` of a :class:`MemoryStore`, plus fault injection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Callable, Iterator, Optional

from ..errors import RegistryUnavailableError
from ..naming import Instance
from ..retry import Retry
from ._memory_client import UNAVAILABLE, MemoryClient
from ._memory_store import LAYOUT, MemoryStore
from .base import MAX_TTL, RegistrationState
from .kv._leased import LeasedRegistry
from .kv._ops import Deadline
from .kv._watch import PrefixWatch

__all__ = ["MemoryRegistry", "MemoryStore"]

log = logging.getLogger(__name__)

_CALL_WAIT = 5.0
"""Nothing waits on I/O here: the bound of a call that could (a heartbeat, close())."""


class _InPlaceWatch(PrefixWatch):
    """A prefix watch the store feeds in the writing thread, so a change is delivered before the write returns."""

    _cancel: Optional[Callable[[], None]] = None

    def start(self) -> None:
        assert isinstance(self.client, MemoryClient)
        self._cancel = self.client.watch_in_place(self.prefix, self.revision + 1, self.apply, self.reload)
        with self._updated:
            self._connected = True
            self._updated.notify_all()

    def signal_stop(self) -> None:
        self._stop.set()
        if self._cancel is not None:
            self._cancel()

    def stop(self, timeout: float) -> bool:
        self.signal_stop()
        return True


class MemoryRegistry(LeasedRegistry):
    """A thread-safe registry kept in memory, with the same contract as the etcd backend.

    Registries sharing one :class:`MemoryStore` see each other (like processes sharing
    an etcd); without ``store`` the registry gets a private one. With ``ttl`` (seconds)
    each registered instance is bound to a lease that expires ``ttl`` seconds after its
    last refresh; a ``fyerreg-memory-keepalive`` thread per instance refreshes it every
    ``ttl / 3`` and registers the instance again if the lease was lost. Without ``ttl``
    instances live until deregistered or until the registry is closed. The registration
    and watch code is the etcd backend's.

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
        self._store = store if store is not None else MemoryStore()
        self._keepalive_suspended = False
        interval = float(ttl) / 3 if ttl is not None else 1.0
        client = MemoryClient(self._store, retry=Retry(max_tries=1, delay=interval, max_delay=interval, jitter=0))
        super().__init__(client, LAYOUT, ttl=0.0 if ttl is None else float(ttl), call_wait=_CALL_WAIT,
                         close_budget=_CALL_WAIT)
        self._client: MemoryClient

    @property
    def store(self) -> MemoryStore:
        """The store this registry is a client of."""
        return self._store

    @property
    def ttl(self) -> Optional[float]:
        """Lease time-to-live in seconds (None: instances never expire)."""
        return self._ttl or None

    @property
    def available(self) -> bool:
        """False while unavailability is injected with :meth:`set_available`."""
        return self._client.available

    def __repr__(self) -> str:
        return f"<MemoryRegistry {self._store!r} ttl={self.ttl} closed={self.closed}>"

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
        if self._client.available == bool(available):
            return
        self._client.set_available(bool(available))
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

    # -- what differs from etcd ------------------------------------------------------------

    _watch_type = _InPlaceWatch

    def _keepalive_name(self, instance: Instance) -> str:
        return "memory-keepalive"

    def _heartbeat_gate(self) -> bool:
        return not self._keepalive_suspended

    def _check_reachable(self) -> None:
        self._check_open()
        if not self._client.available:
            raise RegistryUnavailableError(
                f"MemoryRegistry is {UNAVAILABLE} (injected with set_available(False) or unavailable())")

    def _do_close(self, *, timeout: Optional[float]) -> None:
        self._client.closing = True  # close() deregisters this registry's instances, even while cut off
        super()._do_close(timeout=timeout)

    def _do_registration_state(self, instance: Instance) -> RegistrationState:
        # The store answers at once: a lease that ran out, or a key another registry took,
        # is seen now rather than at the next heartbeat (or never, without ttl).
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is not None and self._client.available:
            reg.verify(deadline=Deadline(self._call_wait))
        state = super()._do_registration_state(instance)
        if state.registered and self._client.available:
            _, kv = self._client.get(LAYOUT.instance_key(instance))
            if kv is None or kv.lease != state.lease_id:
                state = dataclasses.replace(state, registered=False)
        if self.ttl is None:
            state = dataclasses.replace(state, lease_id=None)  # leases that never expire are no one's concern
        return state
