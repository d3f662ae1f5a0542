"""``EtcdRegistry``: the production backend, on etcd leases and watches."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ... import _fork
from ...errors import NotRegisteredError, RegistryClosedError, RegistryError
from ...metrics import Metrics
from ...naming import Instance
from ..base import RegistrationState, Registry
from ..subscription import Snapshot, Subscription
from ._cache import ServiceCache
from ._client import Deadline, EtcdClient, Timeout
from ._decode import RecordDecoder
from ._keepalive import LeaseKeeper
from ._keys import KeyLayout
from ._records import RecordWriter, Registration, instance_extra
from ._watch import PrefixWatch
from .options import EtcdOptions

__all__ = ["EtcdRegistry"]

log = logging.getLogger("fyerreg.registry.etcd")

_COUNTERS = (
    "registrations",
    "deregistrations",
    "lease_losses",
    "reregistrations",
    "watch_reconnects",
    "compaction_recoveries",
    "snapshots_delivered",
    "invalid_records_skipped",
    "cache_hits",
    "cache_stale_reads",
)

InstanceKey = Tuple[str, str, str]


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
        self._subs: Dict[int, Tuple[Subscription, PrefixWatch]] = {}
        self._conflated_closed = 0
        self._join_timeout = self.options.dial_timeout + 1.0
        self._cache = self._new_cache()
        self._forked = False
        self._inherited: List[Any] = []
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
        self._inherited.append((self._client, self._regs, self._subs, self._cache))
        subs = [sub for sub, _ in self._subs.values()]
        self._state_lock = threading.RLock()
        self._lock = threading.RLock()
        self._regs, self._subs = {}, {}
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
            self._client = EtcdClient(self.options)
            self._writer = RecordWriter(self._client, self._layout, self.options.ttl)
            self._forked = False

    def __repr__(self) -> str:
        endpoints = ",".join(ep.netloc for ep in self.options.endpoints)
        return f"<EtcdRegistry {endpoints} namespace={self.options.namespace!r} closed={self.closed}>"

    def __enter__(self) -> EtcdRegistry:
        self._check_open()
        return self

    # -- registration ---------------------------------------------------------------------------

    def _do_register(self, instance: Instance, *, timeout: Optional[float], exclusive: bool) -> None:
        deadline = Deadline(timeout)
        while True:
            with self._lock:
                self._check_open()
                reg = self._regs.get(instance.key)
                if reg is None:
                    reg = self._regs[instance.key] = Registration(instance, self._layout.instance_key(instance))
            with reg.lock:
                if reg.finished:
                    continue  # deregistered meanwhile: start over
                if reg.active:
                    keeper: LeaseKeeper = reg.keepalive
                    revision = keeper.write(instance, deadline=deadline)
                    self._wrote(instance, revision)
                    return
                self._create(reg, instance, deadline=deadline, exclusive=exclusive)
                return

    def _create(self, reg: Registration, instance: Instance, *, deadline: Deadline, exclusive: bool) -> None:
        old: Optional[LeaseKeeper] = reg.keepalive
        if old is not None:  # taken over earlier: told to stop; joined by _remove
            old.signal_stop()
            reg.retired.append(old)
            reg.keepalive = None
        try:
            lease_id, stamped, outcome = self._writer.create(instance, exclusive=exclusive, deadline=deadline)
        except BaseException:
            if not reg.retired:  # a first registration that failed leaves nothing behind
                self._forget(reg)
            raise
        reg.instance, reg.lease_id, reg.active = stamped, lease_id, True
        reg.taken_over_by, reg.last_error, reg.last_refresh = None, None, time.time()
        self._wrote(instance, outcome.revision)
        if outcome.previous is not None:
            log.warning("took over %s, held by lease %x, with lease %x (a restarted process, or two with one id?)",
                        reg.key, outcome.previous.lease, lease_id,
                        extra=instance_extra(instance, lease_id, previous_lease_id=outcome.previous.lease))
        interval = self.options.ttl / 3.0
        # A heartbeat stuck on a frozen member must give up in time for the next one.
        keeper = LeaseKeeper(reg, self._writer, self._metrics, interval=interval, retry=self._client.retry,
                             call_timeout=min(self.options.dial_timeout, max(1.0, interval)))
        reg.keepalive = keeper
        keeper.start()
        self._metrics.inc("registrations")
        log.info("registered %s at %s with lease %x", reg.key, instance.address, lease_id,
                 extra=instance_extra(instance, lease_id))
        if self.closed:  # close() ran meanwhile and did not see this registration
            self._remove(reg, deadline=self.options.dial_timeout)
            raise RegistryClosedError("EtcdRegistry was closed during register()")

    def _forget(self, reg: Registration) -> None:
        reg.finished = True
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
        with reg.lock:
            if reg.finished:
                raise NotRegisteredError(f"{reg.key} was deregistered")
            if not reg.active:
                raise NotRegisteredError(
                    f"{reg.key} was taken over by another registry (lease {reg.taken_over_by or 0:x})")
            keeper: LeaseKeeper = reg.keepalive
            revision = keeper.write(instance, deadline=Deadline(timeout))
        self._wrote(instance, revision)

    def _do_deregister(self, instance: Instance, *, timeout: Optional[float]) -> None:
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            log.debug("deregister of %s: not registered through this registry", self._layout.instance_key(instance))
            return
        self._remove(reg, deadline=timeout)

    def _remove(self, reg: Registration, *, deadline: Timeout) -> None:
        """Stop the keepalive, delete the key (if still ours), revoke the lease."""
        # Told to stop now (it writes nothing once told, see LeaseKeeper.tick), joined after
        # the delete: waiting for its thread first delayed what watchers see.
        for keeper in reg.keepers():
            keeper.signal_stop()
        try:
            with reg.lock:
                if reg.finished:
                    return
                self._forget(reg)
                for keeper in reg.keepers():
                    keeper.signal_stop()  # one started by a register() racing with us
                was_active, reg.active = reg.active, False
                if reg.lease_id:
                    if was_active:
                        _, revision = self._writer.remove(reg.key, reg.lease_id, deadline=deadline)
                        self._wrote(reg.instance, revision)
                    else:
                        self._writer.revoke_quietly(reg.lease_id, deadline=deadline)
        finally:
            self._join_keepers(reg)
        self._metrics.inc("deregistrations")
        log.info("deregistered %s (lease %x revoked)", reg.key, reg.lease_id,
                 extra=instance_extra(reg.instance, reg.lease_id))

    def _join_keepers(self, reg: Registration) -> None:
        for keeper in reg.keepers():
            if not keeper.stop(self._join_timeout):
                log.warning("keepalive thread of %s did not end within %.1fs", reg.key, self._join_timeout,
                            extra=instance_extra(reg.instance, reg.lease_id))

    def _do_registration_state(self, instance: Instance) -> RegistrationState:
        with self._lock:
            reg = self._regs.get(instance.key)
        if reg is None:
            return RegistrationState(registered=False)
        return reg.state()

    # -- discovery ------------------------------------------------------------------------------

    def _new_watch(self, service: str, version: Optional[str], kind: str) -> PrefixWatch:
        return PrefixWatch(self._client, self._decoder, self._metrics, service=service, version=version,
                           retry=self._client.retry, thread_name=f"{kind}-{service}-{version or '*'}")

    def _read(self, service: str, version: Optional[str], deadline: Optional[float]) -> Snapshot:
        result = self._client.get_prefix(self._layout.prefix(service, version), deadline=deadline)
        found = self._decoder.decode_all(result.kvs, service, version)
        return Snapshot(found.values(), revision=result.revision)

    def _do_list(self, service: str, version: Optional[str], *, timeout: Optional[float]) -> List[Instance]:
        if self._cache is None:
            return list(self._read(service, version, timeout))
        return self._cache.list(service, version, deadline=timeout, read=lambda: self._read(service, version, timeout))

    def _do_subscribe(self, service: str, version: Optional[str], *, maxsize: int,
                      timeout: Optional[float]) -> Subscription:
        deadline = Deadline(timeout)
        watch = self._new_watch(service, version, "watch")
        first = watch.load(deadline=deadline)
        sub = Subscription(service, version, maxsize=maxsize, on_close=self._subscription_closed)
        watch.sink = sub.publish
        sub.publish(first)
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

    def _do_stats(self) -> Dict[str, Any]:
        counter = self._metrics.counter
        with self._lock:
            subs = [sub for sub, _ in self._subs.values()]
            conflated = self._conflated_closed + sum(sub.conflated for sub in subs)
            instances = sum(1 for reg in self._regs.values() if reg.active)
        stats: Dict[str, Any] = {name: int(counter(name)) for name in _COUNTERS}
        stats["snapshots_conflated"] = conflated
        stats["instances"] = instances
        stats["subscriptions"] = len(subs)
        stats["cached_services"] = len(self._cache) if self._cache is not None else 0
        return stats

    def _do_close(self, *, timeout: Optional[float]) -> None:
        budget = timeout if timeout is not None else self.options.dial_timeout * 2
        end = time.monotonic() + budget
        with self._lock:
            regs = list(self._regs.values())
            subs = [sub for sub, _ in self._subs.values()]
        for reg in regs:
            for keeper in reg.keepers():
                keeper.signal_stop()
        for reg in regs:
            left = end - time.monotonic()
            try:
                if left > 0:
                    self._remove(reg, deadline=left)
                else:
                    log.warning("no time left to deregister %s at close; its lease expires in %ds",
                                reg.key, self.options.ttl, extra=instance_extra(reg.instance, reg.lease_id))
                    self._abandon(reg)
            except RegistryError as exc:
                log.warning("could not deregister %s at close (its lease expires in %ds): %s",
                            reg.key, self.options.ttl, exc, extra=instance_extra(reg.instance, reg.lease_id))
                self._abandon(reg)
        for sub in subs:
            sub.close()
        if self._cache is not None:
            self._cache.close()
        if not self._forked:
            self._client.close()

    def _abandon(self, reg: Registration) -> None:
        with reg.lock:
            reg.active = False
            self._forget(reg)
        self._join_keepers(reg)
