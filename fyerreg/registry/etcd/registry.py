"""``EtcdRegistry``: the production backend, on etcd leases and watches."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from ... import _fork
from ...errors import NotRegisteredError, RegistryClosedError, RegistryError
from ...metrics import Metrics, Stats, StatsBuilder
from ...naming import Instance
from ..base import STATS_COUNTERS, RegistrationState, Registry
from ..subscription import Snapshot, Subscription
from ._cache import ServiceCache
from ._client import EtcdClient
from ._decode import RecordDecoder
from ._keys import KeyLayout
from ._ops import Deadline
from ._records import RecordWriter, instance_extra
from ._registration import Registration
from ._watch import PrefixWatch, Sink
from .options import EtcdOptions

__all__ = ["EtcdRegistry"]

log = logging.getLogger("fyerreg.registry.etcd")

InstanceKey = Tuple[str, str, str]
_Inherited = Tuple[EtcdClient, Dict[InstanceKey, Registration], Set[Registration],
                   Dict[int, Tuple[Subscription, PrefixWatch]], Optional[ServiceCache]]

CLOSE_GRACE = 0.5
"""Seconds close() waits, past its timeout, for its threads to end once the connection is closed."""


class EtcdRegistry(Registry):
    """A :class:`~fyerreg.registry.Registry` on etcd.

    Keyword arguments are the fields of :class:`EtcdOptions` (``endpoints``,
    ``dial_timeout``, ``ttl``, ``namespace``, ``max_retry``, ``retry_interval``,
    ``username``/``password``, ``tls``, ``auto_sync_interval``, ``dial_keepalive``,
    ``cache``), or ``options=EtcdOptions(...)``. Construction connects: an unreachable
    etcd raises :class:`~fyerreg.errors.RegistryUnavailableError` within
    ``dial_timeout``, rejected credentials :class:`~fyerreg.errors.AuthenticationError`.

    Each registered instance gets a lease of ``ttl`` seconds kept alive by its own
    thread, which registers it again if the lease is lost; each subscription gets
    its own watch thread. ``close()`` removes every instance it registered.
    """

    def __init__(self, *, options: Optional[EtcdOptions] = None, **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise TypeError("pass either options=EtcdOptions(...) or keyword options, not both")
        self.options = options if options is not None else EtcdOptions.from_kwargs(**kwargs)
        super().__init__()
        self._metrics = Metrics()
        self._client = EtcdClient(self.options)
        self._layout = KeyLayout(self.options.namespace)
        self._decoder = RecordDecoder(self._layout, self._metrics)
        self._writer = RecordWriter(self._client, self._layout, self.options.ttl)
        self._lock = threading.RLock()
        self._regs: Dict[InstanceKey, Registration] = {}
        self._lingering: Set[Registration] = set()
        self._subs: Dict[int, Tuple[Subscription, PrefixWatch]] = {}
        self._conflated_closed = 0
        self._join_timeout = self.options.dial_timeout + 1.0
        self._cache = self._new_cache()
        self._forked = False
        self._inherited: List[_Inherited] = []
        _fork.track(self)

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
        self._state_lock = threading.RLock()
        self._lock = threading.RLock()
        self._regs, self._subs, self._lingering = {}, {}, set()
        self._cache = self._new_cache()
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
                self._writer = RecordWriter(client, self._layout, self.options.ttl)  # for new registrations
                self._forked = False
                return
        client.close()  # another thread connected first, or close() ran meanwhile

    def __repr__(self) -> str:
        endpoints = ",".join(ep.netloc for ep in self.options.endpoints)
        return f"<EtcdRegistry {endpoints} namespace={self.options.namespace!r} closed={self.closed}>"

    def __enter__(self) -> EtcdRegistry:
        self._check_open()
        return self

    # -- registration ---------------------------------------------------------------------------
    #
    # Each instance's whole life is its Registration's; this registry keeps the map of them,
    # the ones whose threads outlived a deregister(), and close()'s budget.

    def _new_registration(self, instance: Instance) -> Registration:
        interval = self.options.ttl / 3.0
        # A heartbeat stuck on a frozen member must give up in time for the next one.
        return Registration(instance, self._layout.instance_key(instance), self._writer, self._metrics,
                            interval=interval, retry=self._client.retry,
                            call_timeout=min(self.options.dial_timeout, max(1.0, interval)))

    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None:
        deadline = Deadline(timeout)
        while True:
            with self._lock:
                self._check_open()
                reg = self._regs.get(instance.key)
                if reg is None:
                    reg = self._regs[instance.key] = self._new_registration(instance)
            try:
                revision = reg.register(instance, exclusive=exclusive, deadline=deadline)
            finally:
                self._drop_if_finished(reg)
            if revision is not None:
                self._wrote(instance, revision)
                return
            # deregistered meanwhile: start over

    def _drop_if_finished(self, reg: Registration) -> None:
        if reg.finished:
            with self._lock:
                if self._regs.get(reg.instance.key) is reg:
                    del self._regs[reg.instance.key]

    def _wrote(self, instance: Instance, revision: int) -> None:
        if self._cache is not None:
            self._cache.wrote(instance.service, instance.version, revision)

    def _do_update(self, instance: Instance, *, timeout: Optional[float]) -> None:
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            raise NotRegisteredError(f"{self._layout.instance_key(instance)} was not registered through this registry")
        self._wrote(instance, reg.update(instance, deadline=Deadline(timeout)))

    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None:
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            log.debug("deregister of %s: not registered through this registry", self._layout.instance_key(instance))
            return
        deadline = Deadline(timeout)
        try:
            revision = reg.remove(deadline=deadline)
        finally:
            self._drop_if_finished(reg)
            left = deadline.left()
            if not reg.join(self._join_timeout if left is None else left):
                with self._lock:
                    self._lingering.add(reg)  # a thread still in a call: close() joins it
        if revision is not None:
            self._wrote(reg.instance, revision)

    def _do_registration_state(self, instance: Instance) -> RegistrationState:
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            return RegistrationState(registered=False)
        return reg.state()

    # -- discovery ------------------------------------------------------------------------------

    def _new_watch(self, service: str, version: Optional[str], kind: str,
                   sink: Optional[Sink] = None) -> PrefixWatch:
        return PrefixWatch(self._client, self._decoder, self._metrics, service=service, version=version,
                           retry=self._client.retry, thread_name=f"{kind}-{service}-{version or '*'}",
                           read_timeout=self.options.dial_timeout, sink=sink)

    def _read(self, service: str, version: Optional[str], deadline: Deadline) -> Snapshot:
        result = self._client.get_prefix(self._layout.prefix(service, version), deadline=deadline)
        found = self._decoder.decode_all(result.kvs, service, version)
        return Snapshot(found.values(), revision=result.revision)

    def _do_list(self, service: str, version: Optional[str], *, timeout: Optional[float]) -> List[Instance]:
        deadline = Deadline(timeout)  # one budget for the cache's catch-up and a direct read
        if self._cache is None:
            return list(self._read(service, version, deadline))
        return self._cache.list(service, version, deadline=deadline,
                                read=lambda: self._read(service, version, deadline))

    def _do_subscribe(self, service: str, version: Optional[str], *, maxsize: int,
                      timeout: Optional[float]) -> Subscription:
        deadline = Deadline(timeout)
        sub = Subscription(service, version, maxsize=maxsize, on_close=self._subscription_closed)
        watch = self._new_watch(service, version, "watch", sink=sub.publish)
        sub.publish(watch.load(deadline=deadline))
        self._metrics.inc("snapshots_delivered")
        with self._lock:
            if self.closed:
                sub.close()
                raise RegistryClosedError("EtcdRegistry is closed")
            self._subs[id(sub)] = (sub, watch)
        watch.start()
        # Return once watching, so that every later change reaches this subscription as
        # its own watch response. Not watching yet is no error: the thread keeps trying
        # and misses nothing (it watches from the first snapshot's revision on).
        wait = self.options.dial_timeout
        watch.wait_connected(wait if timeout is None else max(0.0, min(wait, deadline.left() or 0.0)))
        return sub

    def _subscription_closed(self, sub: Subscription) -> None:
        with self._lock:
            entry = self._subs.pop(id(sub), None)
            self._conflated_closed += sub.conflated
        if entry is not None:
            entry[1].stop(self._join_timeout)

    def _do_unsubscribe(self, service: str, version: Optional[str]) -> None:
        with self._lock:
            subs = [sub for sub, _ in self._subs.values() if sub.service == service and sub.version == version]
        for sub in subs:
            sub.close()

    # -- the rest -------------------------------------------------------------------------------

    def _do_stats(self) -> Stats:
        counter = self._metrics.counter
        with self._lock:
            subs = [sub for sub, _ in self._subs.values()]
            conflated = self._conflated_closed + sum(sub.conflated for sub in subs)
            instances = sum(1 for reg in self._regs.values() if reg.active)
        stats = StatsBuilder()
        for name in STATS_COUNTERS:
            stats.counter(name, conflated if name == "snapshots_conflated" else int(counter(name)))
        stats.gauge("instances_registered", instances)
        stats.gauge("subscriptions", len(subs))
        stats.gauge("cached_services", len(self._cache) if self._cache is not None else 0)
        return stats.build()

    def _do_close(self, *, timeout: Optional[float]) -> None:
        budget = timeout if timeout is not None else self.options.dial_timeout * 2
        end = time.monotonic() + budget
        with self._lock:
            regs = list(self._regs.values())
            self._regs.clear()
            subs = list(self._subs.values())
            self._subs.clear()
        # Finished first, so no write starts; a write in flight removes what it holds when it ends.
        in_flight = [reg for reg in regs if reg.abandon()]
        left_behind: List[Registration] = []
        error: Optional[RegistryError] = None
        for reg in regs:
            if reg in in_flight:
                continue
            if end - time.monotonic() <= 0:
                left_behind.append(reg)
                continue
            try:
                reg.withdraw(deadline=end - time.monotonic())
            except RegistryError as exc:
                left_behind.append(reg)
                error = exc
        left_behind += [reg for reg in in_flight if not reg.wait_idle(max(0.0, end - time.monotonic()))]
        if left_behind:
            log.warning("close() could not deregister %d instance(s) within %gs (%s); their leases expire "
                        "within %ds: %s", len(left_behind), budget,
                        error or "a call in flight waited on etcd", self.options.ttl,
                        ", ".join(reg.key for reg in left_behind), extra={"instances": len(left_behind)})
        # Stopped, then disconnected: calls still in flight (watch reads, heartbeats, other
        # threads' writes) end with the connection, so the threads end at once.
        for _, watch in subs:
            watch.signal_stop()
        if self._cache is not None:
            self._cache.signal_stop()
        if not self._forked:
            self._client.close()
        join_end = max(end, time.monotonic()) + CLOSE_GRACE
        for sub, watch in subs:
            sub.close()
            watch.stop(max(0.0, join_end - time.monotonic()))
        if self._cache is not None:
            self._cache.close(max(0.0, join_end - time.monotonic()))
        with self._lock:
            lingering, self._lingering = list(self._lingering), set()
        for reg in [*regs, *lingering]:
            if not reg.join(max(0.0, join_end - time.monotonic())):
                log.warning("keepalive thread of %s did not end at close", reg.key,
                            extra=instance_extra(reg.instance, reg.lease_id))
