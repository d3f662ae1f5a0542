"""``EtcdRegistry``: the production backend, on etcd leases and watches."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from ..kv._cache import ServiceCache
from ..kv._leased import LeasedRegistry
from ..kv._registration import Registration
from ..kv._watch import PrefixWatch
from ..layouts import FyerRpcLayout, Layout, layout_named
from ..subscription import Subscription
from ._client import EtcdClient
from .options import EtcdOptions

__all__ = ["EtcdRegistry", "lease_seconds"]

MIN_LEASE_TTL = 2
"""etcd's shortest lease, in seconds (shorter requests are granted this long)."""


def lease_seconds(ttl: float) -> int:
    """The lease to grant so that a record is gone within ``ttl`` seconds of its last refresh.

    etcd revokes expired leases on a half-second tick: one second shorter (whole seconds,
    etcd's unit), never under etcd's floor of 2 seconds. Heartbeats come every third of it.
    """
    return max(MIN_LEASE_TTL, int(ttl) - 1)

log = logging.getLogger("fyerreg.registry.etcd")

InstanceKey = Tuple[str, str, str]
_Inherited = Tuple[EtcdClient, Dict[InstanceKey, Registration], Set[Registration],
                   Dict[int, Tuple[Subscription, PrefixWatch]], Optional[ServiceCache]]


class EtcdRegistry(LeasedRegistry):
    """A :class:`~fyerreg.registry.Registry` on etcd.

    Keyword arguments are the fields of :class:`EtcdOptions` (``endpoints``,
    ``dial_timeout``, ``ttl``, ``namespace``, ``max_retry``, ``retry_interval``,
    ``username``/``password``, ``tls``, ``auto_sync_interval``, ``dial_keepalive``,
    ``cache``), or ``options=EtcdOptions(...)``; ``layout`` is how records sit in etcd: a
    :class:`~fyerreg.registry.layouts.Layout` or its name (default:
    :class:`~fyerreg.registry.layouts.FyerRpcLayout` of ``namespace``). Construction connects: an unreachable
    etcd raises :class:`~fyerreg.errors.RegistryUnavailableError` within
    ``dial_timeout``, rejected credentials :class:`~fyerreg.errors.AuthenticationError`.

    Each registered instance gets a lease of ``ttl`` seconds kept alive by its own
    thread, which registers it again if the lease is lost; each subscription gets
    its own watch thread. ``close()`` removes every instance it registered.
    """

    def __init__(self, *, options: Optional[EtcdOptions] = None, layout: Union[Layout, str, None] = None,
                 **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise TypeError("pass either options=EtcdOptions(...) or keyword options, not both")
        if layout is not None and not isinstance(layout, (Layout, str)):
            raise TypeError(f"layout must be a fyerreg Layout (fyerreg.registry.layouts) or its name, "
                            f"got {type(layout).__name__}")
        self.options = options if options is not None else EtcdOptions.from_kwargs(**kwargs)
        opts = self.options
        if isinstance(layout, str):
            layout = layout_named(layout, opts.namespace)
        super().__init__(EtcdClient(opts), layout or FyerRpcLayout(opts.namespace), ttl=lease_seconds(opts.ttl),
                         call_wait=opts.dial_timeout, close_budget=opts.dial_timeout * 2, spare_leases=True)
        self._client: EtcdClient
        self._cache = self._new_cache()
        self._forked = False
        self._inherited: List[_Inherited] = []

    def _new_cache(self) -> Optional[ServiceCache]:
        if not self.options.cache.enabled:
            return None
        return ServiceCache(lambda s, v: self._new_watch(s, v, "cache"), self._metrics,
                            ttl=self.options.cache.ttl, join_timeout=self._join_timeout)

    # -- fork safety ----------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: the parent's connection, leases, watches and threads are not ours.

        They are dropped without a word to etcd (the parent keeps its instances registered;
        closing this registry in the child never deregisters them), the child's
        subscriptions end (subscribe again), and the first use connects again.
        """
        # Kept referenced and never closed: closing them here would act on the parent's connections.
        self._inherited.append((self._client, self._regs, self._lingering, self._subs, self._cache))
        subs = [sub for sub, _ in self._subs.values()]
        self._regs, self._subs, self._lingering = {}, {}, set()
        self._cache = self._new_cache()
        self._writer.spare = None  # the parent's spare lease: never taken nor revoked here
        self._forked = True
        for sub in subs:
            sub._end_after_fork()

    def _check_open(self) -> None:
        super()._check_open()
        if self._forked:
            self._reconnect_after_fork()

    def _reconnect_after_fork(self) -> None:
        with self._lock:
            if not self._forked:
                return
        log.info("EtcdRegistry used in a forked child (pid %d): connecting again; the parent's "
                 "registrations stay the parent's", os.getpid())
        client = EtcdClient(self.options)  # outside the lock: connecting may take dial_timeout
        with self._lock:
            if self._forked and not self.closed:
                self._client = client
                self._writer = self._new_writer()  # for new registrations
                self._forked = False
                return
        client.close()  # another thread connected first, or close() ran meanwhile

    def __repr__(self) -> str:
        endpoints = ",".join(ep.netloc for ep in self.options.endpoints)
        return f"<EtcdRegistry {endpoints} namespace={self.options.namespace!r} closed={self.closed}>"

    def __enter__(self) -> EtcdRegistry:
        self._check_open()
        return self

    def _close_client(self) -> None:
        if not self._forked:
            self._client.close()
