"""The blocking Registry contract every backend implements."""

from __future__ import annotations

import abc
import dataclasses
import threading
from typing import List, Optional

from .. import _fork
from ..errors import RegistryClosedError
from ..metrics import Stats
from ..naming import Instance, _check_segment
from .subscription import DEFAULT_SUBSCRIPTION_SIZE, Subscription

__all__ = ["Registry", "RegistrationState", "MAX_TTL", "STATS_COUNTERS", "STATS_GAUGES"]

STATS_COUNTERS = (
    "registrations",
    "deregistrations",
    "takeovers",
    "lease_losses",
    "reregistrations",
    "watch_reconnects",
    "compaction_recoveries",
    "snapshots_delivered",
    "snapshots_conflated",
    "invalid_records_skipped",
    "cache_hits",
    "cache_stale_reads",
)
"""The counters every backend's :meth:`Registry.stats` reports (0 where a backend never counts one)."""

STATS_GAUGES = ("instances_registered", "subscriptions", "cached_services")
"""The gauges every backend's :meth:`Registry.stats` reports."""

MAX_TTL = 9_000_000_000
"""The longest lease ``ttl``, in seconds, that any backend accepts: etcd's own maximum
(``MaxLeaseTTL`` in its lease package; it refuses a longer lease as "too large lease TTL")."""


@dataclasses.dataclass(frozen=True)
class RegistrationState:
    """What a registry knows about one instance it registered (for an app's health check).

    ``registered`` is True while the record is believed to be in the backend;
    ``lease_id`` is the backend lease (None for backends without leases; its repr is hex,
    as in the logs and the CLI);
    ``last_refresh`` the ``time.time()`` of the last successful heartbeat;
    ``reregistrations`` how many times the record was written again after it was lost;
    ``last_error`` the last heartbeat failure, cleared by the next success.
    """

    registered: bool
    lease_id: Optional[int] = None
    last_refresh: Optional[float] = None
    reregistrations: int = 0
    last_error: Optional[str] = None

    def __repr__(self) -> str:
        # Lease ids in hex, as the logs, the CLI and etcdctl write them, so one search finds all.
        lease = "None" if self.lease_id is None else repr(f"{self.lease_id:x}")
        return (f"RegistrationState(registered={self.registered}, lease_id={lease}, "
                f"last_refresh={self.last_refresh!r}, reregistrations={self.reregistrations}, "
                f"last_error={self.last_error!r})")


class Registry(abc.ABC):
    """Where services say where they listen, and clients find and watch them.

    All methods block until the backend has answered (or ``timeout`` seconds passed,
    ``None`` meaning the backend's default) and are safe to call from any thread.
    Bad input raises :class:`~fyerreg.errors.InvalidInstanceError` before anything
    is written. After :meth:`close` every method raises
    :class:`~fyerreg.errors.RegistryClosedError`; ``close()`` itself is idempotent.
    A registry is a context manager that closes on exit.

    Backends implement the ``_do_*`` methods; the public methods here check state
    and input, so every backend enforces the contract the same way.
    """

    def __init__(self) -> None:
        self._closed = False
        self._state_lock = threading.RLock()
        _fork.track(self)  # renews its locks in a forked child

    # -- public contract -------------------------------------------------------------

    def register(self, instance: Instance, *, timeout: Optional[float] = None, exclusive: bool = False) -> None:
        """Add ``instance`` and keep it alive until :meth:`deregister` or :meth:`close`.

        Registering an instance this registry already registered updates it in place.
        When another registry holds the same (service, version, id), it is taken over
        (with a warning) unless ``exclusive`` is True, which raises
        :class:`~fyerreg.errors.AlreadyRegisteredError` instead.
        """
        self._check_open()
        instance.validate()
        self._do_register(instance, timeout=timeout, exclusive=exclusive)

    def deregister(self, instance: Instance, *, timeout: Optional[float] = None) -> None:
        """Remove ``instance``; watchers see it gone at once. Removing what is absent is not an error.

        Only an instance this registry registered is removed: another registry's record
        of the same (service, version, id) is left alone.
        """
        self._check_open()
        instance.validate()
        self._do_deregister(instance, timeout=timeout)

    def update_service(self, instance: Instance, *, timeout: Optional[float] = None) -> None:
        """Heartbeat ``instance`` and write its new status, weight, address and metadata.

        The instance must have been registered through this registry (matched by
        service, version and id), else :class:`~fyerreg.errors.NotRegisteredError`.
        It stays bound to its lease: it still disappears if this process dies.
        """
        self._check_open()
        instance.validate()
        self._do_update(instance, timeout=timeout)

    def list_services(
        self, service: str, version: Optional[str] = None, *, timeout: Optional[float] = None
    ) -> List[Instance]:
        """The instances of ``service`` (of ``version``, or of every version when None), sorted by id."""
        self._check_open()
        _check_query(service, version)
        return self._do_list(service, version, timeout=timeout)

    def subscribe(
        self,
        service: str,
        version: Optional[str] = None,
        *,
        maxsize: int = DEFAULT_SUBSCRIPTION_SIZE,
        timeout: Optional[float] = None,
    ) -> Subscription:
        """Watch ``service`` (``version``, or every version when None).

        Returns a new, independent :class:`Subscription` whose first item, already
        queued on return, is the current state; every change then queues the full
        new state. ``timeout`` bounds the initial read.
        """
        self._check_open()
        _check_query(service, version)
        return self._do_subscribe(service, version, maxsize=maxsize, timeout=timeout)

    def unsubscribe(self, service: str, version: Optional[str] = None) -> None:
        """End every subscription of this registry for exactly (``service``, ``version``)."""
        self._check_open()
        _check_query(service, version)
        self._do_unsubscribe(service, version)

    def registration_state(self, instance: Instance) -> RegistrationState:
        """Whether ``instance`` is registered through this registry right now, and its heartbeat history."""
        self._check_open()
        return self._do_registration_state(instance)

    def stats(self) -> Stats:
        """This registry's figures: the counters :data:`STATS_COUNTERS` and the gauges :data:`STATS_GAUGES`."""
        return self._do_stats()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self, *, timeout: Optional[float] = None) -> None:
        """Deregister every instance this registry registered, end every subscription
        (each gets its sentinel), stop and join every thread, release the connection.

        Idempotent. Cleanup keeps going past backend errors, which are logged.
        """
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        self._do_close(timeout=timeout)

    def __enter__(self) -> Registry:
        self._check_open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for backends ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RegistryClosedError(f"{type(self).__name__} is closed")

    @abc.abstractmethod
    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None: ...

    @abc.abstractmethod
    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None: ...

    @abc.abstractmethod
    def _do_update(self, instance: Instance, *, timeout: Optional[float]) -> None: ...

    @abc.abstractmethod
    def _do_list(self, service: str, version: Optional[str], *, timeout: Optional[float]) -> List[Instance]: ...

    @abc.abstractmethod
    def _do_subscribe(
        self, service: str, version: Optional[str], *, maxsize: int, timeout: Optional[float]
    ) -> Subscription: ...

    @abc.abstractmethod
    def _do_unsubscribe(self, service: str, version: Optional[str]) -> None: ...

    @abc.abstractmethod
    def _do_registration_state(self, instance: Instance) -> RegistrationState: ...

    @abc.abstractmethod
    def _do_stats(self) -> Stats: ...

    @abc.abstractmethod
    def _do_close(self, *, timeout: Optional[float]) -> None: ...


def _check_query(service: str, version: Optional[str]) -> None:
    _check_segment("service", service)
    if version is not None:
        _check_segment("version", version)
